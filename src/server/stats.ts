// Server statistics: plain counters the connection and server bump as events happen, and the snapshot
// server.stats() returns (the figures php-fpm's status page shows, in Prometheus-friendly shapes).
import { ErrorCode, type FastCGIError } from '../errors';
import { protocolStatusName } from '../wire/names';

export interface LatencyHistogram {
  /** Upper bounds in seconds of each bucket, ascending (Prometheus-style `le`), the last one Infinity. */
  bounds: number[];
  /** Count of requests per bucket (not cumulative), same length as bounds. */
  counts: number[];
  /** Sum of all durations, seconds. */
  sum: number;
  count: number;
}

/** A response status class, as the stats count them. */
export type StatusClass = '1xx' | '2xx' | '3xx' | '4xx' | '5xx';

export interface ServerStats {
  /** When the server started listening (ms since the epoch), and seconds since. */
  startTime: number;
  startSince: number;
  connections: {
    open: number;
    accepted: number;
    /** Refused or closed by a limit, by cause: 'maxConnections', 'webServerAddrs', 'bufferLimit', 'beginTimeout', 'idleTimeout', 'sendTimeout', 'protocolError', ... */
    refused: Record<string, number>;
    /** Most open at once. */
    maxOpen: number;
  };
  requests: {
    inFlight: number;
    /** Most in flight at once. */
    maxInFlight: number;
    total: number;
    /** '1xx' .. '5xx' by the response status the app sent (CGI Status). */
    byStatusClass: Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number>;
    aborted: number;
    timedOut: number;
    /** END_REQUEST protocolStatus names (REQUEST_COMPLETE, CANT_MPX_CONN, OVERLOADED, UNKNOWN_ROLE) -> count. */
    byProtocolStatus: Record<string, number>;
    /** Requests slower than `slowRequestThreshold` (ms, a server option, default 0 = off), php-fpm's "slow requests". */
    slow: number;
  };
  bytes: { in: number; out: number };
  latency: LatencyHistogram;
}

/** Bucket bounds of the latency histogram, in seconds: Prometheus' default buckets, the last one +Inf. */
export const LATENCY_BOUNDS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, Infinity];

/** The `refused` cause a connection-closing error counts under. */
export function refusalCause(error: FastCGIError): string {
  switch (error.code) {
    case ErrorCode.CONNECTION_LIMIT:
      return 'maxConnections';
    case ErrorCode.PEER_NOT_ALLOWED:
      return 'webServerAddrs';
    case ErrorCode.BUFFER_LIMIT:
      return 'bufferLimit';
    case ErrorCode.BEGIN_TIMEOUT:
      return 'beginTimeout';
    case ErrorCode.IDLE_TIMEOUT:
      return 'idleTimeout';
    case ErrorCode.SEND_TIMEOUT:
      return 'sendTimeout';
    case ErrorCode.PARAMS_TIMEOUT:
      return 'paramsTimeout';
    case ErrorCode.BODY_TIMEOUT:
      return 'bodyTimeout';
    case ErrorCode.PARAMS_TOO_LARGE:
    case ErrorCode.PAIR_TOO_LARGE:
      return 'paramsLimit';
    default:
      return 'protocolError';
  }
}

/**
 * @internal The live counters behind server.stats(). Plain number fields so the per-request cost is a few
 * additions; objects are built only when a snapshot is asked for.
 */
export class StatsRecorder {
  startTime = Date.now();
  connectionsOpen = 0;
  connectionsAccepted = 0;
  connectionsMaxOpen = 0;
  readonly refused: Record<string, number> = {};
  inFlight = 0;
  maxInFlight = 0;
  total = 0;
  // Index 0..4: 1xx..5xx.
  readonly statusClasses = [0, 0, 0, 0, 0];
  aborted = 0;
  timedOut = 0;
  // Index: protocolStatus 0..3; anything else is kept by name in otherProtocolStatus.
  readonly protocolStatuses = [0, 0, 0, 0];
  readonly otherProtocolStatus: Record<string, number> = {};
  slow = 0;
  bytesIn = 0;
  bytesOut = 0;
  readonly latencyCounts: number[] = LATENCY_BOUNDS.map(() => 0);
  latencySum = 0;
  /** Requests at least this slow (ms) count as slow; 0 turns that off. */
  slowThreshold: number;

  constructor(slowThreshold = 0) {
    this.slowThreshold = slowThreshold;
  }

  connectionOpened(): void {
    this.connectionsAccepted++;
    if (++this.connectionsOpen > this.connectionsMaxOpen) this.connectionsMaxOpen = this.connectionsOpen;
  }

  connectionClosed(): void {
    this.connectionsOpen--;
  }

  refusedBy(cause: string): void {
    this.refused[cause] = (this.refused[cause] ?? 0) + 1;
  }

  requestBegan(): void {
    if (++this.inFlight > this.maxInFlight) this.maxInFlight = this.inFlight;
  }

  protocolStatus(status: number): void {
    if (status >= 0 && status < 4) this.protocolStatuses[status]!++;
    else this.otherProtocolStatus[String(status)] = (this.otherProtocolStatus[String(status)] ?? 0) + 1;
  }

  /**
   * A request the server took has ended: `status` is the response status (0 when none was sent), `ms` how
   * long since its BEGIN_REQUEST. Returns whether it was slow.
   */
  requestEnded(status: number, ms: number): boolean {
    this.inFlight--;
    this.total++;
    const group = (status / 100) | 0;
    if (group >= 1 && group <= 5) this.statusClasses[group - 1]!++;
    const seconds = ms / 1000;
    this.latencySum += seconds;
    const bounds = LATENCY_BOUNDS;
    let i = 0;
    while (seconds > bounds[i]!) i++;
    this.latencyCounts[i]!++;
    if (this.slowThreshold > 0 && ms >= this.slowThreshold) {
      this.slow++;
      return true;
    }
    return false;
  }

  snapshot(): ServerStats {
    const byProtocolStatus: Record<string, number> = {};
    for (let status = 0; status < 4; status++)
      byProtocolStatus[protocolStatusName(status)] = this.protocolStatuses[status]!;
    Object.assign(byProtocolStatus, this.otherProtocolStatus);
    const [c1, c2, c3, c4, c5] = this.statusClasses as [number, number, number, number, number];
    return {
      startTime: this.startTime,
      startSince: Math.floor((Date.now() - this.startTime) / 1000),
      connections: {
        open: this.connectionsOpen,
        accepted: this.connectionsAccepted,
        refused: { ...this.refused },
        maxOpen: this.connectionsMaxOpen,
      },
      requests: {
        inFlight: this.inFlight,
        maxInFlight: this.maxInFlight,
        total: this.total,
        byStatusClass: { '1xx': c1, '2xx': c2, '3xx': c3, '4xx': c4, '5xx': c5 },
        aborted: this.aborted,
        timedOut: this.timedOut,
        byProtocolStatus,
        slow: this.slow,
      },
      bytes: { in: this.bytesIn, out: this.bytesOut },
      latency: {
        bounds: [...LATENCY_BOUNDS],
        counts: [...this.latencyCounts],
        sum: this.latencySum,
        count: this.total,
      },
    };
  }
}
