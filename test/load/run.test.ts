// The load loops against a target that answers on its own schedule: what is started, what is recorded, and
// when a run ends.
import { describe, expect, it } from 'vitest';
import { runLoad } from '../../src/load/run';
import type { LoadSink, LoadTarget } from '../../src/load/target';

/** Answers every request after `delayMs` with status 200 (or fails every `failEvery`-th), counting what it saw. */
class FakeTarget implements LoadTarget {
  readonly connectionsOpened = 1;
  readonly firstReply = Buffer.from('sample');
  submitted = 0;
  inFlight = 0;
  maxInFlight = 0;
  closed = false;

  constructor(
    private readonly sink: LoadSink,
    private readonly delayMs: number,
    private readonly failEvery = 0,
  ) {}

  submit(startedAt: number): void {
    const n = ++this.submitted;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    setTimeout(() => {
      this.inFlight--;
      if (this.failEvery > 0 && n % this.failEvery === 0) this.sink.failed(startedAt, 'FAKE_ERR', 2);
      else this.sink.completed(startedAt, 200, 10);
    }, this.delayMs);
  }

  close(): void {
    this.closed = true;
  }
}

describe('runLoad', () => {
  it('closed loop: keeps N in flight until the request limit, records every outcome, then closes the target', async () => {
    let target: FakeTarget | null = null;
    const run = await runLoad((sink) => (target = new FakeTarget(sink, 2, 5)), { concurrency: 4, requests: 40 });
    expect(target!.submitted).toBe(40);
    expect(target!.maxInFlight).toBe(4);
    expect(target!.closed).toBe(true);
    expect(run.stats).toMatchObject({ total: 40, answered: 32, errors: 8, bytes: 320 });
    expect(run.stats.errorCodes.get('FAKE_ERR')).toBe(8);
    expect(run.stats.protocolStatus.get('OVERLOADED')).toBe(8);
    expect(run.stats.histogram.totalCount).toBe(40);
    expect(run.scheduler).toBeNull();
    expect(run.firstReply?.toString()).toBe('sample');
  });

  it('does not record the warmup, and measures from its end', async () => {
    let target: FakeTarget | null = null;
    const phases: string[] = [];
    const run = await runLoad((sink) => (target = new FakeTarget(sink, 5)), {
      concurrency: 2,
      warmupMs: 100,
      durationMs: 100,
      onMeasureStart: () => phases.push('start'),
      onMeasureEnd: () => phases.push('end'),
    });
    expect(phases).toEqual(['start', 'end']);
    expect(run.stats.total).toBeGreaterThan(0);
    expect(run.stats.total).toBeLessThan(target!.submitted);
    expect(run.elapsedUs / 1000).toBeGreaterThanOrEqual(95);
    expect(run.elapsedUs / 1000).toBeLessThan(190);
  });

  it('open loop: starts requests on schedule, whatever the answers, and says what timed them', async () => {
    let target: FakeTarget | null = null;
    const started = performance.now();
    const run = await runLoad((sink) => (target = new FakeTarget(sink, 30)), {
      concurrency: 1,
      rate: 200,
      requests: 20,
    });
    // 20 requests at 200/s: the last starts ~95 ms in, with several in flight at once (each takes 30 ms).
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
    expect(target!.maxInFlight).toBeGreaterThan(1);
    expect(run.stats.total).toBe(20);
    expect(run.stats.senderLag.totalCount).toBe(20);
    expect(run.scheduler === 'timerfd' || run.scheduler === 'setTimeout').toBe(true);
  });

  it('open loop: a request sent late is timed from when it was due, one sent early from when it left', async () => {
    // The loop is blocked for 40 ms right after the run starts, so the requests due then leave late, together.
    const calls: { startedAt: number; at: number }[] = [];
    let blocked = false;
    const run = await runLoad(
      (sink) => {
        const target = new FakeTarget(sink, 1);
        const submit = target.submit.bind(target);
        target.submit = (startedAt) => {
          calls.push({ startedAt, at: performance.now() * 1000 });
          if (!blocked) {
            blocked = true;
            const until = performance.now() + 40;
            while (performance.now() < until);
          }
          submit(startedAt);
        };
        return target;
      },
      { concurrency: 1, rate: 500, requests: 30 },
    );
    expect(run.stats.total).toBe(30);
    // Never timed from after the send (that would hide time the request was already due).
    for (const call of calls) expect(call.startedAt).toBeLessThanOrEqual(call.at + 1);
    // The requests due during the block were sent ~40 ms into it, yet are timed from their due times, 2 ms apart.
    const late = calls.filter((call) => call.at - call.startedAt > 5000);
    expect(late.length).toBeGreaterThanOrEqual(10);
    const lateStarts = late.map((call) => call.startedAt);
    expect(lateStarts[1]! - lateStarts[0]!).toBeGreaterThan(1500);
    expect(run.stats.histogram.maxValue / 1000).toBeGreaterThan(30);
  });

  it("record: 'window' counts what settles inside the window, and a request that never answers neither stretches it nor hangs the run", async () => {
    let target: FakeTarget | null = null;
    const started = performance.now();
    const run = await runLoad(
      (sink) => {
        target = new FakeTarget(sink, 5);
        const submit = target.submit.bind(target);
        // The third request is swallowed: no outcome, ever.
        target.submit = (startedAt) => (target!.submitted === 2 ? void target!.submitted++ : submit(startedAt));
        return target;
      },
      { concurrency: 2, durationMs: 100, record: 'window' },
    );
    const took = performance.now() - started;
    expect(run.elapsedUs / 1000).toBeGreaterThanOrEqual(95);
    expect(run.elapsedUs / 1000).toBeLessThan(160);
    expect(took).toBeLessThan(100 + 1000 + 500);
    expect(run.stats.total).toBeGreaterThan(0);
    expect(run.stats.total).toBeLessThan(target!.submitted);
    expect(target!.closed).toBe(true);
  });
});
