// Pool: the connections to one backend and the queue in front of them. It opens connections up to poolSize,
// starts each request on the least-loaded connection with room (one request per connection unless the backend
// multiplexes), queues the rest up to queueLimit, retries connecting through a backend restart, and asks the
// backend whether it multiplexes without ever making a request wait for the answer.
import type { FastCGIError } from '../errors';
import type { ConnectTarget } from '../wire/address';
import { ClientConnection, type ConnectionOwner, type ConnectionSettings } from './client-connection';
import type { ClientRequest, RequestQueue } from './client-request';
import { ErrorCode } from '../errors';
import { ClientClosedError, clientLimitError } from './errors';
import { Fifo } from './fifo';
import type { ResolvedClientOptions } from './options';
import { probeValues, type ProbeOutcome } from './probe';

/** A snapshot of the pool, for monitoring and tests. */
export interface PoolStats {
  /** Connections open or opening. */
  readonly connections: number;
  /** Connections being opened. */
  readonly connecting: number;
  /** Requests waiting for a connection. */
  readonly queued: number;
  /** Requests on connections (aborted ones until their END_REQUEST). */
  readonly inFlight: number;
  /** Connections opened since the client was created. */
  readonly opened: number;
  /** Whether requests share connections now. */
  readonly multiplexing: boolean;
  /** Requests sent again after a kept connection closed before answering them (retryStaleConnection). */
  readonly replayed: number;
}

/** @internal What a pool hands to the balancer above it, instead of failing the requests itself. */
export interface PoolOwner {
  /** Connecting failed: these requests never reached the backend. */
  onUnreached(requests: readonly ClientRequest[], error: FastCGIError): void;
  /** A request lost with its connection that may be sent again (ClientRequest.canReplay). */
  onReplay(request: ClientRequest): void;
}

/** @internal The settings of one pool: the client's, with the backend it connects to. */
export type PoolOptions = ResolvedClientOptions & { readonly target: ConnectTarget };

// Reconnect backoff while the backend is unreachable: from 10 ms, doubling, at most 250 ms apart.
const RETRY_MIN_MS = 10;
const RETRY_MAX_MS = 250;

/** @internal */
export class Pool implements ConnectionOwner, RequestQueue {
  readonly #options: PoolOptions;
  readonly #owner: PoolOwner | null;
  readonly #settings: ConnectionSettings;
  readonly #connections = new Set<ClientConnection>();
  // Connections that are up and not closing, in the order they came up.
  #ready: ClientConnection[] = [];
  #connecting = 0;
  #opened = 0;
  #replayed = 0;
  readonly #queue = new Fifo<ClientRequest>();
  #queued = 0;
  #poolSize: number;
  #multiplex: boolean;
  #perConnection: number;
  #probe: 'idle' | 'running' | 'done';
  #cancelProbe: (() => void) | null = null;
  #failingSince: number | null = null;
  #retryDelay = 0;
  #retryTimer: NodeJS.Timeout | null = null;
  #closed = false;
  #closeWaiters: (() => void)[] = [];

  constructor(options: PoolOptions, owner: PoolOwner | null = null) {
    this.#options = options;
    this.#owner = owner;
    this.#settings = {
      keepConn: options.keepConn,
      padRecords: options.padRecords,
      connectionHighWaterMark: options.connectionHighWaterMark,
      connectTimeout: options.connectTimeout,
      idleTimeout: options.idleTimeout,
      abortWith: options.abortWith,
      replayFromAnyConnection: owner !== null,
    };
    this.#poolSize = options.poolSize;
    // Multiplexing needs kept connections: without KEEP_CONN each connection carries one request.
    this.#multiplex = options.multiplex === true && options.keepConn;
    this.#perConnection = options.maxRequestsPerConnection;
    this.#probe = options.multiplex === 'auto' && options.keepConn ? 'idle' : 'done';
  }

  get stats(): PoolStats {
    let inFlight = 0;
    for (const connection of this.#connections) inFlight += connection.inFlight;
    return {
      connections: this.#connections.size,
      connecting: this.#connecting,
      queued: this.#queued,
      inFlight,
      opened: this.#opened,
      multiplexing: this.#multiplex,
      replayed: this.#replayed,
    };
  }

  /** Requests the pool can carry at once: one per connection, or perConnection each when multiplexing. */
  get capacity(): number {
    return this.#poolSize * (this.#multiplex ? this.#perConnection : 1);
  }

  /** Starts `request` on a connection now, or queues it (FCGI_ERR_QUEUE_FULL past queueLimit). */
  submit(request: ClientRequest): void {
    if (request.isDone) return;
    if (this.#closed) return request.fail(new ClientClosedError(), false);
    // Behind any request already waiting: a balancer submits from inside another request's end, before the
    // connection that request freed has served this queue (its health probe waits here).
    const behind = this.#queued > 0;
    const connection = behind ? null : this.#pick();
    if (connection !== null) return connection.start(request);
    // The queue limit counts requests beyond what the pool can carry once its connections are up: requests
    // waiting for a connection that is still opening do not count against it.
    const limit = this.#options.queueLimit;
    const opening = Math.max(0, this.#poolSize - this.#ready.length) * (this.#multiplex ? this.#perConnection : 1);
    const waiting = this.#queued - opening;
    if (waiting >= limit) {
      return request.fail(
        clientLimitError(
          ErrorCode.QUEUE_FULL,
          `${waiting} requests already wait for a connection to the backend (queueLimit ${limit})`,
          limit,
          waiting + 1,
        ),
        false,
      );
    }
    this.#enqueue(request, false);
    if (behind) this.#drain();
  }

  // Queues `request` (first in line when `front`: a replay was admitted already) and opens what it needs.
  #enqueue(request: ClientRequest, front: boolean): void {
    request.queue = this;
    if (front) this.#queue.unshift(request);
    else this.#queue.push(request);
    this.#queued++;
    this.#grow();
  }

  /** @internal RequestQueue: a queued request gave up (timeout, abort); the queue skips it later. */
  remove(request: ClientRequest): void {
    if (request.queue !== this) return;
    request.queue = null;
    this.#queued--;
  }

  // The least-loaded connection with room (an idle one at once), or null. When multiplexed requests pile onto
  // busy connections, another connection is opened for the load to spread onto.
  #pick(): ClientConnection | null {
    let best: ClientConnection | null = null;
    for (const connection of this.#ready) {
      if (!connection.isAvailable) continue;
      if (connection.inFlight === 0) return connection;
      if (best === null || connection.inFlight < best.inFlight) best = connection;
    }
    if (best !== null && this.#connections.size < this.#poolSize && this.#retryTimer === null) this.#open();
    return best;
  }

  #shift(): ClientRequest | undefined {
    for (;;) {
      const request = this.#queue.shift();
      if (request === undefined) return undefined;
      if (request.queue !== this) continue; // removed while queued
      request.queue = null;
      this.#queued--;
      return request;
    }
  }

  #drain(): void {
    while (this.#queued > 0) {
      const connection = this.#pick();
      if (connection === null) break;
      const request = this.#shift();
      if (request === undefined) break;
      connection.start(request);
    }
    if (this.#queued > 0) this.#grow();
  }

  // Opens connections for what waits: one per queued request, or one per perConnection multiplexed ones.
  #grow(): void {
    if (this.#closed || this.#retryTimer !== null) return;
    const perConnection = this.#multiplex ? this.#perConnection : 1;
    while (this.#connections.size < this.#poolSize && this.#connecting * perConnection < this.#queued) this.#open();
  }

  #open(): void {
    const connection = new ClientConnection(this, this.#options.target, this.#settings);
    connection.capacity = this.#multiplex ? this.#perConnection : 1;
    this.#connections.add(connection);
    this.#connecting++;
    this.#opened++;
  }

  // ---- ConnectionOwner ------------------------------------------------------------------------------------

  /** @internal */
  onReady(connection: ClientConnection): void {
    this.#connecting--;
    this.#failingSince = null;
    this.#retryDelay = 0;
    this.#ready.push(connection);
    if (this.#probe === 'idle') this.#startProbe();
    this.#drain();
  }

  /** @internal */
  onConnectFailed(connection: ClientConnection, error: FastCGIError): void {
    this.#connections.delete(connection);
    this.#connecting--;
    if (this.#closed) return this.#checkClosed();
    const now = Date.now();
    this.#failingSince ??= now;
    if (this.#queued === 0 || this.#ready.length > 0 || this.#connecting > 0) return;
    const waited = now - this.#failingSince;
    const window = this.#options.connectRetryWindow;
    if (waited >= window) {
      // Unreachable for longer than the retry window: what waits fails now (a gateway answers 502), or goes
      // back to the balancer, which may send it elsewhere.
      const unreached: ClientRequest[] = [];
      for (const request of this.#queue.drain()) {
        if (request.queue !== this) continue;
        request.queue = null;
        unreached.push(request);
      }
      this.#queued = 0;
      if (this.#owner !== null) return this.#owner.onUnreached(unreached, error);
      for (const request of unreached) request.fail(error, false);
      return;
    }
    this.#retryDelay = Math.min(Math.max(RETRY_MIN_MS, this.#retryDelay * 2), RETRY_MAX_MS);
    // Not unref'd: requests are waiting on it, and nothing else may keep the process alive meanwhile.
    this.#retryTimer = setTimeout(onRetryTimer, Math.min(this.#retryDelay, window - waited), this);
  }

  /** @internal */
  retry(): void {
    this.#retryTimer = null;
    this.#grow();
  }

  /** @internal */
  onCapacity(_connection: ClientConnection): void {
    if (this.#queued > 0) this.#drain();
  }

  /** @internal */
  onMultiplexRefused(_connection: ClientConnection): void {
    this.#multiplex = false;
    for (const connection of this.#connections) connection.capacity = 1;
  }

  /** @internal */
  onUnusable(connection: ClientConnection): void {
    const at = this.#ready.indexOf(connection);
    if (at !== -1) this.#ready.splice(at, 1);
  }

  /** @internal ConnectionOwner */
  get acceptsReplays(): boolean {
    return !this.#closed;
  }

  /**
   * @internal A request already admitted once goes out again: on a connection now, or first in the queue,
   * whatever queueLimit says (it was counted when it came in).
   */
  onReplay(request: ClientRequest): void {
    this.#replayed++;
    if (this.#owner !== null) return this.#owner.onReplay(request);
    const connection = this.#pick();
    if (connection !== null) return connection.start(request);
    this.#enqueue(request, true);
  }

  /** @internal */
  onClosed(connection: ClientConnection): void {
    this.onUnusable(connection);
    this.#connections.delete(connection);
    if (this.#closed) return this.#checkClosed();
    if (this.#queued > 0) this.#grow();
  }

  // ---- Multiplexing probe ------------------------------------------------------------------------------------

  #startProbe(): void {
    this.#probe = 'running';
    this.#cancelProbe = probeValues(this.#options.target, this.#options.probeTimeout, (outcome) =>
      this.#onProbe(outcome),
    );
  }

  #onProbe(outcome: ProbeOutcome): void {
    this.#cancelProbe = null;
    if (outcome.kind === 'unreachable') {
      this.#probe = 'idle'; // asked again after the next successful connect
      return;
    }
    this.#probe = 'done';
    if (outcome.kind !== 'values' || this.#closed) return;
    const maxConns = Number(outcome.values.FCGI_MAX_CONNS);
    if (Number.isInteger(maxConns) && maxConns >= 1) this.#poolSize = Math.min(this.#poolSize, maxConns);
    if (outcome.values.FCGI_MPXS_CONNS !== '1') return;
    const maxReqs = Number(outcome.values.FCGI_MAX_REQS);
    if (Number.isInteger(maxReqs) && maxReqs >= 1)
      this.#perConnection = Math.max(1, Math.min(this.#perConnection, Math.floor(maxReqs / this.#poolSize)));
    this.#multiplex = true;
    for (const connection of this.#connections) connection.capacity = this.#perConnection;
    this.#drain();
  }

  // ---- Shutdown ------------------------------------------------------------------------------------------------

  /** Refuses new requests, fails queued ones, lets in-flight ones finish, then closes every connection. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#shutdown();
      for (const connection of [...this.#connections]) connection.closeWhenIdle();
    }
    return new Promise((resolve) => {
      this.#closeWaiters.push(resolve);
      this.#checkClosed();
    });
  }

  /** Closes everything now; requests in flight fail with ClientClosedError. */
  destroy(): void {
    this.#shutdown();
    for (const connection of [...this.#connections])
      connection.destroy(new ClientClosedError('the FastCGI client was destroyed'));
    this.#checkClosed();
  }

  #shutdown(): void {
    this.#closed = true;
    this.#cancelProbe?.();
    this.#cancelProbe = null;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    const queued = this.#queue.drain();
    this.#queued = 0;
    for (const request of queued) {
      if (request.queue !== this) continue;
      request.queue = null;
      request.fail(new ClientClosedError('the FastCGI client closed before the request could start'), false);
    }
  }

  #checkClosed(): void {
    if (!this.#closed || this.#connections.size > 0) return;
    const waiters = this.#closeWaiters;
    this.#closeWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function onRetryTimer(pool: Pool): void {
  pool.retry();
}
