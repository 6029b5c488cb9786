// Balancer: one request() surface over several upstreams, each with its own pool. A request goes to an
// upstream with a free slot, chosen by the policy among the healthy ones; when none has a slot it waits in one
// queue (queueLimit, queueTimeout) for the first slot on any of them. A request that never reached its upstream
// (connect failure), or was lost with its connection while safe to repeat, goes to another upstream once.
import { ErrorCode, type FastCGIError } from '../errors';
import type { BackendAddress, ConnectTarget } from '../wire/address';
import { createPicker, type Picker } from './balance-policy';
import {
  resolveUpstream,
  upstreamKey,
  type ResolvedBalancerOptions,
  type UpstreamOptions,
  type UpstreamSpec,
} from './balancer-options';
import type { ClientRequest, RequestQueue } from './client-request';
import { ClientClosedError, ClientTimeoutError, NoUpstreamError, clientLimitError } from './errors';
import { Fifo } from './fifo';
import type { ResolvedClientOptions } from './options';
import { Upstream, type HealthSettings, type UpstreamEvents } from './upstream';
import type { ClientStats, UpstreamStats } from './stats';

export type { ClientStats };
import { UpstreamSet, type MembershipEvents } from './upstream-set';

interface Waiter {
  readonly request: ClientRequest;
  /** When it gives up waiting (queueTimeout), in Date.now() ms. */
  readonly deadline: number;
}

/** @internal */
export class Balancer implements RequestQueue, UpstreamEvents, MembershipEvents {
  readonly #options: ResolvedClientOptions;
  readonly #balance: ResolvedBalancerOptions;
  readonly #health: HealthSettings;
  readonly #set: UpstreamSet;
  readonly #pick: Picker;
  // Reused for every pick: no array per request.
  readonly #candidates: Upstream[] = [];
  readonly #queue = new Fifo<Waiter>();
  #queued = 0;
  #queueTimer: NodeJS.Timeout | null = null;
  // Requests already sent elsewhere after a connect failure: a second one fails them.
  readonly #rerouted = new WeakSet<ClientRequest>();
  #dispatching = false;
  #dispatchAgain = false;
  // Figures of upstreams that have left, so the totals never go down.
  #retiredOpened = 0;
  #retiredReplayed = 0;
  #closed = false;

  constructor(options: ResolvedClientOptions, balance: ResolvedBalancerOptions) {
    this.#options = options;
    this.#balance = balance;
    this.#health = { ejectAfter: balance.ejectAfter, ejectFor: balance.ejectFor, healthCheck: balance.healthCheck };
    this.#pick = createPicker(balance.balance);
    this.#set = new UpstreamSet(
      (target, spec) => this.#makeUpstream(target, spec),
      this,
      balance.lookup,
      balance.resolveInterval,
    );
    for (const spec of balance.upstreams) this.#set.add(spec);
  }

  #makeUpstream(target: ConnectTarget, spec: UpstreamSpec): Upstream {
    return new Upstream(target, spec.key, spec.weight, spec.maxConcurrent, this.#options, this.#health, this);
  }

  get stats(): ClientStats {
    let connections = 0;
    let connecting = 0;
    let queued = this.#queued;
    let inFlight = 0;
    let opened = this.#retiredOpened;
    let replayed = this.#retiredReplayed;
    let multiplexing = false;
    const upstreams: UpstreamStats[] = [];
    for (const upstream of this.#set.all()) {
      const pool = upstream.pool.stats;
      connections += pool.connections;
      connecting += pool.connecting;
      queued += pool.queued;
      inFlight += pool.inFlight;
      opened += pool.opened;
      replayed += pool.replayed;
      multiplexing ||= pool.multiplexing;
      upstreams.push(upstream.statsFrom(pool));
    }
    return { connections, connecting, queued, inFlight, opened, multiplexing, replayed, upstreams };
  }

  // ---- Requests ---------------------------------------------------------------------------------------------

  /** Sends `request` to an upstream now, or queues it (FCGI_ERR_QUEUE_FULL past queueLimit). */
  submit(request: ClientRequest): void {
    if (request.isDone) return;
    if (this.#closed) return request.fail(new ClientClosedError(), false);
    if (this.#queued === 0) {
      const upstream = this.#choose(null);
      if (upstream !== null) return upstream.dispatch(request);
      if (this.#isStranded()) return request.fail(this.#noUpstream(), false);
    }
    const limit = this.#options.queueLimit;
    if (this.#queued >= limit) {
      return request.fail(
        clientLimitError(
          ErrorCode.QUEUE_FULL,
          `${this.#queued} requests already wait for a free upstream (queueLimit ${limit})`,
          limit,
          this.#queued + 1,
        ),
        false,
      );
    }
    this.#enqueue(request, false);
    this.#dispatch();
  }

  /** @internal RequestQueue: a queued request gave up (timeout, abort); the queue skips it later. */
  remove(request: ClientRequest): void {
    if (request.queue !== this) return;
    request.queue = null;
    this.#queued--;
    this.#disarmIfEmpty();
  }

  /**
   * The upstream for the next request: an eligible one with a free slot other than `avoid` (where the request
   * just failed) if there is one, else `avoid` itself. When none is healthy, the unhealthy ones are tried
   * rather than failing everything (a request that finds them down fails fast), as nginx does.
   */
  #choose(avoid: Upstream | null): Upstream | null {
    const candidates = this.#candidates;
    candidates.length = 0;
    let eligible = 0;
    for (const upstream of this.#set.active) {
      if (!upstream.isEligible) continue;
      eligible++;
      if (upstream !== avoid && upstream.hasRoom) candidates.push(upstream);
    }
    if (eligible === 0) {
      for (const upstream of this.#set.active)
        if (upstream !== avoid && upstream.hasRoom && !upstream.isDraining) candidates.push(upstream);
    }
    if (
      candidates.length === 0 &&
      avoid !== null &&
      !avoid.isDraining &&
      avoid.hasRoom &&
      (avoid.isEligible || eligible === 0)
    )
      candidates.push(avoid);
    if (candidates.length === 0) return null;
    const upstream = candidates.length === 1 ? candidates[0]! : this.#pick(candidates);
    candidates.length = 0;
    return upstream;
  }

  #enqueue(request: ClientRequest, front: boolean): void {
    request.queue = this;
    const timeout = this.#balance.queueTimeout;
    const waiter: Waiter = { request, deadline: timeout === 0 ? Infinity : Date.now() + timeout };
    if (front) this.#queue.unshift(waiter);
    else this.#queue.push(waiter);
    this.#queued++;
    if (timeout > 0 && this.#queueTimer === null) this.#armQueueTimer();
  }

  #shift(): ClientRequest | undefined {
    for (;;) {
      const waiter = this.#queue.shift();
      if (waiter === undefined) return undefined;
      const request = waiter.request;
      if (request.queue !== this) continue; // removed while queued
      request.queue = null;
      this.#queued--;
      return request;
    }
  }

  // Hands queued requests to upstreams with free slots, oldest first. A request can end inside dispatch (a
  // pool that refuses it), which frees a slot and calls back here: that turn is folded into the running loop.
  #dispatch(): void {
    if (this.#dispatching) {
      this.#dispatchAgain = true;
      return;
    }
    this.#dispatching = true;
    try {
      do {
        this.#dispatchAgain = false;
        while (this.#queued > 0) {
          const upstream = this.#choose(null);
          if (upstream === null) break;
          const request = this.#shift();
          if (request === undefined) break;
          upstream.dispatch(request);
        }
      } while (this.#dispatchAgain);
    } finally {
      this.#dispatching = false;
    }
    if (this.#queued > 0 && this.#isStranded()) this.#failQueued(this.#noUpstream());
    this.#disarmIfEmpty();
  }

  // No upstream to wait for: none configured (all removed), and no hostname still resolving.
  #isStranded(): boolean {
    return this.#set.active.length === 0 && !this.#set.isPending;
  }

  #noUpstream(): NoUpstreamError {
    const errors = this.#set.resolveErrors;
    if (errors.length > 0) return new NoUpstreamError(`no upstream to send the request to: ${errors.join('; ')}`);
    return new NoUpstreamError(
      'no upstream to send the request to: the client has none (add one with client.addUpstream)',
    );
  }

  #failQueued(error: FastCGIError): void {
    for (;;) {
      const request = this.#shift();
      if (request === undefined) break;
      request.fail(error, false);
    }
  }

  #armQueueTimer(): void {
    for (;;) {
      const head = this.#queue.peek();
      if (head === undefined) return;
      if (head.request.queue === this) {
        // Not unref'd: requests are waiting on it.
        this.#queueTimer = setTimeout(onQueueTimer, Math.max(0, head.deadline - Date.now()), this);
        return;
      }
      this.#queue.shift(); // removed while queued
    }
  }

  // Nothing waits: the timer must not keep the process alive.
  #disarmIfEmpty(): void {
    if (this.#queued > 0 || this.#queueTimer === null) return;
    clearTimeout(this.#queueTimer);
    this.#queueTimer = null;
  }

  /** @internal queueTimeout: fails the requests at the head of the queue that have waited too long. */
  expireQueued(): void {
    this.#queueTimer = null;
    const now = Date.now();
    for (;;) {
      const head = this.#queue.peek();
      if (head === undefined) break;
      if (head.request.queue !== this) {
        this.#queue.shift(); // removed while queued
        continue;
      }
      if (head.deadline > now) break;
      const request = this.#shift()!;
      const timeout = this.#balance.queueTimeout;
      request.fail(
        new ClientTimeoutError(
          ErrorCode.QUEUE_TIMEOUT,
          `no upstream had a free slot within ${timeout} ms (queueTimeout)`,
          'queue',
        ),
        false,
      );
    }
    this.#armQueueTimer();
  }

  // ---- UpstreamEvents and MembershipEvents ----------------------------------------------------------------

  /** @internal */
  onRoom(_upstream: Upstream): void {
    if (this.#queued > 0) this.#dispatch();
  }

  /** @internal */
  reroute(request: ClientRequest, from: Upstream, error: FastCGIError | null): void {
    if (request.isDone) return;
    if (this.#closed)
      return request.fail(
        error ?? new ClientClosedError('the FastCGI client closed before the request could be sent again'),
        false,
      );
    if (error !== null) {
      if (this.#rerouted.has(request)) return request.fail(error, false);
      this.#rerouted.add(request);
    }
    const upstream = this.#choose(from);
    if (upstream !== null) return upstream.dispatch(request);
    if (this.#isStranded()) return request.fail(error ?? this.#noUpstream(), false);
    // Admitted once already: first in line, whatever queueLimit says.
    this.#enqueue(request, true);
  }

  /** @internal */
  onMembershipChange(): void {
    if (this.#queued > 0) this.#dispatch();
  }

  /** @internal */
  onRetired(upstream: Upstream): void {
    const pool = upstream.pool.stats;
    this.#retiredOpened += pool.opened;
    this.#retiredReplayed += pool.replayed;
  }

  // ---- Membership -------------------------------------------------------------------------------------------

  /** Adds an upstream (client.addUpstream); throws InvalidArgumentError. */
  addUpstream(options: UpstreamOptions): void {
    if (this.#closed) throw new ClientClosedError();
    this.#set.add(resolveUpstream(options));
  }

  /** Drains and removes an upstream (client.removeUpstream); false when there is none at that address. */
  removeUpstream(address: BackendAddress): Promise<boolean> {
    let key: string;
    try {
      key = upstreamKey(address);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return this.#set.remove(key);
  }

  // ---- Shutdown ---------------------------------------------------------------------------------------------

  close(): Promise<void> {
    this.#shutdown();
    return Promise.all(this.#set.all().map((upstream) => upstream.close())).then(() => undefined);
  }

  destroy(): void {
    this.#shutdown();
    for (const upstream of this.#set.all()) upstream.destroy();
  }

  #shutdown(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#set.stop();
    if (this.#queueTimer !== null) clearTimeout(this.#queueTimer);
    this.#queueTimer = null;
    this.#failQueued(new ClientClosedError('the FastCGI client closed before the request could start'));
  }
}

function onQueueTimer(balancer: Balancer): void {
  balancer.expireQueued();
}
