// Decoder: socket chunks in, records out. Chunks may split records anywhere; complete records are scanned
// in place (one scanner call per chunk) and handed out as zero-copy views, and a record cut by the end of a
// chunk is carried over: stream records (PARAMS, STDIN, STDOUT, STDERR, DATA) as zero-copy pieces of their
// content, discrete records (BEGIN_REQUEST, END_REQUEST, GET_VALUES, …) copied once into their own buffer.
// PARAMS streams of requests opened by BEGIN_REQUEST are joined across records and handed out as lazy Params.
import {
  OUT_CONSUMED,
  OUT_ERROR,
  OUT_ERROR_OFFSET,
  OUT_ERROR_VALUE,
  OUT_HEADER_SLOTS,
  REC_CONTENT_LENGTH,
  REC_CONTENT_OFFSET,
  REC_PADDING_LENGTH,
  REC_REQUEST_ID,
  REC_STRIDE,
  REC_TYPE,
  ERR_BAD_VERSION,
  ERR_NONE,
  FCGI_VERSION,
} from '../codec/layout';
import type { Scanner } from '../codec/scanner';
import { scanner as defaultScanner } from '../codec/load';
import { HEADER_LENGTH, RecordType } from './constants';
import { ErrorCode, LimitError, scanErrorToProtocolError, type FastCGIError } from '../errors';
import { scanPairBlock } from './pair-block';
import { Params } from './params';
import { IdTable } from './id-table';

/** What the decoder calls; all calls happen synchronously inside `push`. */
export interface DecoderHandler {
  /**
   * A record, or a piece of a stream record's content (never empty unless the record is: an empty stream
   * record ends its stream). `content` is a view into a socket chunk or a decoder-owned copy: it stays valid.
   * PARAMS records of requests whose params the decoder collects are not passed here.
   */
  onRecord(type: number, requestId: number, content: Buffer): void;
  /** A request's complete PARAMS stream (its empty PARAMS record arrived). */
  onParams(requestId: number, params: Params): void;
  /** Malformed input or an exceeded limit; the decoder stops and ignores further input. */
  onError(error: FastCGIError): void;
}

/** Decoder settings. */
export interface DecoderOptions {
  /** The scanner to use; default the loaded one (native above its size threshold, else TypeScript). */
  scanner?: Scanner;
  /** Collect the PARAMS stream of every request id that sends BEGIN_REQUEST. Default true (server side). */
  collectParams?: boolean;
  /** Largest PARAMS stream accepted for one request, in bytes. Default 1 MiB. */
  maxParamsBytes?: number;
  /** Most pairs accepted in one PARAMS stream. Default 4096. */
  maxParamsCount?: number;
  /**
   * Where the bytes held for PARAMS being collected are charged (the server's per-connection budget). A
   * charge that does not fit stops the decoder with FCGI_ERR_BUFFER_LIMIT. The bytes of a complete block stay
   * charged: the handler's `onParams` takes them over (`Params.retainedBytes`) and releases them itself.
   */
  budget?: ParamsBudget;
  /**
   * Called once per record when its content is complete, before its content (or, for a stream record cut by
   * chunk boundaries, its last piece) is handed to `onRecord`, with the header fields and the content: for a
   * cut stream record, its first piece only, as its pieces are not kept. A record the input ends inside is
   * never observed. For traces and diagnostics; costs nothing when absent.
   */
  observer?: RecordObserver;
}

/** Sees each record as the decoder reads it (see DecoderOptions.observer). */
export type RecordObserver = (
  type: number,
  requestId: number,
  contentLength: number,
  paddingLength: number,
  content: Buffer,
) => void;

/** A byte budget the decoder charges for the PARAMS it holds. */
export interface ParamsBudget {
  tryCharge(bytes: number): boolean;
  release(bytes: number): void;
  readonly limit: number;
}

const EMPTY = Buffer.alloc(0);
const RECORDS_PER_SCAN = 256;

// Scan outputs are read before push() returns, so one scratch array serves every decoder instead of ~6 KB
// allocated per connection (a connection per request is nginx's default). A push() nested inside another
// decoder's handler finds the scratch busy and uses its own array.
const recordsScratch = new Uint32Array(OUT_HEADER_SLOTS + REC_STRIDE * RECORDS_PER_SCAN);
let recordsScratchBusy = false;

// Where the decoder is between chunks.
const enum Carry {
  None,
  Header,
  Content,
}

function isStreamType(type: number): boolean {
  return (
    type === RecordType.PARAMS ||
    type === RecordType.STDIN ||
    type === RecordType.STDOUT ||
    type === RecordType.STDERR ||
    type === RecordType.DATA
  );
}

// One request's PARAMS so far. Pieces are never kept as a list of views: a peer that cuts its params into
// 1-byte records would make each byte cost a Buffer object (~150 bytes of heap). The first piece is kept as a
// zero-copy view when it pins no more than twice its size of socket memory; anything else is copied into one
// buffer that grows by doubling, so what a request holds is at most 2x its params bytes (test/server/abuse.test.ts).
class ParamsCollector {
  view: Buffer | null = null;
  buffer: Buffer | null = null;
  bytes = 0;
  // Bytes charged to the budget: the view's length, or the buffer's capacity.
  held = 0;
}

/** Whether a view of `piece` keeps at most twice its size of memory alive (socket reads are exactly sized). */
export function isCompactView(piece: Buffer): boolean {
  return piece.length * 2 >= piece.buffer.byteLength;
}

/** Decoder turns a FastCGI byte stream, in chunks split anywhere, into records and params. */
export class Decoder {
  readonly #handler: DecoderHandler;
  readonly #scanner: Scanner;
  readonly #collectParams: boolean;
  readonly #maxParamsBytes: number;
  readonly #maxParamsCount: number;
  readonly #budget: ParamsBudget | null;
  readonly #observer: RecordObserver | null;
  readonly #collectors = new IdTable<ParamsCollector>();
  // Stream offset of the current chunk's first byte, for error messages.
  #base = 0;
  #stopped = false;
  // A record cut by a chunk boundary.
  #carry = Carry.None;
  #header: Buffer | null = null;
  #headerFilled = 0;
  #recordStart = 0;
  #type = 0;
  #requestId = 0;
  #contentRemaining = 0;
  #paddingRemaining = 0;
  // A cut stream record being observed: its first content piece, shown to the observer when the record ends.
  #observing = false;
  #firstPiece: Buffer | null = null;
  // Discrete records are copied whole; stream records pass through in pieces (#record stays null).
  #record: Buffer | null = null;
  #recordFilled = 0;

  constructor(handler: DecoderHandler, options: DecoderOptions = {}) {
    this.#handler = handler;
    this.#scanner = options.scanner ?? defaultScanner;
    this.#collectParams = options.collectParams ?? true;
    this.#maxParamsBytes = options.maxParamsBytes ?? 1024 * 1024;
    this.#maxParamsCount = options.maxParamsCount ?? 4096;
    this.#budget = options.budget ?? null;
    this.#observer = options.observer ?? null;
  }

  /** Whether the decoder stopped (malformed input, a limit, or `stop()`). */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Whether a record is cut by the end of the input so far (at socket EOF this means a truncated stream). */
  get midRecord(): boolean {
    return this.#carry !== Carry.None;
  }

  /** Bytes of the record cut by the end of the input so far (header included), 0 when no record is cut. */
  get partialRecordBytes(): number {
    return this.#carry === Carry.None ? 0 : this.#base - this.#recordStart;
  }

  /** Stops decoding: the rest of the current chunk and every later one are ignored. */
  stop(): void {
    this.#stopped = true;
  }

  /** Forgets the PARAMS collected for a request (rejected or finished before its params ended). */
  discardParams(requestId: number): void {
    const collector = this.#collectors.get(requestId);
    if (collector === undefined) return;
    this.#collectors.delete(requestId);
    this.#budget?.release(collector.held);
  }

  /** Feeds the next chunk of the stream. */
  push(chunk: Buffer): void {
    const end = chunk.length;
    const shared = !recordsScratchBusy;
    const out = shared ? recordsScratch : new Uint32Array(recordsScratch.length);
    recordsScratchBusy = true;
    try {
      let p = 0;
      while (p < end && !this.#stopped) {
        p = this.#carry === Carry.None ? this.#scanChunk(chunk, p, end, out) : this.#continueRecord(chunk, p, end);
      }
    } finally {
      if (shared) recordsScratchBusy = false;
    }
    this.#base += end;
  }

  // Scans complete records from chunk[p]; returns where the first incomplete one starts (or end).
  #scanChunk(chunk: Buffer, p: number, end: number, out: Uint32Array): number {
    for (;;) {
      const count = this.#scanner.scanRecords(chunk, p, end, out);
      for (let i = 0, slot = OUT_HEADER_SLOTS; i < count && !this.#stopped; i++, slot += REC_STRIDE) {
        const offset = out[slot + REC_CONTENT_OFFSET]!;
        const length = out[slot + REC_CONTENT_LENGTH]!;
        // An empty record (the end of PARAMS, STDIN, STDOUT) gets the shared empty Buffer, not a view to make.
        const content = length === 0 ? EMPTY : chunk.subarray(offset, offset + length);
        this.#observer?.(
          out[slot + REC_TYPE]!,
          out[slot + REC_REQUEST_ID]!,
          length,
          out[slot + REC_PADDING_LENGTH]!,
          content,
        );
        this.#dispatch(out[slot + REC_TYPE]!, out[slot + REC_REQUEST_ID]!, content);
      }
      if (this.#stopped) return end;
      if (out[OUT_ERROR] !== ERR_NONE) {
        this.#fail(
          scanErrorToProtocolError(
            { error: out[OUT_ERROR]!, offset: out[OUT_ERROR_OFFSET]!, value: out[OUT_ERROR_VALUE]! },
            this.#base,
          ),
        );
        return end;
      }
      p = out[OUT_CONSUMED]!;
      if (count < RECORDS_PER_SCAN || p === end) break;
    }
    if (p < end) {
      this.#carry = Carry.Header;
      this.#headerFilled = 0;
      this.#recordStart = this.#base + p;
    }
    return p;
  }

  // Continues a record cut by a chunk boundary; returns the offset after what it took from the chunk.
  #continueRecord(chunk: Buffer, p: number, end: number): number {
    if (this.#carry === Carry.Header) {
      const n = Math.min(HEADER_LENGTH - this.#headerFilled, end - p);
      this.#header ??= Buffer.alloc(HEADER_LENGTH);
      chunk.copy(this.#header, this.#headerFilled, p, p + n);
      this.#headerFilled += n;
      p += n;
      if (this.#headerFilled < HEADER_LENGTH) return p;
      const h = this.#header;
      if (h[0] !== FCGI_VERSION) {
        this.#fail(scanErrorToProtocolError({ error: ERR_BAD_VERSION, offset: this.#recordStart, value: h[0]! }));
        return end;
      }
      this.#type = h[1]!;
      this.#requestId = (h[2]! << 8) | h[3]!;
      this.#contentRemaining = (h[4]! << 8) | h[5]!;
      this.#paddingRemaining = h[6]!;
      this.#carry = Carry.Content;
      this.#record = null;
      this.#observing = false;
      this.#firstPiece = null;
      if (this.#contentRemaining === 0) {
        this.#observer?.(this.#type, this.#requestId, 0, this.#paddingRemaining, EMPTY);
        this.#dispatch(this.#type, this.#requestId, EMPTY);
      } else if (!isStreamType(this.#type)) {
        this.#record = Buffer.allocUnsafe(this.#contentRemaining);
        this.#recordFilled = 0;
      } else {
        this.#observing = this.#observer !== null;
      }
    }
    // Carry.Content: content (piece by piece or into #record), then padding.
    if (this.#contentRemaining > 0 && p < end) {
      const n = Math.min(this.#contentRemaining, end - p);
      this.#contentRemaining -= n;
      if (this.#record === null) {
        const piece = chunk.subarray(p, p + n);
        if (this.#observing) {
          this.#firstPiece ??= piece;
          if (this.#contentRemaining === 0) {
            this.#observing = false;
            this.#observer!(
              this.#type,
              this.#requestId,
              (this.#header![4]! << 8) | this.#header![5]!,
              this.#header![6]!,
              this.#firstPiece,
            );
            this.#firstPiece = null;
          }
        }
        this.#dispatch(this.#type, this.#requestId, piece);
      } else {
        chunk.copy(this.#record, this.#recordFilled, p, p + n);
        this.#recordFilled += n;
        if (this.#contentRemaining === 0) {
          const record = this.#record;
          this.#record = null;
          this.#observer?.(this.#type, this.#requestId, record.length, this.#header![6]!, record);
          this.#dispatch(this.#type, this.#requestId, record);
        }
      }
      p += n;
    }
    if (this.#contentRemaining === 0) {
      const n = Math.min(this.#paddingRemaining, end - p);
      this.#paddingRemaining -= n;
      p += n;
      if (this.#paddingRemaining === 0) this.#carry = Carry.None;
    }
    return p;
  }

  #dispatch(type: number, requestId: number, content: Buffer): void {
    if (type === RecordType.PARAMS) {
      const collector = this.#collectors.get(requestId);
      if (collector !== undefined) {
        if (content.length === 0) this.#finishParams(requestId, collector);
        else this.#collect(requestId, collector, content);
        return;
      }
    } else if (type === RecordType.BEGIN_REQUEST && this.#collectParams && requestId !== 0) {
      this.#collectors.set(requestId, new ParamsCollector());
    }
    this.#handler.onRecord(type, requestId, content);
  }

  #collect(requestId: number, collector: ParamsCollector, content: Buffer): void {
    const bytes = collector.bytes + content.length;
    if (bytes > this.#maxParamsBytes) {
      this.#fail(
        new LimitError(
          ErrorCode.PARAMS_TOO_LARGE,
          `params of request ${requestId} exceed ${this.#maxParamsBytes} bytes (maxParamsBytes)`,
          this.#maxParamsBytes,
          bytes,
        ),
      );
      return;
    }
    if (collector.bytes === 0 && isCompactView(content)) {
      if (!this.#charge(requestId, collector, content.length)) return;
      collector.view = content;
      collector.bytes = bytes;
      return;
    }
    let buffer = collector.buffer;
    if (buffer === null || bytes > buffer.length) {
      const capacity = Math.min(Math.max(bytes * 2, 1024), Math.max(this.#maxParamsBytes, bytes));
      if (!this.#charge(requestId, collector, capacity)) return;
      const grown = Buffer.allocUnsafe(capacity);
      const previous = buffer ?? collector.view;
      if (previous !== null) previous.copy(grown, 0, 0, collector.bytes);
      collector.view = null;
      collector.buffer = buffer = grown;
    }
    content.copy(buffer, collector.bytes);
    collector.bytes = bytes;
  }

  // Makes `held` the collector's charge; false after failing the decoder when the budget has no room.
  #charge(requestId: number, collector: ParamsCollector, held: number): boolean {
    const budget = this.#budget;
    if (budget !== null) {
      const delta = held - collector.held;
      if (delta > 0 && !budget.tryCharge(delta)) {
        this.#fail(
          new LimitError(
            ErrorCode.BUFFER_LIMIT,
            `params of request ${requestId} do not fit in the connection's buffer budget of ${budget.limit} bytes (maxConnectionBufferBytes, maxBufferBytes)`,
            budget.limit,
            held,
          ),
        );
        return false;
      }
      if (delta < 0) budget.release(-delta);
    }
    collector.held = held;
    return true;
  }

  #finishParams(requestId: number, collector: ParamsCollector): void {
    this.#collectors.delete(requestId);
    // FastCGI 1.0 §3.3: PARAMS is a stream, so a pair may straddle records (h2o and cgi-fcgi do this).
    const block = collector.buffer !== null ? collector.buffer.subarray(0, collector.bytes) : (collector.view ?? EMPTY);
    const pairs = this.#scanPairs(block, requestId);
    if (pairs === null) {
      this.#budget?.release(collector.held);
      return;
    }
    const params = new Params(block, pairs);
    params.retainedBytes = collector.held;
    this.#handler.onParams(requestId, params);
  }

  // Scans a whole params block; returns its descriptors, or null after reporting an error.
  #scanPairs(block: Buffer, requestId: number): Uint32Array | null {
    const { pairs, count, failure } = scanPairBlock(block, this.#scanner, this.#maxParamsCount);
    if (count > this.#maxParamsCount) {
      this.#fail(
        new LimitError(
          ErrorCode.PARAMS_TOO_LARGE,
          `request ${requestId} sent more than ${this.#maxParamsCount} params (maxParamsCount)`,
          this.#maxParamsCount,
          count,
        ),
      );
      return null;
    }
    if (failure !== null) {
      this.#fail(scanErrorToProtocolError(failure, 0, { requestId, recordType: RecordType.PARAMS }));
      return null;
    }
    return pairs;
  }

  #fail(error: FastCGIError): void {
    this.#stopped = true;
    for (const collector of this.#collectors.values()) this.#budget?.release(collector.held);
    this.#collectors.clear();
    this.#handler.onError(error);
  }
}
