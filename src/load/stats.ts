// The outcomes of a load run as they arrive: latency and sender-lag histograms, counts by status, by the
// protocolStatus that refused a request and by error code.
import { protocolStatusName } from '../wire/names';
import { createLatencyHistogram, recordLatency } from './latency';
import { clock } from './send-timer';
import type { LoadSink } from './target';

function bump<K>(map: Map<K, number>, key: K): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** LoadStats records each outcome (LoadSink) and tells the run when one settled. */
export class LoadStats implements LoadSink {
  /** Latency of each outcome, µs from its `startedAt` to its end. */
  readonly histogram = createLatencyHistogram();
  /** Open loop only: how late each request was sent (µs). */
  readonly senderLag = createLatencyHistogram();
  /** Answered requests by HTTP status (numbers: no string per request). */
  readonly status = new Map<number, number>();
  /** Failed requests whose backend refused them, by protocolStatus name. */
  readonly protocolStatus = new Map<string, number>();
  readonly errorCodes = new Map<string, number>();
  /** Outcomes recorded: answered + errors. */
  total = 0;
  answered = 0;
  errors = 0;
  /** Answered requests whose status was 400 or more. */
  failedStatus = 0;
  /** Body bytes of answered requests. */
  bytes = 0;
  /** Outcomes since the last progress line (the caller resets it). */
  windowCount = 0;
  /** While false (a warmup), outcomes settle without being recorded. */
  recording = true;
  /** Called after each outcome, recorded or not (the run starts the next request from it). */
  onSettled: () => void = () => {};

  completed(startedAt: number, status: number, bodyBytes: number): void {
    if (this.recording) {
      this.answered++;
      this.bytes += bodyBytes;
      if (status >= 400) this.failedStatus++;
      bump(this.status, status);
      this.#record(startedAt);
    }
    this.onSettled();
  }

  failed(startedAt: number, code: string, protocolStatus: number | null): void {
    if (this.recording) {
      this.errors++;
      if (protocolStatus !== null) bump(this.protocolStatus, protocolStatusName(protocolStatus));
      bump(this.errorCodes, code);
      this.#record(startedAt);
    }
    this.onSettled();
  }

  #record(startedAt: number): void {
    recordLatency(this.histogram, clock() - startedAt);
    this.total++;
    this.windowCount++;
  }
}
