// RecordWriter: frames outgoing streams into records and writes them to one socket with as few syscalls as
// possible. Records queued in the same event-loop turn go out together at setImmediate, in one write: copied
// into one buffer while small (a whole small response, END_REQUEST included), written corked (one writev) as
// headers + zero-copy body slices once large. `whenWritable` gives per-socket backpressure to the streams
// that feed it.
import type { Socket } from 'node:net';
import { HEADER_LENGTH, MAX_CONTENT_LENGTH, RecordType } from './constants';
import { paddingFor, writeHeader } from './header';
import { END_REQUEST_LENGTH, writeEndRequest } from './records';
import type { ProtocolStatusValue } from './constants';

/** Below this many queued bytes a flush copies everything into one buffer; above, it writes corked pieces. */
export const COALESCE_LIMIT = 16 * 1024;

const ZEROS = Buffer.alloc(255);
// The buffer every writer coalesces a small flush into, reused while sockets take their writes synchronously:
// a new Buffer per flush was 3.3 % of a server's CPU answering 4 KB responses, above the 4 KiB that
// Buffer.allocUnsafe takes from its pool (bench/e2e 4k profile). Only for a socket on a libuv pipe or TCP
// handle, which is done with a chunk once its write's callback has run (the socket's writableLength is back to
// 0): a stream socket over some other Duplex may hand the very chunk on to a reader that keeps it.
let scratch = Buffer.allocUnsafeSlow(COALESCE_LIMIT);

function writesToKernel(socket: Socket): boolean | undefined {
  const handle = (socket as unknown as { _handle?: { constructor?: { name?: string } } | null })._handle;
  if (handle === undefined || handle === null) return undefined; // not connected yet: ask again next flush
  const kind = handle.constructor?.name;
  return kind === 'Pipe' || kind === 'TCP';
}
// Stands in #pieces for a piece of text (see streamText); never written itself.
const TEXT_PLACEHOLDER = new Uint8Array(0);

/** RecordWriter options. */
export interface RecordWriterOptions {
  /** Pad records to 8 bytes (FastCGI 1.0 §3.3 recommends it). Default true. */
  pad?: boolean;
  /** Queued + socket-buffered bytes above which `whenWritable` callers wait for 'drain'. Default 256 KiB. */
  highWaterMark?: number;
  /** ms a `whenWritable` caller may wait with no 'drain' before `onSendTimeout` runs (0: forever). Default 0. */
  sendTimeout?: number;
  /** Called when `sendTimeout` passes: the peer is not reading. */
  onSendTimeout?: () => void;
  /** Bytes handed to the socket are added to its `bytesOut` (the server's stats). */
  counter?: { bytesOut: number };
}

/** Frames and writes records for one connection. */
export class RecordWriter {
  readonly #socket: Socket;
  readonly #pad: boolean;
  readonly #highWaterMark: number;
  #pieces: Uint8Array[] = [];
  // Text queued by streamText: its encoding at the same index of #pieces (the piece there is a placeholder).
  #texts: (string | undefined)[] | null = null;
  #encodings: (BufferEncoding | undefined)[] | null = null;
  #bytes = 0;
  #scheduled = false;
  #waiters: (() => void)[] = [];
  readonly #sendTimeout: number;
  readonly #onSendTimeout: (() => void) | null;
  readonly #counter: { bytesOut: number } | null;
  #sendTimer: NodeJS.Timeout | null = null;
  // Whether flushes may use the shared scratch buffer (see writesToKernel); undefined until the socket has a handle.
  #ownsWrites: boolean | undefined = undefined;

  constructor(socket: Socket, options: RecordWriterOptions = {}) {
    this.#socket = socket;
    this.#pad = options.pad ?? true;
    this.#highWaterMark = options.highWaterMark ?? 256 * 1024;
    this.#sendTimeout = options.sendTimeout ?? 0;
    this.#onSendTimeout = options.onSendTimeout ?? null;
    this.#counter = options.counter ?? null;
    socket.on('drain', () => {
      // The peer read something: its send timer starts over.
      if (this.#sendTimer !== null) this.#sendTimer.refresh();
      this.#release();
    });
  }

  /** Bytes not yet handed to the kernel: queued here plus buffered in the socket. */
  get bufferedBytes(): number {
    return this.#bytes + this.#socket.writableLength;
  }

  /** Queues `data` as records of `type` (STDOUT, STDERR): split at 65535 bytes, no copy of the payload. */
  stream(type: number, requestId: number, data: Uint8Array): void {
    for (let offset = 0; offset < data.length; offset += MAX_CONTENT_LENGTH) {
      const piece =
        offset === 0 && data.length <= MAX_CONTENT_LENGTH
          ? data
          : data.subarray(offset, Math.min(data.length, offset + MAX_CONTENT_LENGTH));
      const padding = this.#pad ? paddingFor(piece.length) : 0;
      const header = Buffer.allocUnsafe(HEADER_LENGTH);
      writeHeader(header, 0, type, requestId, piece.length, padding);
      this.#push(header);
      this.#push(piece);
      if (padding > 0) this.#push(ZEROS.subarray(0, padding));
    }
  }

  /**
   * Queues `text` as records of `type`, encoded straight into the buffer the flush writes: node's
   * ServerResponse hands its socket the header block (and a string body) as one string, and making a Buffer of
   * it first cost an allocation and a copy per response (bench:e2e hello profile: `fromString` 1.4 % of the
   * backend's CPU). `length` is its size in `encoding`, which the caller has counted already. Long text (more
   * than a coalesced write holds, and so possibly more than one record) is encoded once into a Buffer instead.
   */
  streamText(type: number, requestId: number, text: string, encoding: BufferEncoding, length: number): void {
    if (length === 0) return;
    if (length > COALESCE_LIMIT) {
      this.stream(type, requestId, Buffer.from(text, encoding));
      return;
    }
    const padding = this.#pad ? paddingFor(length) : 0;
    const header = Buffer.allocUnsafe(HEADER_LENGTH);
    writeHeader(header, 0, type, requestId, length, padding);
    this.#push(header);
    const texts = (this.#texts ??= []);
    const encodings = (this.#encodings ??= []);
    const at = this.#pieces.length;
    texts[at] = text;
    encodings[at] = encoding;
    this.#push(TEXT_PLACEHOLDER, length);
    if (padding > 0) this.#push(ZEROS.subarray(0, padding));
  }

  /** Queues the empty record that ends a stream. */
  endStream(type: number, requestId: number): void {
    const header = Buffer.allocUnsafe(HEADER_LENGTH);
    writeHeader(header, 0, type, requestId, 0, 0);
    this.#push(header);
  }

  /** Queues the end of a request: the empty STDOUT record (FastCGI 1.0 §6.1 requires it) and END_REQUEST. */
  endRequest(requestId: number, appStatus: number, protocolStatus: ProtocolStatusValue, endStdout = true): void {
    const record = Buffer.allocUnsafe((endStdout ? HEADER_LENGTH : 0) + END_REQUEST_LENGTH);
    let offset = 0;
    if (endStdout) offset = writeHeader(record, 0, RecordType.STDOUT, requestId, 0, 0);
    writeEndRequest(record, offset, requestId, appStatus, protocolStatus);
    this.#push(record);
  }

  /** Queues a pre-built record (GET_VALUES_RESULT, UNKNOWN_TYPE). */
  raw(record: Uint8Array): void {
    this.#push(record);
  }

  /** Calls `callback` once the connection has room (now, or after the socket drains). */
  whenWritable(callback: () => void): void {
    if (this.bufferedBytes < this.#highWaterMark) return callback();
    this.#waiters.push(callback);
    if (this.#sendTimer === null && this.#sendTimeout > 0 && this.#onSendTimeout !== null) {
      this.#sendTimer = setTimeout(onSendTimer, this.#sendTimeout, this);
      this.#sendTimer.unref();
    }
  }

  /** @internal */
  onSendTimer(): void {
    this.#sendTimer = null;
    if (this.#waiters.length > 0) this.#onSendTimeout?.();
  }

  /** Writes everything queued now; `end` then half-closes the socket after it (FIN, never RST). */
  flush(end = false): void {
    const socket = this.#socket;
    const pieces = this.#pieces;
    const bytes = this.#bytes;
    const texts = this.#texts;
    const encodings = this.#encodings;
    this.#pieces = [];
    this.#bytes = 0;
    this.#texts = null;
    this.#encodings = null;
    if (socket.destroyed || !socket.writable) return;
    if (this.#counter !== null) this.#counter.bytesOut += bytes;
    if (pieces.length === 1) {
      socket.write(pieces[0]!);
    } else if (bytes <= COALESCE_LIMIT && pieces.length > 0) {
      const reuse = (this.#ownsWrites ??= writesToKernel(socket));
      const one = reuse ? scratch : Buffer.allocUnsafe(bytes);
      let offset = 0;
      for (let i = 0; i < pieces.length; i++) {
        const piece = pieces[i]!;
        const text = piece === TEXT_PLACEHOLDER ? texts![i]! : undefined;
        if (text !== undefined) offset += one.write(text, offset, encodings![i]);
        else {
          one.set(piece, offset);
          offset += piece.length;
        }
      }
      socket.write(reuse ? one.subarray(0, bytes) : one);
      // Handed to the kernel at once unless the socket still holds bytes: then that write owns the buffer (its
      // callback has not run), and the next flush gets a new one.
      if (reuse && socket.writableLength !== 0) scratch = Buffer.allocUnsafeSlow(COALESCE_LIMIT);
    } else if (pieces.length > 0) {
      socket.cork();
      for (let i = 0; i < pieces.length; i++) {
        const piece = pieces[i]!;
        const text = piece === TEXT_PLACEHOLDER ? texts![i]! : undefined;
        if (text !== undefined) socket.write(text, encodings![i]);
        else socket.write(piece);
      }
      socket.uncork();
    }
    if (end) socket.end();
    else this.#release();
  }

  /** Drops whatever is queued and every waiter (the socket is gone). */
  discard(): void {
    this.#pieces = [];
    this.#texts = null;
    this.#encodings = null;
    this.#bytes = 0;
    this.#waiters = [];
    this.#clearSendTimer();
  }

  #clearSendTimer(): void {
    if (this.#sendTimer !== null) clearTimeout(this.#sendTimer);
    this.#sendTimer = null;
  }

  #push(piece: Uint8Array, length = piece.length): void {
    this.#pieces.push(piece);
    this.#bytes += length;
    // Large or small, everything queued in this turn goes out in one write at setImmediate: flushing as soon as
    // 16 KiB were queued sent a 64 KiB response in two syscalls (its last byte's record and END_REQUEST came
    // after), 6 % of a server's CPU on 64 KB responses (bench/e2e 64k profile). What waits here counts in
    // bufferedBytes, so whenWritable holds writers back as it does for bytes waiting in the socket.
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(flushScheduled, this);
    }
  }

  /** @internal */
  onScheduledFlush(): void {
    this.#scheduled = false;
    if (this.#bytes > 0) this.flush();
  }

  #release(): void {
    while (this.#waiters.length > 0 && this.bufferedBytes < this.#highWaterMark) this.#waiters.shift()!();
    if (this.#waiters.length === 0) this.#clearSendTimer();
  }
}

function flushScheduled(writer: RecordWriter): void {
  writer.onScheduledFlush();
}

function onSendTimer(writer: RecordWriter): void {
  writer.onSendTimer();
}
