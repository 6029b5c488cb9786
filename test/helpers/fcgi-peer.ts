// Test peer playing the web-server side of FastCGI: sends exact bytes (optionally split) and records every reply.
import * as net from 'node:net';
import { setImmediate as nextTurn, setTimeout as delay } from 'node:timers/promises';
import { RecordType, Role } from '../../src/wire/constants';
import { recordTypeName } from '../../src/wire/names';
import { encodeAbortRequest, encodeGetValues } from '../../src/wire/records';
import { readPairBlock } from '../../src/wire/pair-block';
import { encodeRequest } from '../../src/wire/request-records';
import { typescriptScanner } from '../../src/codec/scanner-ts';
import * as L from '../../src/codec/layout';
import { splitAt } from './records';

/** One record as the server sent it (version is always 1: any other version ends parsing with an error). */
export interface PeerRecord {
  type: number;
  requestId: number;
  contentLength: number;
  paddingLength: number;
  content: Buffer;
  /** The padding bytes themselves, so tests can check what the server put there. */
  padding: Buffer;
}

/** What the server sent for one request, up to and including its END_REQUEST. */
export interface PeerResponse {
  requestId: number;
  stdout: Buffer;
  stderr: Buffer;
  appStatus: number;
  protocolStatus: number;
  /** An empty STDOUT record (the stream terminator) arrived before END_REQUEST. */
  stdoutEnded: boolean;
  /** An empty STDERR record arrived before END_REQUEST. */
  stderrEnded: boolean;
  /** This response's records in arrival order, END_REQUEST last. */
  records: PeerRecord[];
}

/** How the connection ended. `how` describes the transport only; a protocol error appears in `error`. */
export interface PeerClosed {
  /** fin: the server sent FIN and nothing failed; reset: ECONNRESET/EPIPE; destroyed: anything else (incl. our destroy()). */
  how: 'fin' | 'reset' | 'destroyed';
  error?: Error;
  /** Bytes of an incomplete record left unparsed when the connection closed. */
  unparsed: Buffer;
}

/**
 * How send() cuts bytes into socket writes. Omitted: one write per array element (a single Uint8Array is one
 * write). 'none': everything concatenated into one write. 'bytes': one write per byte. number[]: cut points
 * into the concatenated bytes. 'random': seeded random cut points (see SendOptions.seed).
 */
export type SplitMode = 'none' | 'bytes' | number[] | 'random';

export interface SendOptions {
  split?: SplitMode;
  /** Seed for split 'random'; the same seed always gives the same cuts for the same length. Default 0x5eed. */
  seed?: number;
  /**
   * Pause between writes, in ms. Default: one setImmediate. That does not guarantee the server sees one read
   * per write, even in process: the kernel may coalesce pieces before the server reads. A test that needs
   * separate reads must wait for the server socket's `bytesRead` to move (test/server/protocol.test.ts does).
   */
  delayMs?: number;
}

export interface BuildRequestOptions {
  /** Default 1. */
  requestId?: number;
  /** Default 1 (RESPONDER). */
  role?: number;
  /** Sets FCGI_KEEP_CONN. Default false. */
  keepConn?: boolean;
  /** Sent as one PARAMS stream (pairs never split across records) plus its empty terminator. Default none. */
  params?: Record<string, string> | Array<[string, string | Buffer]>;
  /**
   * STDIN content; strings are UTF-8. Each Buffer becomes its own record(s), split at 65535 bytes, so an array
   * controls record boundaries. An empty Buffer produces no record (an empty record would end the stream).
   */
  stdin?: Buffer | string | Buffer[];
  /** Leave out the empty STDIN record that ends the stream. */
  noStdinEnd?: boolean;
  /** DATA content (UTF-8 for strings), then the empty DATA record. The FILTER role gets an empty DATA stream by default. */
  data?: Buffer | string;
  /** Pad PARAMS/STDIN/DATA records to multiples of 8 bytes. Default true. */
  pad?: boolean;
}

export interface RequestOptions extends BuildRequestOptions, SendOptions {
  /** For the wait on END_REQUEST. Default 5000. */
  timeoutMs?: number;
}

export interface CgiResponse {
  status: number;
  reason: string;
  /** Every header line in order, Status included, names as sent, values trimmed. */
  headers: Array<[string, string]>;
  /** The first header of that name, case-insensitively. */
  header(name: string): string | undefined;
  body: Buffer;
}

const PREVIEW_BYTES = 200;
const DEFAULT_SEED = 0x5eed;
const RECORD_CAPACITY = 64;

/** buildRequest returns the bytes of a whole request: BEGIN_REQUEST, PARAMS, STDIN and (for filters) DATA. */
export function buildRequest(opts: BuildRequestOptions = {}): Buffer {
  const role = opts.role ?? Role.RESPONDER;
  return encodeRequest({
    requestId: opts.requestId,
    role,
    keepConn: opts.keepConn,
    params: opts.params === undefined ? [] : Array.isArray(opts.params) ? opts.params : Object.entries(opts.params),
    stdin: opts.stdin === undefined ? [] : Array.isArray(opts.stdin) ? opts.stdin : toBytes(opts.stdin),
    endStdin: opts.noStdinEnd !== true,
    data: opts.data !== undefined || role === Role.FILTER ? toBytes(opts.data ?? Buffer.alloc(0)) : undefined,
    pad: opts.pad,
  });
}

function toBytes(input: Buffer | string): Buffer {
  return typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
}

/** mulberry32: tiny, seedable, good enough to spread cut points; reproducibility is what matters here. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** randomCuts returns sorted distinct cut points in [1, length) chosen by the seeded PRNG (between 1 and 64 of them). */
export function randomCuts(length: number, seed = DEFAULT_SEED): number[] {
  if (length < 2) return [];
  const next = prng(seed);
  const count = 1 + Math.floor(next() * Math.min(length - 1, 64));
  const cuts = new Set<number>();
  for (let i = 0; i < count; i++) cuts.add(1 + Math.floor(next() * (length - 1)));
  return [...cuts].sort((a, b) => a - b);
}

function preview(bytes: Buffer): string {
  const shown = JSON.stringify(bytes.subarray(0, PREVIEW_BYTES).toString('latin1'));
  return bytes.length > PREVIEW_BYTES ? `${shown}… (${bytes.length} bytes)` : `${shown} (${bytes.length} bytes)`;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/** The response a request id is building until its END_REQUEST. */
class InProgress {
  stdout: Buffer[] = [];
  stderr: Buffer[] = [];
  stdoutEnded = false;
  stderrEnded = false;
  records: PeerRecord[] = [];

  describe(): string {
    const types = this.records.map((r) => `${recordTypeName(r.type)}(${r.contentLength})`).join(' ') || 'none';
    return (
      `records: ${types}; stdout ${preview(Buffer.concat(this.stdout))}${this.stdoutEnded ? ' ended' : ''}; ` +
      `stderr ${preview(Buffer.concat(this.stderr))}${this.stderrEnded ? ' ended' : ''}`
    );
  }
}

interface RequestState {
  partial: InProgress;
  /** END_REQUESTs nobody waited for yet, oldest first. */
  done: PeerResponse[];
  waiters: Waiter<PeerResponse>[];
}

/**
 * TestPeer is one connection to an application server. It never throws asynchronously: socket errors, a
 * closed connection and unparseable replies settle `closed` and reject the pending waits.
 */
export class TestPeer {
  /** Every record received, in arrival order. */
  readonly records: PeerRecord[] = [];
  /** The raw chunks as 'data' delivered them, to inspect how the server framed its writes. */
  readonly receivedChunks: Buffer[] = [];
  /** The type byte of every UNKNOWN_TYPE reply. */
  readonly unknownTypeReplies: number[] = [];
  /** Settles once, when the socket closes. */
  readonly closed: Promise<PeerClosed>;
  /** Cut points used by the last send() that split its bytes (any mode but the default), to reproduce a failure. */
  lastCuts: number[] = [];
  bytesSent = 0;
  bytesReceived = 0;
  /** Set when the server sent bytes that are not FastCGI records; parsing stops there. */
  protocolError: Error | undefined;
  /** The 'end' event arrived: the server sent FIN. */
  endReceived = false;
  closedResult: PeerClosed | undefined;

  readonly #socket: net.Socket;
  #pending: Buffer = Buffer.alloc(0);
  readonly #requests = new Map<number, RequestState>();
  readonly #valueWaiters: Waiter<Map<string, string>>[] = [];
  #socketError: Error | undefined;
  readonly #out = new Uint32Array(L.OUT_HEADER_SLOTS + RECORD_CAPACITY * L.REC_STRIDE);

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => {
      this.endReceived = true;
    });
    socket.on('error', (error: Error) => {
      this.#socketError ??= error;
    });
    this.closed = new Promise<PeerClosed>((resolve) => {
      socket.once('close', () => {
        const result = this.#closeResult();
        this.closedResult = result;
        this.#failAll(this.#closedError(result));
        resolve(result);
      });
    });
  }

  /** connect opens a connection: a string is a unix socket path, an object a TCP port (host default 127.0.0.1). */
  static connect(address: string | { port: number; host?: string }): Promise<TestPeer> {
    return new Promise<TestPeer>((resolve, reject) => {
      const socket =
        typeof address === 'string'
          ? net.createConnection({ path: address })
          : net.createConnection({ port: address.port, host: address.host ?? '127.0.0.1' });
      const onError = (error: Error): void => {
        socket.destroy();
        reject(
          new Error(`TestPeer could not connect to ${JSON.stringify(address)}: ${error.message}`, { cause: error }),
        );
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve(new TestPeer(socket));
      });
    });
  }

  /** The underlying socket, for tests that need something the peer does not offer. */
  get socket(): net.Socket {
    return this.#socket;
  }

  /** send writes the bytes, cut as `options.split` says; resolves when every write has been handed to the kernel. */
  async send(bytes: Uint8Array | Uint8Array[], options: SendOptions = {}): Promise<void> {
    const chunks = this.#cut(bytes, options);
    for (let i = 0; i < chunks.length; i++) {
      // Yield between writes so the server's reads see the pieces separately (with Nagle off, see constructor).
      if (i > 0) await (options.delayMs === undefined ? nextTurn() : delay(options.delayMs));
      await this.#write(chunks[i]!);
    }
  }

  /** request sends a whole request (see buildRequest) and waits for its END_REQUEST. */
  async request(opts: RequestOptions = {}): Promise<PeerResponse> {
    const sendOptions: SendOptions = {};
    if (opts.split !== undefined) sendOptions.split = opts.split;
    if (opts.seed !== undefined) sendOptions.seed = opts.seed;
    if (opts.delayMs !== undefined) sendOptions.delayMs = opts.delayMs;
    await this.send(buildRequest(opts), sendOptions);
    return this.waitForEnd(opts.requestId ?? 1, opts.timeoutMs);
  }

  /**
   * waitForEnd resolves with the next END_REQUEST for the id not yet consumed by an earlier wait, whether it
   * arrived before this call or arrives later; rejects on timeout or if the connection closes first.
   */
  waitForEnd(requestId: number, timeoutMs = 5000): Promise<PeerResponse> {
    const state = this.#state(requestId);
    const ready = state.done.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.protocolError !== undefined) return Promise.reject(this.#withReceived(this.protocolError, requestId));
    if (this.closedResult !== undefined) {
      return Promise.reject(this.#withReceived(this.#closedError(this.closedResult), requestId));
    }
    return new Promise<PeerResponse>((resolve, reject) => {
      const waiter: Waiter<PeerResponse> = {
        resolve,
        reject,
        timer: setTimeout(() => {
          remove(state.waiters, waiter);
          reject(
            this.#withReceived(
              new Error(`TestPeer timed out after ${timeoutMs} ms waiting for END_REQUEST`),
              requestId,
            ),
          );
        }, timeoutMs),
      };
      state.waiters.push(waiter);
    });
  }

  /** inProgress describes what has arrived for the id since its last END_REQUEST (for messages). */
  inProgress(requestId: number): string {
    return this.#state(requestId).partial.describe();
  }

  /** getValues sends GET_VALUES for the names and resolves with the next GET_VALUES_RESULT's pairs (latin1). */
  async getValues(names: string[], timeoutMs = 5000): Promise<Map<string, string>> {
    if (this.protocolError !== undefined) throw this.protocolError;
    if (this.closedResult !== undefined) throw this.#closedError(this.closedResult);
    let waiter: Waiter<Map<string, string>> | undefined;
    // The waiter is registered before sending so a fast reply cannot slip past it.
    const result = new Promise<Map<string, string>>((resolve, reject) => {
      const registered: Waiter<Map<string, string>> = {
        resolve,
        reject,
        timer: setTimeout(() => {
          remove(this.#valueWaiters, registered);
          reject(
            new Error(`TestPeer timed out after ${timeoutMs} ms waiting for GET_VALUES_RESULT; ${this.#summary()}`),
          );
        }, timeoutMs),
      };
      waiter = registered;
      this.#valueWaiters.push(registered);
    });
    // A close while the send is in flight rejects `result` before the caller holds it; that is not unhandled.
    result.catch(() => undefined);
    try {
      await this.send(encodeGetValues(names));
    } catch (error) {
      if (waiter !== undefined) {
        clearTimeout(waiter.timer);
        remove(this.#valueWaiters, waiter);
      }
      throw error;
    }
    return result;
  }

  /** abort sends ABORT_REQUEST for the id. */
  abort(requestId: number): Promise<void> {
    return this.send(encodeAbortRequest(requestId));
  }

  /** end half-closes our side (FIN); the server can still answer. */
  end(): void {
    this.#socket.end();
  }

  /** destroy closes the connection at once; `closed` reports 'destroyed'. */
  destroy(): void {
    this.#socket.destroy();
  }

  #cut(bytes: Uint8Array | Uint8Array[], options: SendOptions): Uint8Array[] {
    const split = options.split;
    if (split === undefined) return Array.isArray(bytes) ? bytes : [bytes];
    const whole = Array.isArray(bytes)
      ? Buffer.concat(bytes)
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let cuts: number[];
    if (split === 'none') cuts = [];
    else if (split === 'bytes') cuts = Array.from({ length: Math.max(0, whole.length - 1) }, (_, i) => i + 1);
    else if (split === 'random') cuts = randomCuts(whole.length, options.seed ?? DEFAULT_SEED);
    else cuts = split;
    const chunks = splitAt(whole, cuts);
    let at = 0;
    this.lastCuts = chunks.slice(0, -1).map((chunk) => (at += chunk.length));
    return chunks;
  }

  #write(chunk: Uint8Array): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const socket = this.#socket;
      // Writing after end() or destroy() would make the socket emit an error and tear itself down; refuse instead.
      if (socket.destroyed || socket.writableEnded) {
        reject(
          new Error(`TestPeer cannot send: the connection is ${socket.destroyed ? 'closed' : 'half-closed by end()'}`),
        );
        return;
      }
      socket.write(chunk, (error) => {
        if (error) reject(new Error(`TestPeer write failed: ${error.message}`, { cause: error }));
        else {
          this.bytesSent += chunk.length;
          resolve();
        }
      });
    });
  }

  #state(requestId: number): RequestState {
    let state = this.#requests.get(requestId);
    if (state === undefined) {
      state = { partial: new InProgress(), done: [], waiters: [] };
      this.#requests.set(requestId, state);
    }
    return state;
  }

  #onData(chunk: Buffer): void {
    this.receivedChunks.push(chunk);
    if (this.protocolError !== undefined) return;
    const base = this.bytesReceived - this.#pending.length;
    this.bytesReceived += chunk.length;
    const buf = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const out = this.#out;
    let start = 0;
    for (;;) {
      const count = typescriptScanner.scanRecords(buf, start, buf.length, out);
      for (let i = 0; i < count; i++) {
        const slot = L.OUT_HEADER_SLOTS + i * L.REC_STRIDE;
        const contentOffset = out[slot + L.REC_CONTENT_OFFSET]!;
        const contentLength = out[slot + L.REC_CONTENT_LENGTH]!;
        const paddingLength = out[slot + L.REC_PADDING_LENGTH]!;
        this.#onRecord({
          type: out[slot + L.REC_TYPE]!,
          requestId: out[slot + L.REC_REQUEST_ID]!,
          contentLength,
          paddingLength,
          content: Buffer.from(buf.subarray(contentOffset, contentOffset + contentLength)),
          padding: Buffer.from(
            buf.subarray(contentOffset + contentLength, contentOffset + contentLength + paddingLength),
          ),
        });
        if (this.protocolError !== undefined) return;
      }
      start = out[L.OUT_CONSUMED]!;
      if (out[L.OUT_ERROR] !== L.ERR_NONE) {
        const at = out[L.OUT_ERROR_OFFSET]!;
        const bad = buf.subarray(at, at + 16).toString('hex');
        this.#protocolFailure(
          out[L.OUT_ERROR] === L.ERR_BAD_VERSION
            ? `server sent a record header with version ${out[L.OUT_ERROR_VALUE]} at stream offset ${base + at} (bytes ${bad})`
            : `scanner error ${out[L.OUT_ERROR]} at stream offset ${base + at}`,
        );
        return;
      }
      // Only a full output array means more records may follow in this buffer.
      if (count < RECORD_CAPACITY) break;
    }
    this.#pending = Buffer.from(buf.subarray(start));
  }

  #onRecord(record: PeerRecord): void {
    this.records.push(record);
    switch (record.type) {
      case RecordType.STDOUT:
      case RecordType.STDERR:
      case RecordType.END_REQUEST: {
        const state = this.#state(record.requestId);
        const partial = state.partial;
        partial.records.push(record);
        if (record.type === RecordType.STDOUT) {
          if (record.contentLength === 0) partial.stdoutEnded = true;
          else partial.stdout.push(record.content);
        } else if (record.type === RecordType.STDERR) {
          if (record.contentLength === 0) partial.stderrEnded = true;
          else partial.stderr.push(record.content);
        } else {
          if (record.contentLength < 8) {
            this.#protocolFailure(
              `END_REQUEST for request ${record.requestId} has a ${record.contentLength}-byte body; it must be 8`,
            );
            return;
          }
          const response: PeerResponse = {
            requestId: record.requestId,
            stdout: Buffer.concat(partial.stdout),
            stderr: Buffer.concat(partial.stderr),
            appStatus: record.content.readUInt32BE(0),
            protocolStatus: record.content[4]!,
            stdoutEnded: partial.stdoutEnded,
            stderrEnded: partial.stderrEnded,
            records: partial.records,
          };
          state.partial = new InProgress();
          const waiter = state.waiters.shift();
          if (waiter === undefined) state.done.push(response);
          else {
            clearTimeout(waiter.timer);
            waiter.resolve(response);
          }
        }
        return;
      }
      case RecordType.GET_VALUES_RESULT: {
        const waiter = this.#valueWaiters.shift();
        if (waiter === undefined) return;
        clearTimeout(waiter.timer);
        const values = parsePairs(record.content);
        if (values instanceof Error) waiter.reject(values);
        else waiter.resolve(values);
        return;
      }
      case RecordType.UNKNOWN_TYPE:
        if (record.contentLength < 1) {
          this.#protocolFailure('UNKNOWN_TYPE record has an empty body');
          return;
        }
        this.unknownTypeReplies.push(record.content[0]!);
        return;
      default:
        return;
    }
  }

  #protocolFailure(message: string): void {
    this.protocolError = new Error(`TestPeer: ${message}`);
    this.#failAll(this.protocolError);
    // Nothing after unparseable bytes can be trusted; `closed` then reports this error.
    this.#socket.destroy();
  }

  #failAll(error: Error): void {
    for (const [requestId, state] of this.#requests) {
      for (const waiter of state.waiters.splice(0)) {
        clearTimeout(waiter.timer);
        waiter.reject(this.#withReceived(error, requestId));
      }
    }
    for (const waiter of this.#valueWaiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
  }

  #closeResult(): PeerClosed {
    const error = this.protocolError ?? this.#socketError;
    const code = (this.#socketError as NodeJS.ErrnoException | undefined)?.code;
    const how: PeerClosed['how'] =
      code === 'ECONNRESET' || code === 'EPIPE'
        ? 'reset'
        : this.endReceived && error === undefined
          ? 'fin'
          : 'destroyed';
    const result: PeerClosed = { how, unparsed: this.#pending };
    if (error !== undefined) result.error = error;
    return result;
  }

  #closedError(result: PeerClosed): Error {
    const reason = result.error === undefined ? '' : ` (${result.error.message})`;
    const partial =
      result.unparsed.length > 0 ? `; ${result.unparsed.length} bytes of an incomplete record unparsed` : '';
    return new Error(`TestPeer: connection closed (${result.how})${reason}${partial}`, { cause: result.error });
  }

  #withReceived(error: Error, requestId: number): Error {
    return new Error(
      `${error.message} [request ${requestId}: ${this.#state(requestId).partial.describe()}; ${this.#summary()}]`,
      { cause: error },
    );
  }

  #summary(): string {
    return `connection: ${this.records.length} records, ${this.bytesReceived} bytes received, ${this.bytesSent} sent`;
  }
}

function remove<T>(list: T[], item: T): void {
  const index = list.indexOf(item);
  if (index !== -1) list.splice(index, 1);
}

// With the TS scanner, whatever the loader picked: the peer judges the server with the reference implementation.
function parsePairs(content: Buffer): Map<string, string> | Error {
  const { params, failure } = readPairBlock(content, typescriptScanner);
  if (failure !== null)
    return new Error(
      `TestPeer: malformed GET_VALUES_RESULT pairs (scanner error ${failure.error} at ${failure.offset}): ${preview(content)}`,
    );
  return new Map(params);
}

/**
 * parseCgiResponse splits CGI-style output into status, headers and body. Lines end with \r\n or \n; an empty
 * line ends the headers. `Status: 404 Not Found` sets the status; without it, Location means 302, else 200.
 */
export function parseCgiResponse(stdout: Buffer): CgiResponse {
  const headers: Array<[string, string]> = [];
  let at = 0;
  for (;;) {
    const newline = stdout.indexOf(0x0a, at);
    if (newline === -1) {
      throw new Error(`CGI output has no blank line ending its headers: ${preview(stdout)}`);
    }
    const lineEnd = newline > at && stdout[newline - 1] === 0x0d ? newline - 1 : newline;
    const line = stdout.toString('latin1', at, lineEnd);
    at = newline + 1;
    if (line === '') break;
    const colon = line.indexOf(':');
    if (colon === -1) throw new Error(`CGI header line has no colon: ${JSON.stringify(line)}`);
    headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  const header = (name: string): string | undefined => {
    const lower = name.toLowerCase();
    return headers.find(([n]) => n.toLowerCase() === lower)?.[1];
  };
  let status = 200;
  let reason = 'OK';
  const statusValue = header('status');
  if (statusValue !== undefined) {
    const match = /^(\d{3})(?:\s+(.*))?$/.exec(statusValue);
    if (match === null) throw new Error(`CGI Status header is not "NNN reason": ${JSON.stringify(statusValue)}`);
    status = Number(match[1]);
    reason = match[2] ?? '';
  } else if (header('location') !== undefined) {
    status = 302;
    reason = 'Found';
  }
  return { status, reason, headers, header, body: stdout.subarray(at) };
}
