// The status report: what a status page shows, built from one server's stats() or the sum of several workers'
// (pure functions; serve's status page and the `status` subcommand's php-fpm reader both produce this shape).
import type { LatencyHistogram, ServerStats, StatusClass } from '../server/stats';

/** One process of the pool, as php-fpm's `?full` lists them. */
export interface ProcessEntry {
  pid: number;
  /** 'Idle' or 'Running' (a request in flight), as php-fpm says; 'Not answering' when a worker did not reply in time. */
  state: 'Idle' | 'Running' | 'Not answering';
  /** ms since the epoch; 0 when unknown. */
  startTime: number;
  requests: number;
  /** The last (or current) request: its duration in ms, method and URI, when known. */
  lastRequest?: { durationMs: number; method: string; uri: string };
}

export interface StatusReport {
  pool: string;
  processManager: string;
  /** Counters summed over the processes that answered. */
  stats: ServerStats;
  /** php-fpm's listen queue fields: the kernel's accept queue, which Node does not expose (reported 0). */
  listenQueue: number;
  maxListenQueue: number;
  activeProcesses: number;
  idleProcesses: number;
  totalProcesses: number;
  maxActiveProcesses: number;
  maxChildrenReached: number;
  processes: ProcessEntry[];
}

const CLASSES: StatusClass[] = ['1xx', '2xx', '3xx', '4xx', '5xx'];

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [key, value] of Object.entries(from)) into[key] = (into[key] ?? 0) + value;
}

/**
 * mergeHistograms adds histograms bucket by bucket. Histograms with other bounds are re-bucketed: each bucket's
 * count goes to the first bound of the result at or above its own (exact when the bounds are a subset).
 */
export function mergeHistograms(histograms: LatencyHistogram[]): LatencyHistogram {
  const first = histograms[0];
  if (first === undefined) return { bounds: [Infinity], counts: [0], sum: 0, count: 0 };
  const merged: LatencyHistogram = { bounds: [...first.bounds], counts: first.bounds.map(() => 0), sum: 0, count: 0 };
  for (const histogram of histograms) {
    histogram.counts.forEach((count, i) => {
      const bound = histogram.bounds[i] ?? Infinity;
      let target = merged.bounds.findIndex((b) => b >= bound);
      if (target === -1) target = merged.bounds.length - 1;
      merged.counts[target]! += count;
    });
    merged.sum += histogram.sum;
    merged.count += histogram.count;
  }
  return merged;
}

/**
 * mergeStats sums several servers' stats. The start time is the earliest; the "most at once" fields are summed,
 * which bounds the true pool-wide peak from above (the workers' peaks need not coincide).
 */
export function mergeStats(list: ServerStats[], now = Date.now()): ServerStats {
  const startTime = list.length === 0 ? now : Math.min(...list.map((s) => s.startTime));
  const merged: ServerStats = {
    startTime,
    startSince: Math.max(0, Math.floor((now - startTime) / 1000)),
    connections: { open: 0, accepted: 0, refused: {}, maxOpen: 0 },
    requests: {
      inFlight: 0,
      maxInFlight: 0,
      total: 0,
      byStatusClass: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 },
      aborted: 0,
      timedOut: 0,
      byProtocolStatus: {},
      slow: 0,
    },
    bytes: { in: 0, out: 0 },
    latency: mergeHistograms(list.map((s) => s.latency)),
  };
  for (const s of list) {
    merged.connections.open += s.connections.open;
    merged.connections.accepted += s.connections.accepted;
    merged.connections.maxOpen += s.connections.maxOpen;
    addCounts(merged.connections.refused, s.connections.refused);
    merged.requests.inFlight += s.requests.inFlight;
    merged.requests.maxInFlight += s.requests.maxInFlight;
    merged.requests.total += s.requests.total;
    for (const c of CLASSES) merged.requests.byStatusClass[c] += s.requests.byStatusClass[c] ?? 0;
    merged.requests.aborted += s.requests.aborted;
    merged.requests.timedOut += s.requests.timedOut;
    addCounts(merged.requests.byProtocolStatus, s.requests.byProtocolStatus);
    merged.requests.slow += s.requests.slow;
    merged.bytes.in += s.bytes.in;
    merged.bytes.out += s.bytes.out;
  }
  return merged;
}

/** One process's share of a report: its stats and what the pool lists for it. */
export interface ProcessSample {
  entry: ProcessEntry;
  /** null: it did not answer. */
  stats: ServerStats | null;
}

/**
 * buildReport makes the pool's report from its processes. A process is active while it has a request in flight
 * (the status request itself included, as in php-fpm); max active processes counts the processes that have ever
 * had one, an upper bound of php-fpm's figure, since there is no primary-side record of when each was busy.
 */
export function buildReport(
  pool: string,
  processManager: string,
  samples: ProcessSample[],
  now = Date.now(),
): StatusReport {
  const answered = samples.filter((s): s is ProcessSample & { stats: ServerStats } => s.stats !== null);
  const active = answered.filter((s) => s.stats.requests.inFlight > 0).length;
  return {
    pool,
    processManager,
    stats: mergeStats(
      answered.map((s) => s.stats),
      now,
    ),
    listenQueue: 0,
    maxListenQueue: 0,
    activeProcesses: active,
    idleProcesses: answered.length - active,
    totalProcesses: samples.length,
    maxActiveProcesses: answered.filter((s) => s.stats.requests.maxInFlight > 0).length,
    maxChildrenReached: 0,
    processes: samples.map((s) => s.entry),
  };
}
