// Server: an http.Server-compatible FastCGI application server. It is a net.Server whose connections speak
// FastCGI; each request becomes a real http.IncomingMessage / http.ServerResponse pair emitted as 'request'
// ('authorize' and 'filter' for those roles when listened to), so existing Node handlers run unchanged.
import { Server as NetServer, type Socket } from 'node:net';
import { chmodSync } from 'node:fs';
import { Connection, requestFields, type ConnectionEvents } from './connection';
import { StatsRecorder, refusalCause, type ServerStats } from './stats';
import { channels, tracingActive, tracingChannels } from '../diagnostics/channels';
import { build } from '../diagnostics/messages';
import { traceHandler } from '../diagnostics/trace-handler';
import { BufferBudget } from './buffer-budget';
import { FastCGIIncomingMessage, FastCGIServerResponse } from './http-message';
import { checksStaleSocket, connectedFdError, inheritedListenFd, prepareSocketPath, releaseAtExit } from './listen';
import { normalizeAddress, resolveOptions, type ResolvedOptions, type ServerOptions } from './options';
import type { RequestSocket } from './request-socket';
import { Role } from '../wire/constants';
import { ErrorCode, FastCGIError, ProtocolError } from '../errors';

/** A request handler, as for http.createServer; it may return a promise (a rejection becomes a 500). */
export type RequestListener = (req: FastCGIIncomingMessage, res: FastCGIServerResponse) => unknown;

type ListenCallback = () => void;

/**
 * Server accepts FastCGI connections from web servers. Events: 'request' (req, res), 'authorize' and 'filter'
 * (same arguments; without listeners those roles go to 'request'), 'connection' (net.Socket), 'clientError'
 * (error, net.Socket) for malformed input, limits and timeouts, plus net.Server's 'listening', 'close', 'error'.
 */
export class Server extends NetServer {
  /** The options in force, defaults applied. */
  readonly settings: ResolvedOptions;
  readonly #connections = new Set<Connection>();
  readonly #budget: BufferBudget;
  readonly #events: ConnectionEvents;
  readonly #stats: StatsRecorder;
  #listeningOnFd: number | null = null;
  #closeTimer: NodeJS.Timeout | null = null;
  // Counts close() calls: a listen(path) still checking for a stale socket file must not bind after one.
  #closes = 0;

  constructor(options: ServerOptions = {}, listener?: RequestListener) {
    // Half-open: a web server may shut down its sending side and still read the response.
    super({ allowHalfOpen: true });
    this.settings = resolveOptions(options);
    this.#budget = new BufferBudget(this.settings.maxBufferBytes);
    this.#stats = new StatsRecorder(this.settings.slowRequestThreshold);
    this.on('listening', () => (this.#stats.startTime = Date.now()));
    // maxConnections is enforced in #accept, which first makes room by closing idle connections; net.Server's
    // own limit would drop the new connection before we could.
    if (listener !== undefined) this.on('request', listener);
    this.#events = {
      onRequest: (request) => this.dispatch(request),
      onClientError: (error, connection) => this.reportClientError(error, connection.socket),
      onClose: (connection) => this.#connectionClosed(connection),
    };
    this.on('connection', this.#accept);
  }

  #accept = (socket: Socket): void => {
    const allowed = this.settings.webServerAddrs;
    if (allowed !== null) {
      // FastCGI 1.0 §3.2: a peer not in FCGI_WEB_SERVER_ADDRS (a non-TCP peer included) is closed at once.
      const address = socket.remoteAddress === undefined ? undefined : normalizeAddress(socket.remoteAddress);
      if (address === undefined || !allowed.has(address)) {
        const error = new ProtocolError(
          ErrorCode.PEER_NOT_ALLOWED,
          `refused a connection from ${address ?? 'a non-TCP peer'}: not in FCGI_WEB_SERVER_ADDRS`,
        );
        socket.destroy();
        this.reportClientError(error, socket);
        return;
      }
    }
    if (this.#connections.size >= this.settings.maxConnections && !this.#makeRoom()) {
      socket.destroy();
      this.reportClientError(
        new ProtocolError(
          ErrorCode.CONNECTION_LIMIT,
          `refused a connection: ${this.#connections.size} are open, every one with a request in flight or a response on its way (maxConnections)`,
        ),
        socket,
      );
      return;
    }
    this.#connections.add(new Connection(socket, this.#events, this.settings, this.#budget, this.#stats));
    this.#stats.connectionOpened();
    if (channels.serverConnectionOpen.hasSubscribers)
      channels.serverConnectionOpen.publish(build.serverConnectionOpen(socket));
  };

  /**
   * A snapshot of the server's counters: connections (open, accepted, refused by cause), requests (in flight,
   * by status class and protocol status, aborted, timed out, slow), bytes and a latency histogram. The counters
   * are bumped as things happen; this only copies them.
   */
  stats(): ServerStats {
    return this.#stats.snapshot();
  }

  // At maxConnections: closes the oldest connection with nothing in flight, as a web server that pools
  // connections reconnects when it needs one; returns false when every connection is busy. A connection whose
  // last response is still on its way (queued, or in its socket while the web server is slow to read) is busy
  // too: closing it would cut that response off (bench/dos.ts silent-flood; test/server/limits.test.ts).
  #makeRoom(): boolean {
    let oldest: Connection | null = null;
    for (const connection of this.#connections) {
      if (
        connection.activeRequests === 0 &&
        connection.unsentBytes === 0 &&
        (oldest === null || connection.acceptedAt < oldest.acceptedAt)
      )
        oldest = connection;
    }
    if (oldest === null) return false;
    this.settings.logger.warn(
      `closed an idle connection to make room for a new one (maxConnections ${this.settings.maxConnections})`,
    );
    this.#connections.delete(oldest);
    oldest.destroy();
    return true;
  }

  /** Bytes of params and unread request bodies held for all connections now (see maxBufferBytes). */
  get bufferedBytes(): number {
    return this.#budget.used;
  }

  /** @internal Hands a request whose params are complete to the handlers (the fetch server overrides it). */
  dispatch(request: RequestSocket): void {
    const req = new this.requestClass(request, this.settings.mount);
    const res = new this.responseClass(req);
    this.decorate(req, res);
    // The connection emits 'timeout' only under a handlerTimeout: no listener (and no closure) per request otherwise.
    if (this.settings.handlerTimeout > 0) request.once('timeout', () => this.#handlerTimeout(res));
    let event = 'request';
    if (request.role === Role.AUTHORIZER && this.listenerCount('authorize') > 0) event = 'authorize';
    else if (request.role === Role.FILTER && this.listenerCount('filter') > 0) event = 'filter';
    const listeners = this.rawListeners(event);
    if (listeners.length === 0) {
      res.statusCode = 404;
      res.end();
      return;
    }
    if (tracingActive(tracingChannels.serverHandler)) {
      traceHandler(request, () => this.#callListeners(listeners as RequestListener[], req, res));
      return;
    }
    this.#callListeners(listeners as RequestListener[], req, res);
  }

  #callListeners(listeners: RequestListener[], req: FastCGIIncomingMessage, res: FastCGIServerResponse): unknown {
    let last: unknown;
    for (const listener of listeners) {
      try {
        const result: unknown = listener.call(this, req, res);
        if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') {
          last = (result as Promise<unknown>).then(undefined, (error: unknown) => this.handlerError(error, req, res));
        }
      } catch (error) {
        this.handlerError(error, req, res);
      }
    }
    return last;
  }

  /** @internal The classes of `req` and `res` (the node-fastcgi drop-in's carry node-fastcgi's own fields). */
  protected readonly requestClass: typeof FastCGIIncomingMessage = FastCGIIncomingMessage;
  /** @internal */
  protected readonly responseClass: typeof FastCGIServerResponse = FastCGIServerResponse;

  /** @internal A hook for subclasses to add to each request/response pair before handlers see it. */
  decorate(_req: FastCGIIncomingMessage, _res: FastCGIServerResponse): void {}

  /**
   * handlerError is what happens when a handler throws or rejects: the stack goes to STDERR (so it lands in
   * the web server's error log) and to the logger; the client gets a 500 if nothing was sent yet, else the
   * response is cut off with a non-zero appStatus.
   */
  handlerError(error: unknown, req: FastCGIIncomingMessage, res: FastCGIServerResponse): void {
    const stack = error instanceof Error ? (error.stack ?? String(error)) : String(error);
    const request = req.fastcgi;
    this.settings.logger.error(`handler failed for ${req.method} ${req.url}: ${stack}`, requestFields(request));
    if (channels.serverRequestError.hasSubscribers)
      channels.serverRequestError.publish(build.serverRequestError(request, error));
    if (!request.isEnded) request.stderr.write(`${stack}\n`);
    if (res.writableEnded || request.isEnded) return;
    if (!res.headersSent) {
      res.statusCode = 500;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end('Internal Server Error\n');
    } else {
      request.appStatus = 1;
      res.destroy();
    }
  }

  #handlerTimeout(res: FastCGIServerResponse): void {
    if (res.writableEnded) return;
    if (!res.headersSent) {
      res.statusCode = 503;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end('Service Unavailable: the application timed out\n');
    } else {
      res.req.fastcgi.appStatus = 1;
      res.destroy();
    }
  }

  /** @internal Emits 'clientError' or, with no listener, logs the reason the connection was closed. */
  reportClientError(error: FastCGIError, socket: Socket): void {
    const cause = refusalCause(error);
    this.#stats.refusedBy(cause);
    if (channels.serverConnectionError.hasSubscribers)
      channels.serverConnectionError.publish(build.serverConnectionError(socket, error, cause));
    if (this.listenerCount('clientError') > 0) this.emit('clientError', error, socket);
    else this.settings.logger.warn(`closed a connection: ${error.message} [${error.code}]`);
  }

  #connectionClosed(connection: Connection): void {
    this.#connections.delete(connection);
    this.#stats.connectionClosed();
    if (channels.serverConnectionClose.hasSubscribers)
      channels.serverConnectionClose.publish(
        build.serverConnectionClose(connection.socket, connection.handledRequests, connection.acceptedAt),
      );
    if (this.#connections.size === 0 && this.#closeTimer !== null) {
      clearTimeout(this.#closeTimer);
      this.#closeTimer = null;
    }
  }

  /** Connections open now. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * listen() as net.Server's, plus: with no address (or only a callback) it listens on the socket the web
   * server or systemd handed over (fd 0 / LISTEN_FDS); a unix path replaces a stale socket file left by a dead
   * process and applies `socketMode`. In a node:cluster worker a path is not checked (unless `exclusive`):
   * the primary binds it and the workers share it, so the file is there and alive by design. Failures are
   * emitted as 'error' with a ListenError that says what to do.
   */
  override listen(...args: unknown[]): this {
    const callback = typeof args[args.length - 1] === 'function' ? (args.pop() as ListenCallback) : undefined;
    if (callback !== undefined) this.once('listening', callback);
    if (args.length === 0 || (args.length === 1 && args[0] === undefined)) {
      let fd: number;
      try {
        fd = inheritedListenFd();
      } catch (error) {
        process.nextTick(() => this.emit('error', error));
        return this;
      }
      this.#listeningOnFd = fd;
      releaseAtExit(fd);
      return super.listen({ fd });
    }
    const first = args[0];
    const path =
      typeof first === 'string' && !/^\d+$/.test(first)
        ? first
        : typeof first === 'object' && first !== null && 'path' in first
          ? String((first as { path: unknown }).path)
          : null;
    if (path === null) {
      if (typeof first === 'object' && first !== null && 'fd' in first) {
        this.#listeningOnFd = Number((first as { fd: unknown }).fd);
        releaseAtExit(this.#listeningOnFd);
      }
      return super.listen(...(args as Parameters<NetServer['listen']>));
    }
    const listenOnPath = (): void => {
      super.listen(...(args as Parameters<NetServer['listen']>));
      if (this.settings.socketMode !== null) {
        // Prepended: the mode must be in place before the caller's listen callback hands the path out.
        this.prependOnceListener('listening', () => {
          try {
            chmodSync(path, this.settings.socketMode!);
          } catch (error) {
            this.emit('error', error);
          }
        });
      }
    };
    const exclusive =
      typeof first === 'object' && first !== null && (first as { exclusive?: unknown }).exclusive === true;
    if (!checksStaleSocket(exclusive)) {
      // A node:cluster worker: the primary binds the path; clearing a stale file is the primary's job, before it forks.
      listenOnPath();
      return this;
    }
    const closes = this.#closes;
    prepareSocketPath(path).then(
      () => {
        if (this.#closes !== closes) return; // close() was called while the path was being checked
        listenOnPath();
      },
      (error: unknown) => {
        if (this.#closes === closes) this.emit('error', error);
      },
    );
    return this;
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    // listen({ fd: 0 }) on a connected socket fails with EINVAL: say why in words.
    if (event === 'error' && this.#listeningOnFd !== null && !this.listening) {
      const error = args[0] as NodeJS.ErrnoException;
      if (error?.code === 'EINVAL' && !(error instanceof FastCGIError))
        return super.emit('error', connectedFdError(this.#listeningOnFd, error));
    }
    return super.emit(event, ...args);
  }

  /**
   * close() stops accepting, lets in-flight requests finish and closes each connection once its last request
   * is done (KEEP_CONN or not), closes connections idle after serving requests at once, and after
   * `closeTimeout` ms destroys what is left. A connection that has not started a request yet (accepted a
   * moment ago; its BEGIN_REQUEST is on the way) gets up to 1 s (at most `closeTimeout`) for it: the request
   * is served, then the connection closed; if none comes it is closed then. In a node:cluster worker this is
   * what makes a rolling restart lose nothing: once the worker's handle is closed new connections go to another
   * worker, and the ones already accepted by this one are answered. The callback runs when the last connection
   * is gone; a worker should then end with cluster.worker.disconnect(), not process.disconnect(), which can
   * strand a connection a round-robin primary was offering it at that moment (SCHED_NONE, which `serve` uses,
   * has no such hand-off: test/cli/serve-kill.test.ts).
   */
  override close(callback?: (error?: Error) => void): this {
    this.#closes++;
    super.close(callback);
    const grace = firstRequestGrace(this.settings.closeTimeout);
    for (const connection of this.#connections) connection.drain(grace);
    if (this.#connections.size > 0 && this.#closeTimer === null && this.settings.closeTimeout > 0) {
      this.#closeTimer = setTimeout(() => {
        this.#closeTimer = null;
        for (const connection of this.#connections) connection.destroy();
      }, this.settings.closeTimeout);
      this.#closeTimer.unref();
    }
    return this;
  }

  /** Destroys every connection now (in-flight requests are aborted). */
  closeAllConnections(): void {
    for (const connection of this.#connections) connection.destroy();
  }

  /** Closes connections with no request in flight. */
  closeIdleConnections(): void {
    for (const connection of this.#connections) if (connection.activeRequests === 0) connection.drain();
  }
}

/**
 * How long close() waits for the first request of a connection that has not started one. A web server writes
 * its BEGIN_REQUEST right after connecting (a node:cluster primary's hand-off adds an IPC round trip), so the
 * request is normally there within milliseconds; 1 s also covers a loaded machine, yet bounds how long a
 * connection that never sends anything (a port probe, a pool's spare connection) holds up the shutdown. Never
 * longer than closeTimeout, after which every connection is destroyed anyway (0 there means no limit).
 */
export const FIRST_REQUEST_GRACE_MS = 1000;

/** The first-request grace close() gives under a given closeTimeout. */
export function firstRequestGrace(closeTimeout: number): number {
  return closeTimeout > 0 ? Math.min(FIRST_REQUEST_GRACE_MS, closeTimeout) : FIRST_REQUEST_GRACE_MS;
}

/**
 * createServer returns an http.Server-compatible FastCGI server. `handler` receives real IncomingMessage /
 * ServerResponse objects (Express and Koa apps are such handlers).
 */
export function createServer(handler?: RequestListener): Server;
export function createServer(options: ServerOptions, handler?: RequestListener): Server;
export function createServer(a?: ServerOptions | RequestListener, b?: RequestListener): Server {
  return typeof a === 'function' ? new Server({}, a) : new Server(a ?? {}, b);
}
