// Server statistics (issue 15): counters the server updates as connections and requests come and go, and the
// snapshot `server.stats()` returns. A minimal implementation of the shared contract; the observability core
// branch owns this file and replaces it.
import { ErrorCode } from '../errors';
import { ProtocolStatus } from '../protocol/constants';

export interface LatencyHistogram {
  /** Upper bounds in seconds of each bucket, ascending (Prometheus-style `le`), the last one Infinity. */
  bounds: number[];
  /** Count of requests per bucket (not cumulative), same length as bounds. */
  counts: number[];
  /** Sum of all durations, seconds. */
  sum: number;
  count: number;
}

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
    byStatusClass: Record<StatusClass, number>;
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

/** Latency bucket bounds in seconds: Prometheus client libraries' defaults, which suit web requests. */
export const LATENCY_BOUNDS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, Infinity];

const REFUSAL_CAUSES: Record<string, string> = {
  [ErrorCode.CONNECTION_LIMIT]: 'maxConnections',
  [ErrorCode.PEER_NOT_ALLOWED]: 'webServerAddrs',
  [ErrorCode.BUFFER_LIMIT]: 'bufferLimit',
  [ErrorCode.BEGIN_TIMEOUT]: 'beginTimeout',
  [ErrorCode.IDLE_TIMEOUT]: 'idleTimeout',
  [ErrorCode.SEND_TIMEOUT]: 'sendTimeout',
  [ErrorCode.PARAMS_TIMEOUT]: 'paramsTimeout',
  [ErrorCode.BODY_TIMEOUT]: 'bodyTimeout',
  [ErrorCode.PARAMS_TOO_LARGE]: 'paramsLimit',
  [ErrorCode.PAIR_TOO_LARGE]: 'paramsLimit',
};

/** The refusal cause a connection-closing error counts under (protocol errors share one cause). */
export function refusalCause(code: string): string {
  return REFUSAL_CAUSES[code] ?? 'protocolError';
}

const PROTOCOL_STATUS_NAMES = new Map<number, string>(
  Object.entries(ProtocolStatus).map(([name, value]) => [value as number, name]),
);

/**
 * The HTTP status a CGI response starts with (RFC 3875 §6.3.3: a `Status:` header, else 200; a `Location:`
 * alone is a redirect, 302), read from the first STDOUT chunk, where the adapters write the whole header block.
 */
export function cgiStatusOf(chunk: Uint8Array): number {
  const head = Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(chunk.byteLength, 4096)).toString('latin1');
  const end = head.search(/\r?\n\r?\n/);
  const block = end === -1 ? head : head.slice(0, end);
  const status = /(?:^|\n)status:[ \t]*(\d{3})/i.exec(block);
  if (status !== null) return Number(status[1]);
  return /(?:^|\n)location:/i.test(block) ? 302 : 200;
}

/** StatsRecorder keeps the counters; the server calls it at each event, stats() copies them out. */
export class StatsRecorder {
  #startTime = Date.now();
  #open = 0;
  #accepted = 0;
  #maxOpen = 0;
  readonly #refused: Record<string, number> = {};
  #inFlight = 0;
  #maxInFlight = 0;
  #total = 0;
  readonly #byStatusClass: Record<StatusClass, number> = { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
  #aborted = 0;
  #timedOut = 0;
  readonly #byProtocolStatus: Record<string, number> = {};
  #slow = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  readonly #counts = LATENCY_BOUNDS.map(() => 0);
  #latencySum = 0;
  readonly #slowThresholdMs: number;

  constructor(slowThresholdMs = 0) {
    this.#slowThresholdMs = slowThresholdMs;
  }

  listening(): void {
    this.#startTime = Date.now();
  }

  connectionOpened(): void {
    this.#accepted++;
    this.#open++;
    if (this.#open > this.#maxOpen) this.#maxOpen = this.#open;
  }

  connectionClosed(): void {
    this.#open--;
  }

  refused(cause: string): void {
    this.#refused[cause] = (this.#refused[cause] ?? 0) + 1;
  }

  bytes(read: number, written: number): void {
    this.#bytesIn += read;
    this.#bytesOut += written;
  }

  requestRefused(protocolStatus: number): void {
    this.#countProtocolStatus(protocolStatus);
  }

  requestStarted(): void {
    this.#total++;
    this.#inFlight++;
    if (this.#inFlight > this.#maxInFlight) this.#maxInFlight = this.#inFlight;
  }

  requestTimedOut(): void {
    this.#timedOut++;
  }

  /** A request ended: answered (with the CGI status the app sent, 0 if it sent nothing) or aborted by the peer. */
  requestEnded(durationMs: number, status: number, aborted: boolean): void {
    this.#inFlight--;
    if (aborted) this.#aborted++;
    else this.#countProtocolStatus(ProtocolStatus.REQUEST_COMPLETE);
    if (status >= 100 && status < 600) this.#byStatusClass[`${Math.floor(status / 100)}xx` as StatusClass]++;
    if (this.#slowThresholdMs > 0 && durationMs > this.#slowThresholdMs) this.#slow++;
    const seconds = durationMs / 1000;
    this.#latencySum += seconds;
    let bucket = LATENCY_BOUNDS.findIndex((bound) => seconds <= bound);
    if (bucket === -1) bucket = LATENCY_BOUNDS.length - 1;
    this.#counts[bucket]!++;
  }

  #countProtocolStatus(value: number): void {
    const name = PROTOCOL_STATUS_NAMES.get(value) ?? String(value);
    this.#byProtocolStatus[name] = (this.#byProtocolStatus[name] ?? 0) + 1;
  }

  snapshot(): ServerStats {
    const now = Date.now();
    return {
      startTime: this.#startTime,
      startSince: Math.floor((now - this.#startTime) / 1000),
      connections: {
        open: this.#open,
        accepted: this.#accepted,
        refused: { ...this.#refused },
        maxOpen: this.#maxOpen,
      },
      requests: {
        inFlight: this.#inFlight,
        maxInFlight: this.#maxInFlight,
        total: this.#total,
        byStatusClass: { ...this.#byStatusClass },
        aborted: this.#aborted,
        timedOut: this.#timedOut,
        byProtocolStatus: { ...this.#byProtocolStatus },
        slow: this.#slow,
      },
      bytes: { in: this.#bytesIn, out: this.#bytesOut },
      latency: {
        bounds: [...LATENCY_BOUNDS],
        counts: [...this.#counts],
        sum: this.#latencySum,
        count: this.#counts.reduce((a, b) => a + b, 0),
      },
    };
  }
}
