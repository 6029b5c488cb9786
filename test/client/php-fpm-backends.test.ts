// The client over several real php-fpm pools (Debian php8.2-fpm), each started from a temp dir by its test:
// weights honoured over 3,000 requests, a pm.max_children = 2 pool never given more than 2 requests at once, a
// slow pool avoided by least-in-flight, php-fpm's ping.path as the health probe, and a pool killed with -9 and
// restarted under load. Without php-fpm the tests skip with the package name (fail with
// FASTCGI_INTEROP_REQUIRED=1).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { onTestFinished, describe, expect, it, type TestContext } from 'vitest';
import type { Client } from '../../src/client/client';
import type { ClientOptions } from '../../src/client/options';
import { testClient, waitFor } from './helpers';
import { PhpFpm, phpFpmBinary, phpParams } from './php-fpm-harness';

interface Pools {
  readonly byName: Map<string, PhpFpm>;
  readonly counters: string;
}

/** Starts one php-fpm per name (its pool.php answers that name), with ping.path = /ping; stopped after the test. */
async function startPools(context: TestContext, children: Record<string, number>): Promise<Pools> {
  const binary = phpFpmBinary(context);
  const counters = fs.mkdtempSync(path.join(os.tmpdir(), 'fcgi-counters-'));
  const byName = new Map<string, PhpFpm>();
  onTestFinished(async () => {
    await Promise.all([...byName.values()].map((fpm) => fpm.dispose()));
    fs.rmSync(counters, { recursive: true, force: true });
  });
  for (const [name, maxChildren] of Object.entries(children)) {
    const extra = [`env[POOL_NAME] = ${name}`, `env[COUNTER_FILE] = ${path.join(counters, name)}`, 'ping.path = /ping'];
    byName.set(name, new PhpFpm(binary, { maxChildren, extra }));
  }
  await Promise.all([...byName.values()].map((fpm) => fpm.start()));
  return { byName, counters };
}

function socketOf(pools: Pools, name: string): string {
  return pools.byName.get(name)!.socketPath;
}

function statsOf(client: Client, pools: Pools, name: string) {
  return client.stats.upstreams!.find((u) => u.address === `unix:${socketOf(pools, name)}`)!;
}

/** One answer of pool.php: which pool ran it, and how many requests that pool was running then. */
interface Answer {
  readonly pool: string;
  readonly running: number;
}

async function hit(client: Client, query: string, options: { method?: string; body?: string } = {}): Promise<Answer> {
  const method = options.method ?? 'GET';
  const response = await client.request({
    params: phpParams('pool.php', { QUERY_STRING: query, REQUEST_METHOD: method }),
    body: options.body,
  });
  const text = await response.text();
  expect(response.status, text).toBe(200);
  const [pool, running] = text.trim().split(' ');
  return { pool: pool!, running: Number(running) };
}

/** `workers` loops sending requests until `total` have been answered; returns the answers. */
async function load(workers: number, total: number, send: () => Promise<Answer>): Promise<Answer[]> {
  const answers: Answer[] = [];
  let started = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (started < total) {
        started++;
        answers.push(await send());
      }
    }),
  );
  return answers;
}

function shares(answers: readonly Answer[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const answer of answers) counts[answer.pool] = (counts[answer.pool] ?? 0) + 1;
  return counts;
}

function upstreamsOf(
  pools: Pools,
  options: Record<string, { weight?: number; maxConcurrent?: number }>,
): ClientOptions['upstreams'] {
  return Object.entries(options).map(([name, rest]) => ({ address: socketOf(pools, name), ...rest }));
}

describe('client over several php-fpm pools', () => {
  it(
    'honours weights 1:2:3 within 2 points over 3,000 requests (round-robin)',
    { timeout: 30_000 },
    async (context) => {
      // Six at once with six slots each: no pool is ever full, so none is skipped (a full one would be, and its
      // turns would go to the others).
      const pools = await startPools(context, { a: 6, b: 6, c: 6 });
      const client = testClient({
        upstreams: upstreamsOf(pools, {
          a: { weight: 1, maxConcurrent: 6 },
          b: { weight: 2, maxConcurrent: 6 },
          c: { weight: 3, maxConcurrent: 6 },
        }),
        balance: 'round-robin',
      });
      const answers = await load(6, 3000, () => hit(client, ''));
      const counts = shares(answers);
      expect(answers).toHaveLength(3000);
      expect(Math.abs(counts.a! / 3000 - 1 / 6)).toBeLessThan(0.02);
      expect(Math.abs(counts.b! / 3000 - 2 / 6)).toBeLessThan(0.02);
      expect(Math.abs(counts.c! / 3000 - 3 / 6)).toBeLessThan(0.02);
      for (const name of ['a', 'b', 'c']) expect(statsOf(client, pools, name).served).toBe(counts[name]);
    },
  );

  it('never gives a pm.max_children = 2 pool more than 2 requests at once', { timeout: 30_000 }, async (context) => {
    const pools = await startPools(context, { small: 2, b: 4, c: 4 });
    const client = testClient({
      upstreams: upstreamsOf(pools, {
        small: { weight: 4, maxConcurrent: 2 },
        b: { maxConcurrent: 4 },
        c: { maxConcurrent: 4 },
      }),
    });
    // What the client sent the small pool, sampled while the load runs (each request also reports what php ran).
    let mostInFlight = 0;
    let mostConnections = 0;
    const sampler = setInterval(() => {
      const small = statsOf(client, pools, 'small');
      mostInFlight = Math.max(mostInFlight, small.inFlight);
      mostConnections = Math.max(mostConnections, small.connections);
    }, 1);
    const started = Date.now();
    const answers = await load(12, 300, () => hit(client, 'ms=30'));
    clearInterval(sampler);
    const small = answers.filter((a) => a.pool === 'small');
    expect(small.length).toBeGreaterThan(30);
    expect(Math.max(...small.map((a) => a.running))).toBe(2);
    expect(mostInFlight).toBe(2);
    expect(mostConnections).toBeLessThanOrEqual(2);
    // A third connection would wait in php-fpm's accept queue behind the two kept ones for as long as they stay
    // busy: the run would stall instead of finishing at the pools' pace (300 × 30 ms over 10 workers ≈ 1 s).
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('sends a slow pool few requests with least-in-flight', { timeout: 30_000 }, async (context) => {
    const pools = await startPools(context, { a: 4, slow: 4, c: 4 });
    const client = testClient({
      upstreams: upstreamsOf(pools, { a: {}, slow: {}, c: {} }),
      balance: 'least-in-flight',
    });
    const answers = await load(6, 600, () => hit(client, 'ms=5&slow=slow&slow_ms=150'));
    const counts = shares(answers);
    expect(counts.slow ?? 0).toBeLessThan(600 * 0.1);
    expect(counts.a).toBeGreaterThan(600 * 0.4);
    expect(counts.c).toBeGreaterThan(600 * 0.4);
  });

  it(
    "passes the health probe on php-fpm's ping.path (pong), and fails it on a path php-fpm does not know",
    { timeout: 30_000 },
    async (context) => {
      const pools = await startPools(context, { a: 2, b: 2 });
      const good = testClient({
        upstreams: upstreamsOf(pools, { a: {}, b: {} }),
        healthCheck: { path: '/ping', body: 'pong', interval: 30 },
      });
      const bad = testClient({
        upstreams: upstreamsOf(pools, { a: {}, b: {} }),
        healthCheck: { path: '/nothing-here', body: 'pong', interval: 30 },
      });
      await waitFor(() => bad.stats.upstreams!.every((u) => !u.healthy), 5000, 'the unknown path failing the probe');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(good.stats.upstreams!.every((u) => u.healthy)).toBe(true);
      expect((await hit(good, '')).pool).toMatch(/^[ab]$/);
    },
  );

  it(
    'loses only what may not be retried when a pool is killed with -9, ejects it, and readmits it once restarted',
    { timeout: 30_000 },
    async (context) => {
      const pools = await startPools(context, { a: 4, b: 4, c: 4 });
      const victim = pools.byName.get('a')!;
      const client = testClient({
        upstreams: upstreamsOf(pools, { a: { maxConcurrent: 4 }, b: { maxConcurrent: 4 }, c: { maxConcurrent: 4 } }),
        ejectFor: 300,
        healthCheck: { path: '/ping', body: 'pong', interval: 50, timeout: 1000 },
      });
      let stop = false;
      let ok = 0;
      let sent = 0;
      const failures: { method: string; code: string }[] = [];
      const workers = Array.from({ length: 9 }, async () => {
        while (!stop) {
          // Every fourth request a POST: not idempotent, so never sent twice.
          const method = sent++ % 4 === 3 ? 'POST' : 'GET';
          try {
            await hit(client, 'ms=10', method === 'POST' ? { method, body: 'form=1' } : { method });
            ok++;
          } catch (error) {
            failures.push({ method, code: (error as { code: string }).code });
          }
        }
      });
      await waitFor(() => ok >= 200 && statsOf(client, pools, 'a').served > 30, 10_000, 'load on every pool');
      const inFlightOnVictim = statsOf(client, pools, 'a').inFlight;
      await victim.kill();
      await waitFor(() => statsOf(client, pools, 'a').ejected, 5000, 'the killed pool ejected');
      await waitFor(() => !statsOf(client, pools, 'a').healthy, 5000, 'the killed pool failing its probe');
      const okWhileDown = ok;
      await waitFor(() => ok >= okWhileDown + 200, 10_000, 'load carried by the others');
      await victim.start();
      const servedBefore = statsOf(client, pools, 'a').served;
      await waitFor(
        () => statsOf(client, pools, 'a').served >= servedBefore + 30,
        10_000,
        'the restarted pool serving again',
      );
      stop = true;
      await Promise.all(workers);
      const victimStats = statsOf(client, pools, 'a');
      expect(victimStats.ejections).toBeGreaterThanOrEqual(1);
      // Every pool passes its ping at the end, the busy ones included: the probe waits for one of their
      // connections instead of queueing in php-fpm behind the kept ones that hold every worker.
      expect(client.stats.upstreams!.map((u) => u.healthy)).toEqual([true, true, true]);
      // GETs lost with the pool went to another pool; only POSTs in flight on it could fail.
      expect(failures.filter((f) => f.method === 'GET')).toEqual([]);
      expect(failures.length).toBeLessThanOrEqual(inFlightOnVictim);
      for (const failure of failures) expect(failure.code).toBe('FCGI_ERR_BACKEND_CLOSED');
    },
  );
});
