// The benchmarks' view of a load run (src/load/run.ts): a closed loop of C requests in flight, a warmup, a
// measured window, and the figures a table row needs.
import { ErrorCode } from '../../src/errors';
import type { Histogram } from '../../src/load/latency';
import { runLoad } from '../../src/load/run';
import type { LoadSink, LoadTarget } from '../../src/load/target';

export interface BenchLoadOptions {
  /** Requests in flight (closed loop). */
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** The first reply's body must contain this ('' when the target checks replies itself). */
  readonly expectBody: string;
  readonly onMeasureStart?: () => void;
  readonly onMeasureEnd?: () => void;
}

/** What one run measured. */
export interface LoadResult {
  /** Requests answered inside the measured window. */
  readonly requests: number;
  /** The measured window, ms. */
  readonly elapsedMs: number;
  readonly reqPerSec: number;
  /** Latency of each request answered or failed inside the window, µs. */
  readonly latency: Histogram;
  /** Failed requests (timeouts apart) and answers with status >= 400, inside the window. */
  readonly errors: number;
  /** Requests that timed out inside the window. */
  readonly timeouts: number;
  /** Error codes with their counts, and a wrong first reply. */
  readonly errorSamples: readonly string[];
  /** Whether the first reply contained `expectBody`. */
  readonly verified: boolean;
  /** Connections opened over the run. */
  readonly connectionsOpened: number;
  /** This process's CPU time over the window, % of one core. */
  readonly clientCpuPercent: number;
}

/** benchLoad runs a closed loop against the target `createTarget` builds and returns the row's figures. */
export async function benchLoad(
  createTarget: (sink: LoadSink) => LoadTarget,
  options: BenchLoadOptions,
): Promise<LoadResult> {
  const run = await runLoad(createTarget, {
    concurrency: options.concurrency,
    warmupMs: options.warmupMs,
    durationMs: options.durationMs,
    record: 'window',
    onMeasureStart: options.onMeasureStart,
    onMeasureEnd: options.onMeasureEnd,
  });
  const { stats } = run;
  const timeouts = stats.errorCodes.get(ErrorCode.REQUEST_TIMEOUT) ?? 0;
  const samples = [...stats.errorCodes].map(([code, n]) => `${code} ×${n}`);
  if (stats.failedStatus > 0) samples.push(`${stats.failedStatus} answers with status >= 400`);
  const body = run.firstReply?.toString('latin1') ?? null;
  const verified = body !== null && body.includes(options.expectBody);
  if (!verified)
    samples.push(
      body === null
        ? 'no reply received: the body was never checked'
        : `first reply does not contain the expected body; got ${JSON.stringify(body.slice(0, 200))}`,
    );
  const elapsedMs = run.elapsedUs / 1000;
  return {
    requests: stats.answered,
    elapsedMs,
    reqPerSec: elapsedMs > 0 ? (stats.answered * 1000) / elapsedMs : 0,
    latency: stats.histogram,
    errors: stats.errors - timeouts + stats.failedStatus,
    timeouts,
    errorSamples: samples.slice(0, 5),
    verified,
    connectionsOpened: run.connectionsOpened,
    clientCpuPercent: run.clientCpuPercent,
  };
}
