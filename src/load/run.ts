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
  /**
   * 'all' (default): every request started after the warmup is recorded, and the measured time runs until the
   * last one settled. 'window': only what settles inside the measured window (warmup end to durationMs later)
   * is recorded and the window is the measured time; requests still in flight then get STOP_GRACE_MS to end,
   * unrecorded, before the target is closed. A benchmark compares windows; the `bench` command counts all.
   */
  readonly record?: 'all' | 'window';
  /** Called once a second while the run lasts (progress lines). */
  readonly onProgress?: (stats: LoadStats, elapsedUs: number) => void;
  /** Called when recording starts and when the measured time ends (to sample a server's CPU). */
  readonly onMeasureStart?: () => void;
  readonly onMeasureEnd?: () => void;
}

/** What one run measured. */
export interface LoadRun {
  readonly stats: LoadStats;
  /** The measured time (see LoadPlan.record), µs. */
  readonly elapsedUs: number;
  /** Open loop: what timed the sends ('timerfd': to the µs, with the addon; 'setTimeout': ~1 ms); else null. */
  readonly scheduler: SendTimer['kind'] | null;
  /** This process's CPU time over the measured time, as a percentage of one core. */
  readonly clientCpuPercent: number;
  /** Connections the target opened. */
  readonly connectionsOpened: number;
  /** The target's first reply, when it kept one. */
  readonly firstReply: Buffer | null;
}

/** With record: 'window', how long requests in flight at the window's end may take to finish. */
export const STOP_GRACE_MS = 1000;

/**
 * runLoad builds the target on a fresh LoadStats, loads it as `plan` says, waits for the requests it started
 * to settle (targets time their requests out, so each one does; with record: 'window', for STOP_GRACE_MS at
 * most), closes the target and returns the figures.
 */
export async function runLoad(createTarget: (sink: LoadSink) => LoadTarget, plan: LoadPlan): Promise<LoadRun> {
  const stats = new LoadStats();
  const target = createTarget(stats);
  const warmupMs = plan.warmupMs ?? 0;
  const windowed = plan.record === 'window';
  const start = clock();
  const deadline = plan.durationMs === undefined ? Infinity : start + (warmupMs + plan.durationMs) * 1000;
  const limit = plan.requests ?? Infinity;
  const timers: NodeJS.Timeout[] = [];

  // The measured time: from the warmup's end to the last outcome ('all') or to the deadline ('window').
  let measuredFrom = start;
  let measuredTo = -1;
  let cpu = process.cpuUsage();
  let cpuUsed = 0;
  const startMeasuring = (): void => {
    stats.recording = true;
    measuredFrom = clock();
    cpu = process.cpuUsage();
    plan.onMeasureStart?.();
  };
  const stopMeasuring = (): void => {
    if (measuredTo >= 0) return;
    measuredTo = clock();
    const used = process.cpuUsage(cpu);
    cpuUsed = used.user + used.system;
    if (windowed) stats.recording = false;
    plan.onMeasureEnd?.();
  };
  stats.recording = false;
  if (warmupMs > 0) timers.push(setTimeout(startMeasuring, warmupMs));
  else startMeasuring();
  const progress =
    plan.onProgress === undefined ? null : setInterval(() => plan.onProgress!(stats, clock() - measuredFrom), 1000);

  let issued = 0;
  let settled = 0;
  let scheduling = true;
  let scheduler: LoadRun['scheduler'] = null;
  await new Promise<void>((resolve) => {
    const settledAll = (): void => {
      if (!scheduling && settled === issued) resolve();
    };
    const stopScheduling = (): void => {
      if (!scheduling) return;
      scheduling = false;
      if (windowed) {
        stopMeasuring();
        timers.push(setTimeout(resolve, STOP_GRACE_MS));
      }
      settledAll();
    };
    // The window closes on time even when nothing settles to notice it.
    if (windowed && deadline !== Infinity) timers.push(setTimeout(stopScheduling, (deadline - clock()) / 1000));
    if (plan.rate === undefined) {
      // Closed loop: every outcome starts the next request, until the deadline or the limit.
      const next = (): void => {
        if (!scheduling) return settledAll();
        const now = clock();
        if (issued < limit && now < deadline) {
          issued++;
          target.submit(now);
        } else {
          stopScheduling();
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
      void openLoop(
        start,
        deadline,
        limit,
        plan.rate,
        (startedAt) => {
          if (!scheduling) return false;
          issued++;
          target.submit(startedAt);
          return true;
        },
        stats,
        timer,
      ).then(stopScheduling);
    }
  });
  stopMeasuring();
  for (const timer of timers.splice(0)) clearTimeout(timer);
  if (progress !== null) clearInterval(progress);
  target.close();
  const elapsedUs = measuredTo - measuredFrom;
  return {
    stats,
    elapsedUs,
    scheduler,
    clientCpuPercent: elapsedUs > 0 ? (cpuUsed / elapsedUs) * 100 : 0,
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
function openLoop(
  start: number,
  deadline: number,
  limit: number,
  rate: number,
  send: (startedAt: number) => boolean,
  stats: LoadStats,
  timer: SendTimer,
): Promise<number> {
  const interval = 1e6 / rate;
  let issued = 0;
  return new Promise<number>((resolve) => {
    const tick = (): void => {
      let now = clock();
      while (issued < limit) {
        const intended = start + issued * interval;
        if (intended > now + EARLY_US || intended >= deadline) break;
        // Timed from the intended start, as an open loop must be (a late send's lag is part of what a user would
        // have waited), or from the actual send when it left early. test/load/run.test.ts holds both.
        if (!send(Math.min(intended, now))) {
          timer.close();
          return resolve(issued);
        }
        issued++;
        if (stats.recording) stats.senderLag.recordValue(Math.max(0, Math.round(now - intended)));
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
