// RequestSocket: one FastCGI request as the application sees it. It is the request's STDOUT (a Writable, so
// http.ServerResponse can use it as its socket), carries the request's identity and params, feeds STDIN into
// whatever body stream the adapter attaches, and exposes STDERR, the Filter role's DATA stream and an
// AbortSignal. The Connection drives it; adapters (http, node-fastcgi, fetch) build their objects on it.
import { Readable, Writable } from 'node:stream';
import { RecordType, Role, type RoleValue } from '../wire/constants';
import type { Params } from '../wire/params';
import { ErrorCode, FastCGIError, RequestAbortedError, TimeoutError } from '../errors';
import { isCompactView } from '../wire/decoder';

/** What a RequestSocket needs from its connection. */
export interface RequestOwner {
  writeStream(request: RequestSocket, type: number, chunk: Uint8Array): void;
  /** Queues `text`, `length` bytes in `encoding`, as records of `type`; it is encoded as it is framed. */
  writeText(request: RequestSocket, type: number, text: string, encoding: BufferEncoding, length: number): void;
  whenWritable(callback: () => void): void;
  complete(request: RequestSocket, appStatus: number): void;
  pauseInput(request: RequestSocket): void;
  resumeInput(request: RequestSocket): void;
  /** Body bytes this request now holds beyond what its reader buffers (+ taken, - given back). */
  chargeBody(bytes: number): void;
  /** Body bytes arrived for this request (the body timer's rate). */
  bodyProgress(request: RequestSocket, bytes: number, ended: boolean): void;
}

/**
 * Where STDIN (or DATA) goes: a Readable, or anything with the same push/destroy contract. The sink is fed
 * when its `_read` asks (it must call `resumeInput()`), or at once while it holds nothing (`readableLength`).
 */
export interface BodySink {
  push(chunk: Buffer | null): boolean;
  destroy(error?: Error): unknown;
  readonly readableLength?: number;
}

// Body pieces at least this large, that pin at most twice their size of socket memory, wait as zero-copy
// views; smaller ones are copied into one shared buffer of this size. A peer cutting its body into 1-byte
// records then costs at most 2x the bytes it sent, not a Buffer object per byte (test/server/abuse.test.ts).
const COALESCE_BYTES = 16 * 1024;
const TAIL_MIN_BYTES = 1024;
// A piece at least this large, cut from the socket read the stream's last chunk came from, goes to it as it is.
const SAME_READ_MIN_BYTES = 4 * 1024;

/**
 * Body bytes that arrived but that the reader has not asked for. They are handed to the reader's stream only
 * when it asks (or holds nothing), as few large chunks: a stream's highWaterMark counts bytes, not chunks, so
 * pushing every record as it came would let tiny records fill it with objects.
 */
class PendingBody {
  #pieces: Buffer[] = [];
  #tail: Buffer | null = null;
  #tailUsed = 0;
  // The next tail's size: doubled after each tail that filled up, back to the least when a view cuts one short.
  #nextTail = TAIL_MIN_BYTES;
  /** Bytes waiting. */
  bytes = 0;
  /** Bytes of memory held for them (views plus the coalescing buffers' capacity). */
  held = 0;
  /** The body's end arrived; push null after the last byte. */
  ended = false;

  /** Adds a piece; returns the bytes of memory it added. */
  add(piece: Buffer): number {
    this.bytes += piece.length;
    if (piece.length >= COALESCE_BYTES && isCompactView(piece)) {
      this.#closeTail();
      this.#nextTail = TAIL_MIN_BYTES;
      this.#pieces.push(piece);
      this.held += piece.length;
      return piece.length;
    }
    let added = 0;
    let offset = 0;
    while (offset < piece.length) {
      if (this.#tail === null || this.#tailUsed === this.#tail.length) {
        this.#closeTail();
        // Sized to the piece, and growing through a run of small pieces (1 KiB records become 1, 2, 4 ... 16 KiB
        // chunks, not a chunk each): a tail that a view cuts short wastes at most what the run before it filled.
        const capacity = Math.min(COALESCE_BYTES, Math.max(this.#nextTail, piece.length - offset));
        this.#nextTail = Math.min(COALESCE_BYTES, capacity * 2);
        this.#tail = Buffer.allocUnsafe(capacity);
        added += capacity;
      }
      const n = piece.copy(this.#tail, this.#tailUsed, offset);
      this.#tailUsed += n;
      offset += n;
    }
    this.held += added;
    return added;
  }

  /**
   * Everything waiting, as the pieces it is kept in (empty when nothing waits); they are handed over. Not
   * concatenated: a copy of every byte that waited (and a new Buffer per feed) was most of what a 1 MB upload
   * through nginx cost beyond the hash (bench:e2e post-1m profile), and a stream takes several chunks as well.
   */
  take(): Buffer[] {
    this.#closeTail();
    const pieces = this.#pieces;
    this.#pieces = [];
    this.#nextTail = TAIL_MIN_BYTES;
    this.bytes = 0;
    this.held = 0;
    return pieces;
  }

  #closeTail(): void {
    if (this.#tail !== null && this.#tailUsed > 0) this.#pieces.push(this.#tail.subarray(0, this.#tailUsed));
    this.#tail = null;
    this.#tailUsed = 0;
  }
}

/** Why a request ended before its response did. */
export type AbortReason = 'abort-request' | 'connection-closed' | 'timeout';

function noop(): void {}

// A body stream whose _read resumes the connection's reading (STDIN backpressure).
class InputStream extends Readable {
  readonly #request: RequestSocket;
  readonly #data: boolean;
  constructor(request: RequestSocket, highWaterMark: number, data: boolean) {
    super({ highWaterMark });
    this.#request = request;
    this.#data = data;
  }
  override _read(): void {
    if (this.#data) this.#request.resumeData();
    else this.#request.resumeInput();
  }
  // An abort destroys the stream with an error. Nobody may be listening (a FILTER handler that never touched
  // req.data); like http.IncomingMessage, emit the error only to listeners, so it is never thrown
  // (bench/dos.ts filter-data-abort took the process down).
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    callback(this.listenerCount('error') > 0 ? error : null);
  }
}

class StderrStream extends Writable {
  readonly #request: RequestSocket;
  readonly #owner: RequestOwner;
  constructor(request: RequestSocket, owner: RequestOwner) {
    super({ highWaterMark: 16 * 1024 });
    this.#request = request;
    this.#owner = owner;
    this.on('error', noop);
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#request.isEnded) return callback();
    if (chunk.length > 0) {
      this.#request.stderrWritten = true;
      this.#owner.writeStream(this.#request, RecordType.STDERR, chunk);
    }
    this.#owner.whenWritable(callback);
  }
}

/** Settings a RequestSocket takes from its server. */
export interface RequestSocketOptions {
  /** Bytes of response buffered per request before write() returns false. */
  outputHighWaterMark: number;
  /** Bytes of unread body buffered per request before the connection stops reading. */
  inputHighWaterMark: number;
}

/**
 * One FastCGI request. Write the response (CGI headers, blank line, body) to it as to a stream; end() sends
 * the empty STDOUT record and END_REQUEST with `appStatus`. Emits 'abort' (reason) when the web server gives up
 * on the request, and 'close' when it is over either way.
 */
export class RequestSocket extends Writable {
  /** The request id (1-65535); web servers reuse 1 on every connection. */
  readonly requestId: number;
  /** RESPONDER, AUTHORIZER or FILTER. */
  readonly role: RoleValue;
  /** Whether the web server keeps the connection open after this request (FCGI_KEEP_CONN). */
  readonly keepConn: boolean;
  /** The app status END_REQUEST will carry (0 = success). */
  appStatus = 0;
  readonly #owner: RequestOwner;
  readonly #options: RequestSocketOptions;
  #params: Params | null = null;
  #paramsObject: Record<string, string> | null = null;
  // STDIN, and the Filter role's DATA once asked for: what arrived, and the stream it goes to.
  readonly #stdin: BodyInput;
  #data: BodyInput | null = null;
  #stderr: StderrStream | null = null;
  #controller: AbortController | null = null;
  #abortReason: AbortReason | null = null;
  #ended = false;
  /** @internal Whether any STDERR was written (its stream then needs the empty terminator record). */
  stderrWritten = false;
  /**
   * The response status the application sent (its CGI Status; 200 for a header block without one), 0 until
   * it sent headers. Adapters set it; for raw STDOUT writes it is read from the first chunk.
   */
  status = 0;
  /** @internal An adapter wrote the CGI head: a failure after it cuts the response short instead of answering 500. */
  headWritten = false;
  /** Body bytes received (STDIN and DATA). */
  bytesIn = 0;
  /** Response bytes written to STDOUT. */
  bytesOut = 0;
  /** `performance.now()` when its BEGIN_REQUEST arrived. */
  readonly startTime = performance.now();
  /** @internal `Date.now()` since which its params are awaited (paramsTimeout); -1 once they are complete. */
  paramsSince = -1;
  /** @internal `Date.now()` by which more of its body must arrive (bodyTimeout, minBodyRate); 0 for none. */
  bodyDeadline = 0;

  /** @internal Made by the Connection at BEGIN_REQUEST. */
  constructor(
    owner: RequestOwner,
    requestId: number,
    role: RoleValue,
    keepConn: boolean,
    options: RequestSocketOptions,
  ) {
    // Strings (node's ServerResponse writes its header block as one) reach _write as they are and are encoded
    // once, into the record buffer (RecordWriter.streamText), not into a Buffer of their own first.
    super({ highWaterMark: options.outputHighWaterMark, decodeStrings: false });
    this.#owner = owner;
    this.#options = options;
    this.#stdin = new BodyInput(owner);
    this.requestId = requestId;
    this.role = role;
    this.keepConn = keepConn;
    // Errors on this stream are write-after-abort noise; the connection reports real failures itself.
    this.on('error', noop);
  }

  /** The request's params, decoded lazily (values are byte strings). */
  get rawParams(): Params {
    if (this.#params === null) throw new FastCGIError(ErrorCode.INVALID_STATE, 'params are not complete yet');
    return this.#params;
  }

  /** The params as an object, later duplicates winning (node-fastcgi's `req.socket.params`; see Params.toObject). */
  get params(): Record<string, string> {
    return (this.#paramsObject ??= this.rawParams.toObject());
  }

  /**
   * @internal The node-fastcgi drop-in's params object (node-fastcgi's shape), set as its request is built. A
   * diagnostics subscriber that read `params` before that (serverRequestStart) keeps the object it got.
   */
  useParamsObject(params: Record<string, string>): void {
    this.#paramsObject = params;
  }

  /** The request body (STDIN) as a Readable, unless an adapter attached its own sink. */
  get body(): Readable {
    this.#stdin.sink ??= new InputStream(this, this.#options.inputHighWaterMark, false);
    if (!(this.#stdin.sink instanceof Readable))
      throw new FastCGIError(
        ErrorCode.INVALID_STATE,
        'the body was attached to another sink (setBodySink), so it is not a Readable here',
      );
    return this.#stdin.sink;
  }

  /** The Filter role's DATA stream (empty for other roles). */
  get dataStream(): Readable {
    return this.#dataInput().sink as InputStream;
  }

  /** STDERR: what is written here reaches the web server's error log. */
  get stderr(): Writable {
    return (this.#stderr ??= new StderrStream(this, this.#owner));
  }

  /** node-fastcgi's name for `stderr`. */
  get errorStream(): Writable {
    return this.stderr;
  }

  /** Aborted when the web server sends ABORT_REQUEST, the connection closes, or the handler times out. */
  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    if (this.#abortReason !== null && !this.#controller.signal.aborted) this.#controller.abort(this.#abortError());
    return this.#controller.signal;
  }

  /** Why the request was aborted, or null. */
  get abortReason(): AbortReason | null {
    return this.#abortReason;
  }

  /** Whether END_REQUEST was queued (or the request was abandoned); later writes are dropped. */
  get isEnded(): boolean {
    return this.#ended;
  }

  /**
   * The body's buffer size (inputHighWaterMark). http.IncomingMessage takes its highWaterMark from its
   * socket's `readableHighWaterMark`; without this it would use Node's default and ignore the option.
   */
  get readableHighWaterMark(): number {
    return this.#options.inputHighWaterMark;
  }

  // Address fields for code written against net.Socket (Express's req.ip, req.protocol, logging).
  get remoteAddress(): string | undefined {
    return this.#params?.get('REMOTE_ADDR');
  }
  get remotePort(): number | undefined {
    const port = this.#params?.get('REMOTE_PORT');
    return port === undefined ? undefined : Number(port);
  }
  get remoteFamily(): string | undefined {
    const address = this.remoteAddress;
    return address === undefined ? undefined : address.includes(':') ? 'IPv6' : 'IPv4';
  }
  get localAddress(): string | undefined {
    return this.#params?.get('SERVER_ADDR');
  }
  get localPort(): number | undefined {
    const port = this.#params?.get('SERVER_PORT');
    return port === undefined ? undefined : Number(port);
  }
  /** True when the client reached the web server over TLS (HTTPS=on), as tls.TLSSocket would say. */
  get encrypted(): boolean {
    const https = this.#params?.get('HTTPS');
    return https !== undefined && https !== '' && https.toLowerCase() !== 'off';
  }
  address(): { address: string; family: string; port: number } | Record<string, never> {
    const address = this.localAddress;
    if (address === undefined) return {};
    return { address, family: address.includes(':') ? 'IPv6' : 'IPv4', port: this.localPort ?? 0 };
  }
  // No-ops that frameworks call on sockets; the connection's own timeouts govern the transport.
  setTimeout(_ms: number, callback?: () => void): this {
    if (callback !== undefined) this.once('timeout', callback);
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  /**
   * Attaches the stream that receives STDIN (http.IncomingMessage does this). Its `_read` must call
   * `resumeInput()`. Call it before returning from the request event.
   */
  setBodySink(sink: BodySink): void {
    this.#stdin.sink = sink;
  }

  /** The body's reader asks for more (its `_read`): hand over what waits, and let the connection read again. */
  resumeInput(): void {
    this.#resume(this.#stdin);
  }

  /** @internal The DATA stream's reader asks for more. */
  resumeData(): void {
    this.#resume(this.#dataInput());
  }

  #resume(input: BodyInput): void {
    input.feed();
    if (input.unread < this.#options.inputHighWaterMark) this.#owner.resumeInput(this);
  }

  // The DATA input, with its stream; for a role other than FILTER, an empty stream.
  #dataInput(): BodyInput {
    if (this.#data === null) {
      this.#data = new BodyInput(this.#owner);
      this.#data.sink = new InputStream(this, this.#options.inputHighWaterMark, true);
      if (this.role !== Role.FILTER) this.#data.finish();
    }
    return this.#data;
  }

  /** @internal */
  setParams(params: Params): void {
    this.#params = params;
  }

  /** @internal */
  get hasParams(): boolean {
    return this.#params !== null;
  }

  /** @internal STDIN from the connection; an empty chunk ends the body. */
  onStdin(chunk: Buffer): void {
    if (this.#stdin.ended) return;
    this.bytesIn += chunk.length;
    this.#owner.bodyProgress(this, chunk.length, chunk.length === 0);
    this.#receive(this.#stdin, chunk);
  }

  /** @internal DATA from the connection (Filter role). */
  onData(chunk: Buffer): void {
    const input = this.#dataInput();
    this.bytesIn += chunk.length;
    if (!input.done && !input.ended) this.#receive(input, chunk);
  }

  // inputHighWaterMark bounds the unread body: what the reader's stream holds and what waits for it.
  #receive(input: BodyInput, chunk: Buffer): void {
    input.receive(chunk);
    if (input.unread >= this.#options.inputHighWaterMark && !this.#ended) this.#owner.pauseInput(this);
  }

  /** @internal Gives back the memory charged for body bytes that will never be read (the request is over). */
  releaseBody(): void {
    this.#stdin.release();
    this.#data?.release();
  }

  /** @internal Whether STDIN ended (its empty record arrived). */
  get bodyEnded(): boolean {
    return this.#stdin.ended;
  }

  /** @internal The web server gave up: abort signal, body error, 'abort' event; no more output. */
  abortFromPeer(reason: AbortReason): void {
    if (this.#abortReason !== null) return;
    this.#abortReason = reason;
    const error = this.#abortError();
    this.#controller?.abort(error);
    this.emit('abort', reason);
    if (reason !== 'timeout') {
      this.#ended = true;
      this.releaseBody();
      this.#stdin.destroy(error);
      this.#data?.destroy(error);
      this.destroy();
    }
  }

  #abortError(): FastCGIError {
    if (this.#abortReason === 'timeout') {
      return new TimeoutError(
        ErrorCode.HANDLER_TIMEOUT,
        'the request handler did not finish within handlerTimeout',
        'handler',
      );
    }
    return new RequestAbortedError(
      this.#abortReason === 'abort-request'
        ? 'request aborted by the web server (ABORT_REQUEST)'
        : 'request aborted: the web server closed the connection',
    );
  }

  /** @internal Marks the request over (END_REQUEST queued by the connection). */
  markEnded(): void {
    this.#ended = true;
  }

  override _write(chunk: Buffer | string, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#ended) return callback();
    this.#stdout(chunk, encoding);
    this.#owner.whenWritable(callback);
  }

  override _writev(
    chunks: { chunk: Buffer | string; encoding: BufferEncoding }[],
    callback: (error?: Error | null) => void,
  ): void {
    if (this.#ended) return callback();
    for (let i = 0; i < chunks.length; i++) this.#stdout(chunks[i]!.chunk, chunks[i]!.encoding);
    this.#owner.whenWritable(callback);
  }

  #stdout(chunk: Buffer | string, encoding: BufferEncoding): void {
    if (chunk.length === 0) return;
    if (typeof chunk === 'string') {
      if (this.status === 0) this.status = statusOf(Buffer.from(chunk.slice(0, 8192), encoding));
      const length = Buffer.byteLength(chunk, encoding);
      this.bytesOut += length;
      this.#owner.writeText(this, RecordType.STDOUT, chunk, encoding, length);
      return;
    }
    if (this.status === 0) this.status = statusOf(chunk);
    this.bytesOut += chunk.length;
    this.#owner.writeStream(this, RecordType.STDOUT, chunk);
  }

  override _final(callback: (error?: Error | null) => void): void {
    // STDERR must be complete before END_REQUEST: nothing of a request may follow it on the wire.
    const stderr = this.#stderr;
    if (stderr !== null && !stderr.writableFinished) {
      stderr.end(() => {
        this.#finish();
        callback();
      });
      return;
    }
    this.#finish();
    callback();
  }

  #finish(): void {
    if (this.#ended) return;
    this.#owner.complete(this, this.appStatus);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Destroyed by the application before the response ended (res.destroy(), a body error): end the request
    // with a failure status so the web server does not take a truncated response for a complete one.
    if (!this.#ended) this.#owner.complete(this, this.appStatus === 0 ? 1 : this.appStatus);
    this.#stderr?.destroy();
    callback(error);
  }
}

/**
 * One input stream of a request (STDIN, or the Filter role's DATA): the bytes that arrived and the stream they
 * go to. A piece goes straight to the stream when the stream asked for data and got none, or holds nothing and
 * nothing waits before it (zero-copy, the common case); otherwise it waits, coalesced, until the stream asks.
 * With no stream yet (the handler has not started: its connection's output is backed up) everything waits.
 */
class BodyInput {
  readonly #owner: RequestOwner;
  readonly #pending = new PendingBody();
  /** The stream the bytes go to, once there is one. */
  sink: BodySink | null = null;
  /** null was pushed to the stream: nothing more goes to it. */
  done = false;
  // The stream asked (its _read) and got nothing: the next piece goes to it at once.
  #wanted = false;
  // The memory of the last piece handed straight to the stream (a socket read's buffer).
  #lastRead: ArrayBufferLike | null = null;

  constructor(owner: RequestOwner) {
    this.#owner = owner;
  }

  /** The stream's empty record arrived. */
  get ended(): boolean {
    return this.#pending.ended;
  }

  /** Bytes not read yet: held by the stream plus waiting for it. */
  get unread(): number {
    return this.#pending.bytes + (this.sink?.readableLength ?? 0);
  }

  /**
   * A piece arrived (empty: the end). It goes to the stream at once when the stream asked or holds nothing, or
   * when it is cut from the same socket read as the last piece the stream got: that memory is held already, and
   * copying it aside instead (a socket read carries two or three of nginx's 32 KiB STDIN records) was a fetch
   * handler's main cost on a 1 MB upload beyond the hash (bench:e2e post-1m profile). One read is at most 64
   * KiB, so this adds no more than that to what the stream holds, and pieces under 4 KiB are still coalesced
   * (a read of small records must not become as many chunks).
   */
  receive(chunk: Buffer): void {
    if (chunk.length === 0) this.#pending.ended = true;
    const sink = this.sink;
    if (
      sink !== null &&
      this.#pending.bytes === 0 &&
      (this.#wanted ||
        (sink.readableLength ?? 0) === 0 ||
        (chunk.buffer === this.#lastRead && chunk.length >= SAME_READ_MIN_BYTES))
    ) {
      this.#wanted = false;
      if (chunk.length > 0) this.#lastRead = chunk.buffer;
      if (chunk.length === 0) this.finish();
      else sink.push(chunk);
      return;
    }
    if (chunk.length > 0) this.#owner.chargeBody(this.#pending.add(chunk));
  }

  /**
   * The stream asked for data (`_read`). A stream that still holds data is given what waits only when that is
   * at least one coalesced piece's worth, or the end; else an empty push ends its read without adding a chunk
   * (Readable then asks again when it runs low), which keeps tiny records from piling up in it as chunks.
   */
  feed(): void {
    const sink = this.sink;
    if (sink === null || this.done) return;
    const pending = this.#pending;
    const holding = (sink.readableLength ?? 0) > 0;
    this.#wanted = false;
    if (pending.bytes === 0) {
      if (pending.ended) this.finish();
      else if (holding) sink.push(EMPTY_CHUNK);
      else this.#wanted = true;
      return;
    }
    if (holding && pending.bytes < COALESCE_BYTES && !pending.ended) {
      sink.push(EMPTY_CHUNK);
      return;
    }
    const held = pending.held;
    const pieces = pending.take();
    this.#owner.chargeBody(-held);
    for (const piece of pieces) sink.push(piece);
    if (pending.ended) this.finish();
  }

  /** Ends the stream (its last byte went to it). */
  finish(): void {
    this.done = true;
    this.sink!.push(null);
  }

  /** Gives back the memory held for bytes that will never be read. */
  release(): void {
    const held = this.#pending.held;
    this.#pending.take();
    if (held > 0) this.#owner.chargeBody(-held);
  }

  /** The request was aborted: the stream fails with `error`, unless it already ended. */
  destroy(error: Error): void {
    if (!this.done) this.sink?.destroy(error);
  }
}

const EMPTY_CHUNK = Buffer.alloc(0);

const STATUS_HEADER = Buffer.from('\nStatus:', 'latin1');

/**
 * The status of a CGI header block written straight to STDOUT (RFC 3875 §6.3.3: `Status: NNN`, 200 without
 * one), read from its first chunk; adapters that know the status set it before writing, so this runs only
 * for raw writers, once per request.
 */
export function statusOf(chunk: Uint8Array): number {
  const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  let at: number;
  if (buffer.length >= 7 && buffer.toString('latin1', 0, 7).toLowerCase() === 'status:') at = 7;
  else {
    const found = buffer.indexOf(STATUS_HEADER);
    // The header block ends at the first empty line (CRLF CRLF, or LF LF from a lax writer).
    const crlf = buffer.indexOf('\r\n\r\n');
    const lf = buffer.indexOf('\n\n');
    const headerEnd = crlf === -1 ? lf : lf === -1 ? crlf : Math.min(crlf, lf);
    if (found === -1 || (headerEnd !== -1 && found > headerEnd)) {
      // No Status: a Location alone is a redirect, 302 (RFC 3875 §6.2.3), as the CGI response parser reads it.
      const block = buffer
        .toString('latin1', 0, headerEnd === -1 ? Math.min(buffer.length, 8192) : headerEnd)
        .toLowerCase();
      return block.startsWith('location:') || block.includes('\nlocation:') ? 302 : 200;
    }
    at = found + STATUS_HEADER.length;
  }
  while (buffer[at] === 0x20 || buffer[at] === 0x09) at++;
  const code = Number(buffer.toString('latin1', at, at + 3));
  return Number.isInteger(code) && code >= 100 && code <= 999 ? code : 200;
}
