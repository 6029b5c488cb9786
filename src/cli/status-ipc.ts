// The status page of `serve --workers N`: the worker a status request reaches asks the primary, which asks
// every worker for its sample (node:cluster messages), sums them and answers; a worker that does not answer
// within STATUS_QUERY_TIMEOUT_MS is listed as not answering.
import type { Worker } from 'node:cluster';
import type { ServerStats } from '../server/stats';
import { buildReport, type ProcessSample, type StatusReport } from '../status/report';
import type { ReportSource } from './serve-observe';

/** How long the primary waits for each worker's sample. */
export const STATUS_QUERY_TIMEOUT_MS = 1000;

type Message =
  | { type: 'fcgi-status:ask'; id: number; full: boolean }
  | { type: 'fcgi-status:report'; id: number; report: StatusReport }
  | { type: 'fcgi-status:query'; id: number }
  | { type: 'fcgi-status:sample'; id: number; sample: ProcessSample };

// node:cluster messages are JSON: the histogram's last bound, Infinity, would arrive as null.
function toWire(stats: ServerStats): ServerStats {
  return {
    ...stats,
    latency: { ...stats.latency, bounds: stats.latency.bounds.map((b) => (b === Infinity ? -1 : b)) },
  };
}
function fromWire(stats: ServerStats): ServerStats {
  return {
    ...stats,
    latency: { ...stats.latency, bounds: stats.latency.bounds.map((b) => (b === -1 || b === null ? Infinity : b)) },
  };
}

function isMessage(value: unknown): value is Message {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { type?: unknown }).type === 'string' &&
    (value as { type: string }).type.startsWith('fcgi-status:')
  );
}

/**
 * workerSide answers the primary's queries with this worker's sample and returns the report source the status
 * page uses: a request to the primary for the pool's sum.
 */
export function workerSide(local: () => ProcessSample): ReportSource {
  let next = 1;
  const waiting = new Map<number, (report: StatusReport) => void>();
  process.on('message', (message: unknown) => {
    if (!isMessage(message)) return;
    if (message.type === 'fcgi-status:query') {
      const sample = local();
      process.send?.({
        type: 'fcgi-status:sample',
        id: message.id,
        sample: { ...sample, stats: sample.stats === null ? null : toWire(sample.stats) },
      });
    } else if (message.type === 'fcgi-status:report') {
      const report = message.report;
      waiting.get(message.id)?.({ ...report, stats: fromWire(report.stats) });
      waiting.delete(message.id);
    }
  });
  return (_local, full) =>
    new Promise<StatusReport>((resolvePromise, reject) => {
      const id = next++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error('the primary did not answer the status query'));
      }, STATUS_QUERY_TIMEOUT_MS * 3);
      waiting.set(id, (report) => {
        clearTimeout(timer);
        resolvePromise(report);
      });
      process.send?.({ type: 'fcgi-status:ask', id, full });
    });
}

/** The primary's side: collects every worker's sample and sends the sum to the worker that asked. */
export class StatusAggregator {
  #next = 1;
  readonly #pending = new Map<number, (sample: ProcessSample) => void>();

  /** Handles a worker's message; returns false for messages that are not the status page's. */
  handle(worker: Worker, message: unknown, workers: () => Worker[]): boolean {
    if (!isMessage(message)) return false;
    if (message.type === 'fcgi-status:sample') {
      this.#pending.get(message.id)?.({
        ...message.sample,
        stats: message.sample.stats === null ? null : fromWire(message.sample.stats),
      });
    } else if (message.type === 'fcgi-status:ask') {
      void this.collect(workers()).then((report) => {
        if (worker.isConnected())
          worker.send({
            type: 'fcgi-status:report',
            id: message.id,
            report: { ...report, stats: toWire(report.stats) },
          });
      });
    }
    return true;
  }

  /** collect asks each worker for its sample and builds the pool's report. */
  async collect(workers: Worker[]): Promise<StatusReport> {
    const samples = await Promise.all(workers.map((worker) => this.#ask(worker)));
    return buildReport('', 'static', samples);
  }

  #ask(worker: Worker): Promise<ProcessSample> {
    const id = this.#next++;
    const silent: ProcessSample = {
      entry: { pid: worker.process.pid ?? 0, state: 'Not answering', startTime: 0, requests: 0 },
      stats: null,
    };
    return new Promise<ProcessSample>((resolvePromise) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolvePromise(silent);
      }, STATUS_QUERY_TIMEOUT_MS);
      this.#pending.set(id, (sample) => {
        clearTimeout(timer);
        this.#pending.delete(id);
        resolvePromise(sample);
      });
      try {
        worker.send({ type: 'fcgi-status:query', id });
      } catch {
        // Its channel closed (it is exiting): the timer lists it as not answering.
      }
    });
  }
}
