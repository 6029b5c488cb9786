// ClientConnection: one connection to a backend. It writes requests (BEGIN_REQUEST, PARAMS, STDIN, DATA) with
// the engine's RecordWriter, reads replies with its Decoder, routes records to requests by id, reuses ids, and
// applies both directions of backpressure; the pool decides which requests it carries.
import { channels } from '../diagnostics/channels';
import { build } from '../diagnostics/messages';
import { connect, type Socket } from 'node:net';
import { Decoder } from '../wire/decoder';
import { RecordWriter } from '../wire/record-writer';
import { Flag, ProtocolStatus, RecordType } from '../wire/constants';
import { encodeAbortRequest, encodeBeginRequest } from '../wire/records';
import type { FastCGIError } from '../errors';
import type { ConnectTarget } from '../wire/address';
import type { PreparedBody } from './body';
import type { ClientRequest, RequestCarrier } from './client-request';
import { ErrorCode, TimeoutError } from '../errors';
import { BackendClosedError, ConnectError, RequestBodyError, clientProtocolError } from './errors';
import { setRequestId } from '../wire/header';

/** What a connection reports to its pool. */
export interface ConnectionOwner {
  /** Connected: it can take requests. */
  onReady(connection: ClientConnection): void;
  /** Connecting failed (ConnectError or a connect timeout); onClosed does not follow. */
  onConnectFailed(connection: ClientConnection, error: FastCGIError): void;
  /** A request ended: the connection has room for another. */
  onCapacity(connection: ClientConnection): void;
  /** The backend answered CANT_MPX_CONN: it does not multiplex after all. */
  onMultiplexRefused(connection: ClientConnection): void;
  /** The connection is closing (backend EOF, idle timeout, error): give it no more requests. */
  onUnusable(connection: ClientConnection): void;
  /** The socket closed (after a successful connect). */
  onClosed(connection: ClientConnection): void;
  /** Whether a request lost with a connection may be sent again (not once the client is closing). */
  readonly acceptsReplays: boolean;
  /** A request lost with this connection that can be sent again (ClientRequest.canReplay). */
  onReplay(request: ClientRequest): void;
}

/** The settings a connection reads. */
export interface ConnectionSettings {
  keepConn: boolean;
  padRecords: boolean;
  connectionHighWaterMark: number;
  connectTimeout: number;
  idleTimeout: number;
  abortWith: 'abort-request' | 'close' | null;
  /** Replay a lost request from a fresh connection too (ClientRequest.canReplay): a balancer sends it elsewhere. */
  replayFromAnyConnection: boolean;
}

const enum State {
  Connecting,
  Ready,
  Closing,
  Closed,
}

// After our FIN, a backend that never closes its side is cut off after this long.
const CLOSE_GRACE_MS = 2000;

/** One backend connection. */
export class ClientConnection implements RequestCarrier {
  readonly socket: Socket;
  readonly target: ConnectTarget;
  readonly #owner: ConnectionOwner;
  readonly #settings: ConnectionSettings;
  readonly #decoder: Decoder;
  readonly #writer: RecordWriter;
  // Requests by id; ids are reused, lowest-freed first, so a non-multiplexed connection always uses id 1.
  readonly #requests: (ClientRequest | undefined)[] = [undefined];
  readonly #freeIds: number[] = [];
  #nextId = 1;
  #inFlight = 0;
  #started = 0;
  // Requests that got their END_REQUEST here: a connection that has answered one is a reused one.
  #ended = 0;
  #pausedRequests = 0;
  #state = State.Connecting;
  #closeWhenIdle = false;
  #timer: NodeJS.Timeout | null = null;
  #socketError: Error | null = null;
  #connectError: FastCGIError | null = null;
  readonly #drainWaiters = new Set<() => void>();
  /** Requests in flight at once: 1 unless the pool multiplexes. */
  capacity = 1;

  constructor(owner: ConnectionOwner, target: ConnectTarget, settings: ConnectionSettings) {
    this.#owner = owner;
    this.target = target;
    this.#settings = settings;
    this.socket =
      'path' in target
        ? connect({ path: target.path })
        : connect({ host: target.host, port: target.port, noDelay: true });
    (this.socket as SocketWithConnection)[kConnection] = this;
    this.#writer = new RecordWriter(this.socket, {
      pad: settings.padRecords,
      highWaterMark: settings.connectionHighWaterMark,
    });
    this.#decoder = new Decoder(this, { collectParams: false });
    this.socket.on('connect', onSocketConnect);
    this.socket.on('data', onSocketData);
    this.socket.on('end', onSocketEnd);
    this.socket.on('error', onSocketError);
    this.socket.on('close', onSocketClose);
    this.socket.on('timeout', onSocketTimeout);
    if (settings.connectTimeout > 0) this.#timer = setTimeout(onConnectTimer, settings.connectTimeout, this);
    if (channels.clientConnect.hasSubscribers)
      channels.clientConnect.publish(build.clientConnect(target.label, this.socket));
  }

  /** Requests in flight (aborted ones included until their END_REQUEST). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Requests started on this connection so far. */
  get started(): number {
    return this.#started;
  }

  /** Whether the connection is up and can take one more request now. */
  get isAvailable(): boolean {
    return (
      this.#state === State.Ready &&
      !this.#closeWhenIdle &&
      this.#inFlight < this.capacity &&
      (this.#settings.keepConn || this.#started === 0)
    );
  }

  /** Whether the connection is up (possibly busy). */
  get isReady(): boolean {
    return this.#state === State.Ready && !this.#closeWhenIdle;
  }

  // ---- Requests -----------------------------------------------------------------------------------------------

  /** Starts `request` here: BEGIN_REQUEST, its PARAMS and its body, all queued for one coalesced write. */
  start(request: ClientRequest): void {
    const requestId = this.#freeIds.length > 0 ? this.#freeIds.pop()! : this.#nextId++;
    this.#requests[requestId] = request;
    this.#inFlight++;
    this.#started++;
    request.assign(this, requestId, this.#ended > 0);
    const spec = request.spec;
    const writer = this.#writer;
    writer.raw(encodeBeginRequest(requestId, spec.role, this.#settings.keepConn ? Flag.KEEP_CONN : 0));
    setRequestId(spec.params, requestId);
    writer.raw(spec.params);
    if (spec.body.kind === 'bytes' && (spec.data === null || spec.data.kind === 'bytes')) {
      // The common case, synchronously: bytes in memory (or none), then the stream terminators.
      this.#writeBytes(RecordType.STDIN, requestId, spec.body);
      writer.endStream(RecordType.STDIN, requestId);
      if (spec.data !== null) {
        this.#writeBytes(RecordType.DATA, requestId, spec.data);
        writer.endStream(RecordType.DATA, requestId);
      }
      // The whole request is queued. Alone on its connection it is written now rather than at setImmediate: the
      // backend worker is idle, waiting for it (php-fpm), and a turn of the event loop is a turn of its time
      // lost. When several start together on a multiplexed connection, the first goes out alone and the others
      // share one write at setImmediate.
      if (this.#inFlight === 1) writer.flush();
    } else {
      void this.#pump(request, requestId);
    }
  }

  #writeBytes(type: number, requestId: number, body: PreparedBody): void {
    if (body.kind !== 'bytes') return;
    for (const chunk of body.chunks) this.#writer.stream(type, requestId, chunk);
  }

  // Streams bodies of known length, waiting for the socket to drain; FastCGI 1.0 §6.4: a Filter's DATA follows
  // the whole of STDIN.
  async #pump(request: ClientRequest, requestId: number): Promise<void> {
    try {
      if (!(await this.#send(request, requestId, RecordType.STDIN, request.spec.body))) return;
      this.#writer.endStream(RecordType.STDIN, requestId);
      const data = request.spec.data;
      if (data === null) return;
      if (!(await this.#send(request, requestId, RecordType.DATA, data))) return;
      this.#writer.endStream(RecordType.DATA, requestId);
    } catch (error) {
      if (this.#owns(request, requestId)) request.fail(error as Error);
    }
  }

  // Sends one body; false when the request ended (or the connection went) while it was being sent.
  async #send(request: ClientRequest, requestId: number, type: number, body: PreparedBody): Promise<boolean> {
    if (body.kind === 'bytes') {
      this.#writeBytes(type, requestId, body);
      return this.#owns(request, requestId);
    }
    const what = type === RecordType.STDIN ? 'request body' : 'DATA stream';
    let sent = 0;
    try {
      for await (const piece of body.source) {
        // Leaving the loop destroys a Readable source: nobody needs the rest once the request is over.
        if (!this.#owns(request, requestId)) return false;
        const chunk = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece;
        sent += chunk.length;
        if (sent > body.length) {
          throw new RequestBodyError(
            ErrorCode.BODY_LENGTH_MISMATCH,
            `the ${what} is longer than its declared length ${body.length}`,
          );
        }
        if (chunk.length > 0) this.#writer.stream(type, requestId, chunk);
        if (this.#writer.bufferedBytes >= this.#settings.connectionHighWaterMark) await this.#writable();
      }
    } catch (error) {
      if (error instanceof RequestBodyError) throw error;
      throw new RequestBodyError(
        ErrorCode.BODY_SOURCE,
        `reading the ${what} failed: ${(error as Error)?.message ?? String(error)}`,
        { cause: error },
      );
    }
    if (!this.#owns(request, requestId)) return false;
    if (sent !== body.length) {
      throw new RequestBodyError(
        ErrorCode.BODY_LENGTH_MISMATCH,
        `the ${what} ended after ${sent} of its declared ${body.length} bytes`,
      );
    }
    return true;
  }

  #writable(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.#drainWaiters.delete(done);
        resolve();
      };
      this.#drainWaiters.add(done);
      this.#writer.whenWritable(done);
    });
  }

  #owns(request: ClientRequest, requestId: number): boolean {
    return this.#requests[requestId] === request && !request.isDone && this.#state !== State.Closed;
  }

  /** @internal RequestCarrier: stop a request the caller gave up on. */
  cancel(request: ClientRequest): void {
    const requestId = request.requestId;
    if (this.#requests[requestId] !== request || this.#state === State.Closed) return;
    const useRecord =
      this.#settings.abortWith === 'abort-request' || (this.#settings.abortWith === null && this.capacity > 1);
    if (useRecord && this.#state === State.Ready) {
      // FastCGI 1.0 §5.4: the id stays taken until the backend's END_REQUEST; what arrives for it is dropped.
      this.#writer.raw(encodeAbortRequest(requestId));
    } else {
      // php-fpm ignores ABORT_REQUEST and runs the script to completion (protocol.md §5): closing is what stops it.
      this.socket.destroy();
    }
  }

  /** @internal RequestCarrier */
  pauseFor(_request: ClientRequest): void {
    // With several requests multiplexed here, one full body holds the others back too (head-of-line
    // blocking): the price of bounded memory, as on the server side.
    if (this.#pausedRequests++ === 0 && this.#state !== State.Closed) this.socket.pause();
  }

  /** @internal RequestCarrier */
  resumeFor(_request: ClientRequest): void {
    if (--this.#pausedRequests === 0 && this.#state !== State.Closed) this.socket.resume();
  }

  // ---- Decoder events -------------------------------------------------------------------------------------

  /** @internal */
  onRecord(type: number, requestId: number, content: Buffer): void {
    // Management replies (GET_VALUES_RESULT, UNKNOWN_TYPE) are the probe's business; none is asked for here.
    if (requestId === 0) return;
    const request = this.#requests[requestId];
    // FastCGI 1.0 §3.3: records for an inactive id are ignored.
    if (request === undefined) return;
    switch (type) {
      case RecordType.STDOUT:
        if (content.length === 0) request.onStdoutEnd();
        else request.onStdout(content);
        return;
      case RecordType.STDERR:
        if (content.length > 0) request.onStderr(content);
        return;
      case RecordType.END_REQUEST:
        return this.#endRequest(request, requestId, content);
      default:
        return;
    }
  }

  /** @internal */
  onParams(): void {}

  /** @internal Malformed input: nothing on this connection can be trusted any more. */
  onError(error: FastCGIError): void {
    this.#fail(error);
  }

  #endRequest(request: ClientRequest, requestId: number, content: Buffer): void {
    if (content.length < 8) {
      return this.#fail(
        clientProtocolError(
          ErrorCode.BAD_END_REQUEST,
          `END_REQUEST for request ${requestId} has a ${content.length}-byte body; it must be 8`,
          requestId,
          RecordType.END_REQUEST,
        ),
      );
    }
    const appStatus = content.readUInt32BE(0);
    const protocolStatus = content[4]!;
    this.#requests[requestId] = undefined;
    this.#freeIds.push(requestId);
    this.#inFlight--;
    this.#ended++;
    request.onEnd(appStatus, protocolStatus);
    if (protocolStatus === ProtocolStatus.CANT_MPX_CONN) this.#owner.onMultiplexRefused(this);
    if (this.#inFlight > 0) return this.#owner.onCapacity(this);
    // FastCGI 1.0 §5.1: without KEEP_CONN the backend may close, but php-fpm half-closes and waits for us
    // (protocol.md §4, pitfall 9): close now.
    if (!this.#settings.keepConn || this.#closeWhenIdle) return this.#closeGracefully();
    this.#owner.onCapacity(this);
  }

  // ---- Lifecycle ------------------------------------------------------------------------------------------

  /** Closes once the requests in flight have ended (client.close()). */
  closeWhenIdle(): void {
    this.#closeWhenIdle = true;
    if (this.#state === State.Connecting) this.socket.destroy();
    else if (this.#inFlight === 0) this.#closeGracefully();
  }

  /** Closes now; requests in flight fail with `error` (default: BackendClosedError). */
  destroy(error?: FastCGIError): void {
    if (error !== undefined) this.#fail(error);
    else this.socket.destroy();
  }

  #closeGracefully(): void {
    if (this.#state !== State.Ready) return;
    this.#state = State.Closing;
    this.#owner.onUnusable(this);
    // FIN, never RST: a backend reading its next request sees a clean EOF (pitfall 8).
    this.#writer.flush(true);
    this.#timer = setTimeout(onCloseGraceTimer, CLOSE_GRACE_MS, this);
    this.#timer.unref();
  }

  #fail(error: FastCGIError): void {
    if (this.#state === State.Closed) return;
    this.#decoder.stop();
    this.#markUnusable();
    this.#failInFlight(error, false);
    this.socket.destroy();
  }

  #markUnusable(): void {
    if (this.#state === State.Ready) {
      this.#state = State.Closing;
      this.#owner.onUnusable(this);
    }
  }

  // `closed`: the backend closed or reset the connection (a replay may help), as opposed to malformed input.
  #failInFlight(error: Error | null, closed: boolean): void {
    if (this.#inFlight === 0) return;
    const requests = this.#requests.filter((r): r is ClientRequest => r !== undefined);
    this.#requests.length = 1;
    this.#inFlight = 0;
    const replays: ClientRequest[] = [];
    const replay = closed && this.#owner.acceptsReplays;
    for (const request of requests) {
      if (replay && request.canReplay(this.#settings.replayFromAnyConnection)) replays.push(request);
      else request.onConnectionLost(error);
    }
    for (const request of replays) {
      request.rewind();
      this.#owner.onReplay(request);
    }
  }

  /** @internal */
  onConnect(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#state !== State.Connecting) return;
    if (channels.clientConnected.hasSubscribers)
      channels.clientConnected.publish(build.clientConnect(this.target.label, this.socket));
    this.#state = State.Ready;
    // Reading with no request in flight times the connection out (requests in flight keep it open).
    if (this.#settings.idleTimeout > 0) this.socket.setTimeout(this.#settings.idleTimeout);
    if (this.#closeWhenIdle) return this.#closeGracefully();
    this.#owner.onReady(this);
  }

  /** @internal */
  onData(chunk: Buffer): void {
    this.#decoder.push(chunk);
  }

  /** @internal The backend closed its side: nothing more will arrive for the requests in flight. */
  onEnd(): void {
    this.#markUnusable();
    this.#failInFlight(null, true);
  }

  /** @internal */
  onSocketError(error: Error): void {
    this.#socketError ??= error;
  }

  /** @internal */
  onTimeout(): void {
    if (this.#inFlight === 0) this.#closeGracefully();
  }

  /** @internal */
  onConnectTimeout(): void {
    this.#timer = null;
    if (this.#state !== State.Connecting) return;
    this.#connectError = new TimeoutError(
      ErrorCode.CONNECT_TIMEOUT,
      `connecting to the FastCGI backend at ${this.target.label} took longer than ${this.#settings.connectTimeout} ms (connectTimeout)`,
      'connect',
    );
    this.socket.destroy();
  }

  /** @internal */
  onClose(): void {
    const wasConnecting = this.#state === State.Connecting;
    const wasReady = this.#state === State.Ready;
    this.#state = State.Closed;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#decoder.stop();
    this.#writer.discard();
    for (const done of [...this.#drainWaiters]) done();
    if (wasConnecting) {
      const error =
        this.#connectError ??
        new ConnectError(this.target.label, this.#socketError ?? new Error('connection closed while connecting'));
      if (channels.clientConnectError.hasSubscribers)
        channels.clientConnectError.publish(build.clientConnectError(this.target.label, this.socket, error));
      return this.#owner.onConnectFailed(this, error);
    }
    // Out of the pool's ready list before anything is replayed onto it (a reset brings no 'end' first).
    if (wasReady) this.#owner.onUnusable(this);
    this.#failInFlight(this.#socketError === null ? null : backendReset(this.#socketError), true);
    this.#owner.onClosed(this);
  }
}

// ECONNRESET / EPIPE: the backend went away mid-request (it crashed, or was restarted).
function backendReset(cause: Error): Error {
  const errno = (cause as NodeJS.ErrnoException).code ?? cause.message;
  return new BackendClosedError(`the connection to the backend failed (${errno}) before the request ended`, { cause });
}

// ---- Module-level listeners (no closure per connection) ---------------------------------------------------

const kConnection = Symbol('fastcgi.client.connection');
interface SocketWithConnection extends Socket {
  [kConnection]: ClientConnection;
}

function onSocketConnect(this: Socket): void {
  (this as SocketWithConnection)[kConnection].onConnect();
}
function onSocketData(this: Socket, chunk: Buffer): void {
  (this as SocketWithConnection)[kConnection].onData(chunk);
}
function onSocketEnd(this: Socket): void {
  (this as SocketWithConnection)[kConnection].onEnd();
}
function onSocketError(this: Socket, error: Error): void {
  (this as SocketWithConnection)[kConnection].onSocketError(error);
}
function onSocketClose(this: Socket): void {
  (this as SocketWithConnection)[kConnection].onClose();
}
function onSocketTimeout(this: Socket): void {
  (this as SocketWithConnection)[kConnection].onTimeout();
}
function onConnectTimer(connection: ClientConnection): void {
  connection.onConnectTimeout();
}
function onCloseGraceTimer(connection: ClientConnection): void {
  connection.socket.destroy();
}
