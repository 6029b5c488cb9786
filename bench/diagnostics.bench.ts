// What the diagnostics channels cost: the same server and requests with nobody subscribed, with one
// subscriber on request:finish (a metrics exporter's minimum), and with every channel and the handler's
// tracing channel subscribed (an APM agent). Server and load client share this process (the cost is the
// difference between rows, and both sides are identical across rows); modes take turns A,B,C then C,B,A.
//
//   npx tsx bench/diagnostics.bench.ts              markdown table
//   BENCH_DURATION_MS=2000 BENCH_ROUNDS=1 ...        shorter
//
// Knobs (env): BENCH_CONNECTIONS (default 16), BENCH_DURATION_MS per run (3000), BENCH_WARMUP_MS (1000),
// BENCH_ROUNDS (2).
import diagnosticsChannel from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoadDriver } from '../src/load/driver';
import { mergeLatencies, percentileMs } from '../src/load/latency';
import type { LoadSink, LoadTarget } from '../src/load/target';
import { createServer } from '../src/server/server';
import { channels, tracingChannels } from '../src/diagnostics/channels';
import { parseAddress } from '../src/wire/address';
import { nginxParams } from './_util/workloads';
import { envNumber, formatTime, table } from './_util/report';
import { benchLoad, type LoadResult } from './_util/load-run';

type Mode = 'none' | 'finish' | 'all';
const MODES: Mode[] = ['none', 'finish', 'all'];

const connections = envNumber('BENCH_CONNECTIONS', 16);
const durationMs = envNumber('BENCH_DURATION_MS', 3000);
const warmupMs = envNumber('BENCH_WARMUP_MS', 1000);
const rounds = envNumber('BENCH_ROUNDS', 2);

// Subscribers that do what a cheap exporter does: read a field or two.
let sink = 0;
const onMessage = (message: unknown): void => {
  sink += (message as { requestId?: number }).requestId ?? 1;
};
const onFinish = (message: unknown): void => {
  sink += (message as { duration: number; status: number }).duration + (message as { status: number }).status;
};
const tracing = { start: onMessage, end: onMessage, asyncStart: onMessage, asyncEnd: onMessage, error: onMessage };

function subscribe(mode: Mode): () => void {
  if (mode === 'none') return () => {};
  if (mode === 'finish') {
    diagnosticsChannel.subscribe('fastcgi:server:request:finish', onFinish);
    return () => diagnosticsChannel.unsubscribe('fastcgi:server:request:finish', onFinish);
  }
  const all = Object.values(channels);
  for (const channel of all) channel.subscribe(channel === channels.serverRequestFinish ? onFinish : onMessage);
  tracingChannels.serverHandler.subscribe(tracing);
  return () => {
    for (const channel of all) channel.unsubscribe(channel === channels.serverRequestFinish ? onFinish : onMessage);
    tracingChannels.serverHandler.unsubscribe(tracing);
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fastcgi-diag-bench-'));
  const path = join(dir, 'app.sock');
  const server = createServer({ logger: { warn() {}, error() {} } }, (_req, res) => {
    res.setHeader('Content-Type', 'text/plain');
    res.end('hello world\n');
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const results = new Map<Mode, LoadResult[]>(MODES.map((m) => [m, []]));
  const address = parseAddress(path);
  const target = (sink: LoadSink): LoadTarget =>
    new LoadDriver(
      {
        address,
        connections,
        perConnection: 1,
        keepConn: true,
        params: nginxParams(1),
        body: null,
        timeoutMs: 2000,
        sampleFirstReply: true,
      },
      sink,
    );
  try {
    for (let round = 0; round < rounds; round++) {
      for (const mode of round % 2 === 0 ? MODES : [...MODES].reverse()) {
        const unsubscribe = subscribe(mode);
        try {
          const result = await benchLoad(target, {
            concurrency: connections,
            warmupMs,
            durationMs,
            expectBody: 'hello world',
          });
          results.get(mode)!.push(result);
        } finally {
          unsubscribe();
        }
      }
    }
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const base = rate(results.get('none')!);
  const rows = MODES.map((mode) => {
    const runs = results.get(mode)!;
    const latencies = mergeLatencies(runs.map((r) => r.latency));
    const rps = rate(runs);
    return [
      mode === 'none'
        ? 'no subscribers'
        : mode === 'finish'
          ? 'request:finish subscribed'
          : 'every channel + handler tracing',
      rps.toFixed(0),
      `${(((rps - base) / base) * 100).toFixed(1)} %`,
      formatTime(percentileMs(latencies, 50) * 1e6),
      formatTime(percentileMs(latencies, 99) * 1e6),
      String(runs.reduce((n, r) => n + r.errors + r.timeouts, 0)),
    ];
  });
  console.log(table(['mode', 'req/s', 'vs none', 'p50', 'p99', 'errors'], rows, new Set([1, 2, 3, 4, 5])));
  if (sink === -1) console.log(sink); // keeps the subscribers' work observable
}

function rate(runs: LoadResult[]): number {
  return runs.reduce((n, r) => n + r.requests, 0) / (runs.reduce((n, r) => n + r.elapsedMs, 0) / 1000);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
