// The figures `client.stats` returns: public types only, apart from the pool and balancer that count them, so the
// package's declarations of them reach no internal class.
import type { PoolStats } from './pool';

/** One upstream in `client.stats.upstreams`. */
export interface UpstreamStats {
  /** Where it listens: 'unix:/run/php/a.sock', '10.0.0.5:9000'. */
  readonly address: string;
  /** The address as configured; the upstreams a hostname resolved to share it ('php-fpm.default.svc:9000'). */
  readonly configured: string;
  readonly weight: number;
  /** Most requests sent to it at once: maxConcurrent, else what its connections carry. */
  readonly maxConcurrent: number;
  /** Requests sent to it that have not ended (those waiting for one of its connections included). */
  readonly inFlight: number;
  /** Of those, the ones waiting for one of its connections to open. */
  readonly queued: number;
  /** Connections open or opening. */
  readonly connections: number;
  /** Requests it answered in full. */
  readonly served: number;
  /** Attempts that failed on it (caller aborts aside), including requests then sent to another upstream. */
  readonly failed: number;
  /** Times it was ejected. */
  readonly ejections: number;
  /** Ejected now: its cooldown runs. */
  readonly ejected: boolean;
  /** Its last health probe passed (always true without healthCheck). */
  readonly healthy: boolean;
  /** Why its last health probe failed, or null. */
  readonly probeFailure: string | null;
  /** Removed, finishing the requests it has. */
  readonly draining: boolean;
}

/** client.stats: the pool's figures (summed over upstreams), and one line per upstream when there are several. */
export interface ClientStats extends PoolStats {
  /** Each upstream, those draining included; only for a client created with `upstreams`. */
  readonly upstreams?: readonly UpstreamStats[];
}
