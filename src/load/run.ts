// One load run against a target: a closed loop (N requests in flight, each outcome starting the next, as fast
// as answers come) or an open loop (requests start on a schedule whether or not the backend keeps up, timed
// from their intended start, so queueing is not hidden: coordinated omission corrected), after an optional
// warmup whose outcomes are not recorded. The `bench` command and the benchmarks run their loads here.
import { clock, createSendTimer, type SendTimer } from './send-timer';
import { LoadStats } from './stats';
import type { LoadSink, LoadTarget } from './target';

/** How a run loads its target. */
export interface LoadPlan {
  /** Closed loop: requests in flight. */
  readonly concurrency: number;
  /** Open loop: requests started per second; the closed loop without it. */
  readonly rate?: number | undefined;
  /** How long requests are started after the warmup, ms; unlimited when absent (then `requests` ends the run). */
  readonly durationMs?: number | undefined;
  /** Stop after starting this many requests (the warmup's included). */
  readonly requests?: number | undefined;
  /** Load before recording starts, ms. Default 0. */
  readonly warmupMs?: number;
  /** Called once a second while the run lasts (progress lines). */
  readonly onProgress?: (stats: LoadStats, elapsedUs: number) => void;
  /** Called when recording starts and when the last outcome settled (to sample a server's CPU). */
  readonly onMeasureStart?: () => void;
  readonly onMeasureEnd?: () => void;
}

/** What one run measured. */
export interface LoadRun {
  readonly stats: LoadStats;
  /** From the end of the warmup to the last outcome, µs. */
  readonly elapsedUs: number;
  /** Open loop: what timed the sends ('timerfd': to the µs, with the addon; 'setTimeout': ~1 ms); else null. */
  readonly scheduler: SendTimer['kind'] | null;
  /** This process's CPU time over the same span, as a percentage of one core. */
  readonly clientCpuPercent: number;
  /** Connections the target opened. */
  readonly connectionsOpened: number;
  /** The target's first reply, when it kept one. */
  readonly firstReply: Buffer | null;
}

/**
 * runLoad builds the target on a fresh LoadStats, loads it as `plan` says, waits for every started request to
 * settle (targets time their requests out, so each one does), closes the target and returns the figures.
 */
export async function runLoad(createTarget: (sink: LoadSink) => LoadTarget, plan: LoadPlan): Promise<LoadRun> {
  const stats = new LoadStats();
  const target = createTarget(stats);
  const warmupMs = plan.warmupMs ?? 0;
  stats.recording = warmupMs <= 0;
  const start = clock();
  let measuredFrom = start;
  let cpu = process.cpuUsage();
  const startMeasuring = (): void => {
    stats.recording = true;
    measuredFrom = clock();
    cpu = process.cpuUsage();
    plan.onMeasureStart?.();
  };
  if (warmupMs <= 0) plan.onMeasureStart?.();
  const warmup = warmupMs > 0 ? setTimeout(startMeasuring, warmupMs) : null;
  const deadline = plan.durationMs === undefined ? Infinity : start + (warmupMs + plan.durationMs) * 1000;
  const limit = plan.requests ?? Infinity;
  const progress = plan.onProgress === undefined ? null : setInterval(() => plan.onProgress!(stats, clock() - measuredFrom), 1000);

  let issued = 0;
  let settled = 0;
  let scheduling = true;
  let scheduler: LoadRun['scheduler'] = null;
  await new Promise<void>((resolve) => {
    const settledAll = (): void => {
      if (!scheduling && settled === issued) resolve();
    };
    if (plan.rate === undefined) {
      // Closed loop: every outcome starts the next request, until the deadline or the limit.
      const next = (): void => {
        const now = clock();
        if (issued < limit && now < deadline) {
          issued++;
          target.submit(now);
        } else {
          scheduling = false;
          settledAll();
        }
      };
      stats.onSettled = () => {
        settled++;
        next();
      };
      for (let i = 0; i < plan.concurrency && scheduling; i++) next();
    } else {
      stats.onSettled = () => {
        settled++;
        settledAll();
      };
      const timer = createSendTimer();
      scheduler = timer.kind;
      void openLoop(start, deadline, limit, plan.rate, (startedAt) => {
        issued++;
        target.submit(startedAt);
      }, stats, timer).then(() => {
        scheduling = false;
        settledAll();
      });
    }
  });
  const end = clock();
  const used = process.cpuUsage(cpu);
  if (warmup !== null) clearTimeout(warmup);
  if (progress !== null) clearInterval(progress);
  plan.onMeasureEnd?.();
  target.close();
  const elapsedUs = end - measuredFrom;
  return {
    stats,
    elapsedUs,
    scheduler,
    clientCpuPercent: elapsedUs > 0 ? ((used.user + used.system) / elapsedUs) * 100 : 0,
    connectionsOpened: target.connectionsOpened,
    firstReply: target.firstReply,
  };
}

/**
 * Starts requests on the schedule start + i × interval until the deadline or the request limit, each timed from
 * its intended start (or from its actual send, when the timer woke a little early and it left before its time).
 * Between sends it sleeps on the send timer (send-timer.ts): a timerfd to the microsecond with the addon, else
 * setTimeout, whose ~1 ms granularity sends in bursts up to a millisecond late. Requests due within EARLY_US go
 * out in the same wake-up rather than costing another one. Each send's lateness goes into stats.senderLag.
 * (Spinning on setImmediate was tried and rejected: it kept a core busy at 1000 req/s and, on a shared machine,
 * was less punctual than a timer, since the spinning process gets descheduled.) Resolves when the last request
 * is started.
 */
function openLoop(start: number, deadline: number, limit: number, rate: number, send: (startedAt: number) => void, stats: LoadStats, timer: SendTimer): Promise<number> {
  const interval = 1e6 / rate;
  let issued = 0;
  return new Promise<number>((resolve) => {
    const tick = (): void => {
      let now = clock();
      while (issued < limit) {
        const intended = start + issued * interval;
        if (intended > now + EARLY_US || intended >= deadline) break;
        issued++;
        if (stats.recording) stats.senderLag.recordValue(Math.max(0, Math.round(now - intended)));
        send(Math.max(intended, now));
        now = clock();
      }
      const next = start + issued * interval;
      if (issued >= limit || next >= deadline) {
        timer.close();
        return resolve(issued);
      }
      timer.at(next);
    };
    timer.setCallback(tick);
    tick();
  });
}

/**
 * A request due this soon leaves in the current wake-up (µs), timed from its actual send: the timer wakes around
 * the due time by the spread of this machine's wake-up delay (tens of µs on a virtual machine), and waiting for
 * another wake-up would make it late by the whole delay again.
 */
const EARLY_US = 50;
