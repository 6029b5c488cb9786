// RequestSocket: one FastCGI request as the application sees it. It is the request's STDOUT (a Writable, so
// http.ServerResponse can use it as its socket), carries the request's identity and params, feeds STDIN into
// whatever body stream the adapter attaches, and exposes STDERR, the Filter role's DATA stream and an
// AbortSignal. The Connection drives it; adapters (http, node-fastcgi, fetch) build their objects on it.
import { Readable, Writable } from 'node:stream';
import { RecordType, Role, type RoleValue } from '../protocol/constants';
import type { Params } from '../stream/params';
import { ErrorCode, RequestAbortedError, TimeoutError, type FastCGIError } from '../errors';

/** What a RequestSocket needs from its connection. */
export interface RequestOwner {
  writeStream(request: RequestSocket, type: number, chunk: Uint8Array): void;
  whenWritable(callback: () => void): void;
  complete(request: RequestSocket, appStatus: number): void;
  pauseInput(request: RequestSocket): void;
  resumeInput(request: RequestSocket): void;
}

/** Where STDIN (or DATA) goes: a Readable, or anything with the same push/destroy contract. */
export interface BodySink {
  push(chunk: Buffer | null): boolean;
  destroy(error?: Error): unknown;
}

/** Why a request ended before its response did. */
export type AbortReason = 'abort-request' | 'connection-closed' | 'timeout';

function noop(): void {}

// A body stream whose _read resumes the connection's reading (STDIN backpressure).
class InputStream extends Readable {
  readonly #request: RequestSocket;
  constructor(request: RequestSocket, highWaterMark: number) {
    super({ highWaterMark });
    this.#request = request;
  }
  override _read(): void {
    this.#request.resumeInput();
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
  #body: BodySink | null = null;
  #bodyEnded = false;
  #data: InputStream | null = null;
  #dataEnded = false;
  #stderr: StderrStream | null = null;
  #controller: AbortController | null = null;
  #abortReason: AbortReason | null = null;
  #ended = false;
  /** @internal Whether any STDERR was written (its stream then needs the empty terminator record). */
  stderrWritten = false;

  /** @internal Made by the Connection at BEGIN_REQUEST. */
  constructor(owner: RequestOwner, requestId: number, role: RoleValue, keepConn: boolean, options: RequestSocketOptions) {
    super({ highWaterMark: options.outputHighWaterMark });
    this.#owner = owner;
    this.#options = options;
    this.requestId = requestId;
    this.role = role;
    this.keepConn = keepConn;
    // Errors on this stream are write-after-abort noise; the connection reports real failures itself.
    this.on('error', noop);
  }

  /** The request's params, decoded lazily (values are byte strings). */
  get rawParams(): Params {
    if (this.#params === null) throw new Error('params are not complete yet');
    return this.#params;
  }

  /** The params as a plain object, later duplicates winning (node-fastcgi's `req.socket.params`). */
  get params(): Record<string, string> {
    return (this.#paramsObject ??= this.rawParams.toObject());
  }

  /** The request body (STDIN) as a Readable, unless an adapter attached its own sink. */
  get body(): Readable {
    if (this.#body === null) this.#body = new InputStream(this, this.#options.inputHighWaterMark);
    if (!(this.#body instanceof Readable)) throw new Error('the body was attached to another stream');
    return this.#body;
  }

  /** The Filter role's DATA stream (empty for other roles). */
  get dataStream(): Readable {
    if (this.#data === null) {
      this.#data = new InputStream(this, this.#options.inputHighWaterMark);
      if (this.role !== Role.FILTER) {
        this.#dataEnded = true;
        this.#data.push(null);
      }
    }
    return this.#data;
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
    this.#body = sink;
  }

  /** Lets the connection read again after a full body stream was drained. */
  resumeInput(): void {
    this.#owner.resumeInput(this);
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
    if (this.#bodyEnded) return;
    const sink = this.#body ?? this.body;
    if (chunk.length === 0) {
      this.#bodyEnded = true;
      sink.push(null);
    } else if (!sink.push(chunk) && !this.#ended) {
      this.#owner.pauseInput(this);
    }
  }

  /** @internal DATA from the connection (Filter role). */
  onData(chunk: Buffer): void {
    if (this.#dataEnded) return;
    const data = this.dataStream;
    if (chunk.length === 0) {
      this.#dataEnded = true;
      data.push(null);
    } else if (!data.push(chunk) && !this.#ended) {
      this.#owner.pauseInput(this);
    }
  }

  /** @internal Whether STDIN ended. */
  get bodyEnded(): boolean {
    return this.#bodyEnded;
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
      if (!this.#bodyEnded && this.#body !== null) this.#body.destroy(error);
      if (this.#data !== null && !this.#dataEnded) this.#data.destroy(error);
      this.destroy();
    }
  }

  #abortError(): FastCGIError {
    if (this.#abortReason === 'timeout') {
      return new TimeoutError(ErrorCode.HANDLER_TIMEOUT, 'the request handler did not finish within handlerTimeout', 'handler');
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

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#ended) return callback();
    if (chunk.length > 0) this.#owner.writeStream(this, RecordType.STDOUT, chunk);
    this.#owner.whenWritable(callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    if (this.#ended) return callback();
    for (const { chunk } of chunks) if (chunk.length > 0) this.#owner.writeStream(this, RecordType.STDOUT, chunk);
    this.#owner.whenWritable(callback);
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
