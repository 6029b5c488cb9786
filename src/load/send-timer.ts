// When the open loop's next request is due. With the addon (Linux), a timerfd polled by libuv wakes the loop at
// the microsecond (native/precise-timer.cc); libuv's own timers have millisecond resolution, which put the
// generator's lateness into every latency it reported. The timer is armed early by how late this machine's
// wake-ups run (an average, learned as it goes: ~45 µs on a virtual machine even with no timer slack), so
// sends leave on time without spinning. Without the addon: setTimeout, and the report says so.
import { nativePreciseTimer, type PreciseTimerHandle } from '../codec/load';

/** Calls back at (or just before) a time on `clock()`'s µs scale. */
export interface SendTimer {
  /** 'timerfd' or 'setTimeout', for the report. */
  readonly kind: 'timerfd' | 'setTimeout';
  /** What to call when a time comes. */
  setCallback(callback: () => void): void;
  /** Calls the callback at `dueUs` (µs on performance.now()'s clock), replacing any earlier request. */
  at(dueUs: number): void;
  close(): void;
}

function noop(): void {}

/** The µs clock the load generator times everything with. */
export function clock(): number {
  return performance.now() * 1000;
}

/**
 * Where clock()'s zero is on CLOCK_MONOTONIC (process.hrtime's clock, the addon's), in ns, measured now. Measured
 * at each use, not once: on this VM performance.now() and process.hrtime() drifted ~1.5 ms apart in a process's
 * first ~0.4 s (then by µs), so an origin fixed then put native deadlines a millisecond off
 * (test/load/send-timer.test.ts).
 */
function monotonicOriginNs(): number {
  return Number(process.hrtime.bigint()) - performance.now() * 1e6;
}

// Wake-ups are never assumed later than this: a long stall (GC, a busy core) must not make the timer fire early.
const MAX_EARLY_US = 200;

class NativeSendTimer implements SendTimer {
  readonly kind = 'timerfd' as const;
  readonly #timer: PreciseTimerHandle;
  #armedFor = 0;
  #early = 0;
  // Whether the current arm was for a time still ahead, and so tells how late this machine's wake-ups run.
  #learn = false;
  #callback: () => void = noop;

  constructor() {
    const Timer = nativePreciseTimer()!;
    this.#timer = new Timer(() => {
      // How much later than asked the wake-up came, averaged: the next one is asked for that much sooner. An
      // arm for a time already past (due within the early margin) fires at once and says nothing about that.
      if (this.#learn) {
        const late = clock() - this.#armedFor;
        this.#early = Math.min(MAX_EARLY_US, Math.max(0, this.#early + 0.1 * (late - this.#early)));
      }
      this.#callback();
    });
  }

  setCallback(callback: () => void): void {
    this.#callback = callback;
  }

  at(dueUs: number): void {
    const early = dueUs - this.#early;
    // Inside the early margin already: wait for the due time itself (a wake-up late by the usual delay) rather
    // than arm for a past time, which would fire at once, again and again until the due time: a spin.
    this.#learn = early > clock();
    this.#armedFor = this.#learn ? early : dueUs;
    this.#timer.arm(monotonicOriginNs() + this.#armedFor * 1000);
  }

  close(): void {
    this.#timer.close();
  }
}

class FallbackSendTimer implements SendTimer {
  readonly kind = 'setTimeout' as const;
  #callback: () => void = noop;
  #timer: NodeJS.Timeout | null = null;

  setCallback(callback: () => void): void {
    this.#callback = callback;
  }

  at(dueUs: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#fire, Math.max(0, (dueUs - clock()) / 1000));
  }

  #fire = (): void => {
    this.#timer = null;
    this.#callback();
  };

  close(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}

/** The precise timer when the addon has one, else setTimeout. */
export function createSendTimer(): SendTimer {
  return nativePreciseTimer() !== null ? new NativeSendTimer() : new FallbackSendTimer();
}
