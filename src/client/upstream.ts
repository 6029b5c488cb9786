// Upstream: one backend behind the balancer. It owns that backend's pool of connections, counts the requests
// sent to it (its slots), and keeps its health: ejected for a cooldown after failures in a row (passive), and
// out of rotation while its health probe fails (active).
import { ErrorCode, type FastCGIError } from '../errors';
import type { ConnectTarget } from '../wire/address';
import type { Candidate } from './balance-policy';
import type { ResolvedHealthCheck } from './balancer-options';
import type { ClientRequest, RequestTracker } from './client-request';
import { HealthProbe } from './health';
import type { ResolvedClientOptions } from './options';
import { Pool, type PoolOwner, type PoolStats } from './pool';
import type { UpstreamStats } from './stats';

export type { UpstreamStats };

/** What an upstream tells the balancer. */
export interface UpstreamEvents {
  /** It may take requests again: a request ended, its cooldown ended, or a probe passed. */
  onRoom(upstream: Upstream): void;
  /**
   * A request left it unanswered and may go to another upstream: `error` is the connect error when it never
   * reached this one, null when it was lost with its connection and is safe to send again (canReplay).
   */
  reroute(request: ClientRequest, from: Upstream, error: FastCGIError | null): void;
}

/** How passive and active health treat an upstream. */
export interface HealthSettings {
  readonly ejectAfter: number;
  readonly ejectFor: number;
  readonly healthCheck: ResolvedHealthCheck | null;
}

// Failures that say the backend itself is unreachable or went away; anything else (a slow script, a malformed
// response) is the application's, and ejecting the backend would not help.
const BACKEND_FAILURES: ReadonlySet<string> = new Set([
  ErrorCode.CONNECT,
  ErrorCode.CONNECT_TIMEOUT,
  ErrorCode.BACKEND_CLOSED,
]);
// Ends the caller brought about: not the upstream's failures.
const CALLER_ENDS: ReadonlySet<string> = new Set([
  ErrorCode.REQUEST_ABORTED,
  ErrorCode.CLIENT_CLOSED,
  ErrorCode.BODY_SOURCE,
  ErrorCode.BODY_LENGTH_MISMATCH,
]);

/** @internal */
export class Upstream implements Candidate, RequestTracker, PoolOwner {
  readonly target: ConnectTarget;
  /** The configured address it came from (UpstreamSpec.key). */
  readonly configured: string;
  readonly weight: number;
  readonly pool: Pool;
  /** Smooth weighted round robin's running score (balance-policy.ts). */
  currentWeight = 0;
  /** Requests sent here that have not ended. */
  inFlight = 0;
  isEjected = false;
  isHealthy = true;
  isDraining = false;
  #served = 0;
  #failed = 0;
  #ejections = 0;
  #failures = 0;
  #probeFailure: string | null = null;
  // #served when the health probe last looked.
  #servedAtCheck = 0;
  readonly #maxConcurrent: number | null;
  readonly #health: HealthSettings;
  readonly #events: UpstreamEvents;
  #ejectTimer: NodeJS.Timeout | null = null;
  #probe: HealthProbe | null = null;
  #drained: (() => void) | null = null;

  constructor(
    target: ConnectTarget,
    configured: string,
    weight: number,
    maxConcurrent: number | null,
    options: ResolvedClientOptions,
    health: HealthSettings,
    events: UpstreamEvents,
  ) {
    this.target = target;
    this.configured = configured;
    this.weight = weight;
    this.#maxConcurrent = maxConcurrent;
    this.#health = health;
    this.#events = events;
    // With a cap, one connection per slot: php-fpm serves a kept connection with one worker, so more
    // connections than pm.max_children would park requests in its accept queue behind idle kept ones. Connect
    // failures go back to the balancer at once (no retry window): another upstream can take the requests.
    this.pool = new Pool(
      { ...options, target, poolSize: maxConcurrent ?? options.poolSize, connectRetryWindow: 0 },
      this,
    );
    if (health.healthCheck !== null) {
      this.#probe = new HealthProbe(
        this.pool,
        health.healthCheck,
        options,
        (failure) => this.#onProbe(failure),
        () => this.#answeredSinceCheck(),
      );
      this.#probe.start();
    }
  }

  /** Most requests sent here at once. */
  get capacity(): number {
    return this.#maxConcurrent ?? this.pool.capacity;
  }

  /** Whether a request sent now would start at once (or wait only for a connection to open). */
  get hasRoom(): boolean {
    return this.inFlight < this.capacity;
  }

  /** Healthy and in rotation. */
  get isEligible(): boolean {
    return !this.isEjected && this.isHealthy && !this.isDraining;
  }

  /** Sends `request` here. */
  dispatch(request: ClientRequest): void {
    this.inFlight++;
    request.tracker = this;
    this.pool.submit(request);
  }

  // ---- RequestTracker and PoolOwner ---------------------------------------------------------------------

  /** @internal */
  onRequestEnd(_request: ClientRequest, error: Error | null): void {
    this.inFlight--;
    if (error === null) {
      this.#served++;
      this.#failures = 0;
    } else {
      const code = (error as FastCGIError).code;
      if (!CALLER_ENDS.has(code)) this.#failed++;
      if (BACKEND_FAILURES.has(code)) this.#recordFailure();
    }
    this.#afterRelease();
  }

  /** @internal Connecting failed: one failure, however many requests were waiting for it. */
  onUnreached(requests: readonly ClientRequest[], error: FastCGIError): void {
    this.#recordFailure();
    const sent: ClientRequest[] = [];
    for (const request of requests) {
      // The health probe's request is not the balancer's to send elsewhere.
      if (request.tracker !== this) request.fail(error, false);
      else sent.push(request);
    }
    this.#failed += sent.length;
    for (const request of sent) this.#release(request);
    for (const request of sent) this.#events.reroute(request, this, error);
    this.#afterRelease();
  }

  /**
   * @internal A request lost with its connection, safe to send again. Not counted toward ejection: a backend
   * retiring a kept connection (php-fpm's pm.max_requests) looks the same, and a dead one refuses the next
   * connection anyway.
   */
  onReplay(request: ClientRequest): void {
    this.#failed++;
    this.#release(request);
    this.#events.reroute(request, this, null);
    this.#afterRelease();
  }

  #release(request: ClientRequest): void {
    this.inFlight--;
    request.tracker = null;
  }

  #afterRelease(): void {
    if (this.isDraining) {
      if (this.inFlight === 0) this.#finishDrain();
      return;
    }
    this.#events.onRoom(this);
  }

  // ---- Health ---------------------------------------------------------------------------------------------

  #recordFailure(): void {
    const { ejectAfter, ejectFor } = this.#health;
    if (ejectAfter === 0 || this.isEjected || this.isDraining) return;
    if (++this.#failures < ejectAfter) return;
    this.isEjected = true;
    this.#ejections++;
    // Readmitted on probation: one more failure before a success ejects it again (nginx tries a failed server
    // with one request after fail_timeout).
    this.#failures = ejectAfter - 1;
    this.#ejectTimer = setTimeout(onEjectTimer, ejectFor, this);
    this.#ejectTimer.unref();
  }

  /** @internal The cooldown ended. */
  readmit(): void {
    this.#ejectTimer = null;
    this.isEjected = false;
    if (!this.isDraining) this.#events.onRoom(this);
  }

  #answeredSinceCheck(): boolean {
    const answered = this.isHealthy && this.#served !== this.#servedAtCheck;
    this.#servedAtCheck = this.#served;
    return answered;
  }

  #onProbe(failure: string | null): void {
    const wasHealthy = this.isHealthy;
    this.isHealthy = failure === null;
    this.#probeFailure = failure;
    if (this.isHealthy && !wasHealthy && !this.isDraining) this.#events.onRoom(this);
  }

  // ---- Stats and shutdown ---------------------------------------------------------------------------------

  /** This upstream's line in client.stats, from its pool's stats. */
  statsFrom(pool: PoolStats): UpstreamStats {
    return {
      address: this.target.label,
      configured: this.configured,
      weight: this.weight,
      maxConcurrent: this.capacity,
      inFlight: this.inFlight,
      queued: pool.queued,
      connections: pool.connections,
      served: this.#served,
      failed: this.#failed,
      ejections: this.#ejections,
      ejected: this.isEjected,
      healthy: this.isHealthy,
      probeFailure: this.#probeFailure,
      draining: this.isDraining,
    };
  }

  /** Takes no more requests, lets those it has finish, then closes its connections. */
  drain(): Promise<void> {
    this.isDraining = true;
    this.#stopTimers();
    return new Promise((resolve) => {
      this.#drained = resolve;
      if (this.inFlight === 0) this.#finishDrain();
    });
  }

  #finishDrain(): void {
    const resolve = this.#drained;
    if (resolve === null) return;
    this.#drained = null;
    void this.pool.close().then(resolve);
  }

  /** client.close(): waits for the requests in flight, then closes every connection. */
  close(): Promise<void> {
    this.#stopTimers();
    return this.pool.close();
  }

  /** client.destroy(): closes every connection now. */
  destroy(): void {
    this.#stopTimers();
    this.pool.destroy();
    this.#finishDrain();
  }

  #stopTimers(): void {
    if (this.#ejectTimer !== null) clearTimeout(this.#ejectTimer);
    this.#ejectTimer = null;
    this.#probe?.stop();
    this.#probe = null;
  }
}

function onEjectTimer(upstream: Upstream): void {
  upstream.readmit();
}
