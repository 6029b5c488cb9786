// The load generator measured (`fastcgi-engine bench`), against the engine's hello world served by
// `fastcgi-engine serve bench/apps/hello.mjs` on a unix socket:
//
//   1. Its own cost: CPU per request of the generator next to the server it drives. A generator that needs more
//      CPU than the server measures itself, not the server; on a 2-core machine both share the cores.
//   2. Its numbers next to wrk's (the usual HTTP tool) through nginx in front of the same server: wrk → nginx
//      (one worker, fastcgi_keep_conn + upstream keepalive) → engine. That path adds an HTTP hop and nginx's
//      work, so it should come out slower than the direct one; a generator reporting far less than wrk through
//      nginx would be the bottleneck.
//
//   npm run bench:cli                 markdown table
//   npm run -s bench:cli -- --json    JSON
//
// Method. One server process for the whole run. Rows take turns A,B then B,A (BENCH_ROUNDS), after one
// unrecorded run each (JIT warmup of the server and nginx). Each run lasts BENCH_DURATION_MS with
// BENCH_CONNECTIONS connections, one request in flight each, kept open (wrk: one thread). CPU: the
// generator's user+system time from /usr/bin/time (whole run, connection setup included); the server's and
// nginx's from /proc over the same span. Latency: the generator's own p50/p99 (HDR histogram for ours; wrk's
// --latency percentiles).
//
// Knobs (env): BENCH_CONNECTIONS (16), BENCH_DURATION_MS (5000), BENCH_ROUNDS (2), BENCH_TSX=1 (not for
// numbers). Needs nginx (apt-get install nginx-light) and wrk (apt-get install wrk). About 1 min.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchReport } from '../src/cli/bench';
import { treeCpuSeconds } from './_util/proc-cpu';
import { startNginx } from './_util/nginx';
import { engineCli, startEngineServe } from './_util/engine-cli';
import { cleanUpOnExit, findBinary, killAll, stop } from './_util/processes';
import { environment, environmentLine, envNumber, relaunchCompiled, sourceRoot } from './_util/report';
import { runWrk, timed } from './_util/wrk';

const SETUP = {
  connections: Math.max(1, Math.floor(envNumber('BENCH_CONNECTIONS', 16))),
  durationMs: Math.max(500, envNumber('BENCH_DURATION_MS', 5000)),
  rounds: Math.max(1, Math.floor(envNumber('BENCH_ROUNDS', 2))),
};
const KNOBS = ['BENCH_CONNECTIONS', 'BENCH_DURATION_MS', 'BENCH_ROUNDS', 'BENCH_TSX'];

// The source tree: apps/hello.mjs is not compiled, and the CLI runs from wherever this file runs.
const ROOT = sourceRoot(__filename);
const HELLO = join(ROOT, 'bench/apps/hello.mjs');

interface Sample {
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
  /** CPU µs per request. */
  generatorUs: number;
  serverUs: number;
  nginxUs: number | null;
}

interface Row {
  readonly label: string;
  readonly samples: Sample[];
}

async function ourBench(time: string, socket: string, server: ChildProcess, dir: string): Promise<Sample> {
  const server0 = treeCpuSeconds(server.pid!);
  const { stdout, cpuSeconds } = await timed(
    time,
    [
      process.execPath,
      ...engineCli(__filename),
      'bench',
      socket,
      '--connections',
      String(SETUP.connections),
      '--duration',
      `${SETUP.durationMs}ms`,
      '--json',
    ],
    dir,
  );
  const serverSeconds = treeCpuSeconds(server.pid!) - server0;
  const report = JSON.parse(stdout) as BenchReport;
  if (report.completed === 0)
    throw new Error(`fastcgi-engine bench completed no request: ${JSON.stringify(report.errorCodes)}`);
  return {
    reqPerSec: report.requestsPerSecond,
    p50Ms: report.latencyMs.p50,
    p99Ms: report.latencyMs.p99,
    requests: report.total,
    errors: report.errors,
    generatorUs: (cpuSeconds * 1e6) / report.total,
    serverUs: (serverSeconds * 1e6) / report.total,
    nginxUs: null,
  };
}

async function wrkThroughNginx(
  time: string,
  wrk: string,
  port: number,
  server: ChildProcess,
  nginx: ChildProcess,
  dir: string,
): Promise<Sample> {
  const server0 = treeCpuSeconds(server.pid!);
  const nginx0 = treeCpuSeconds(nginx.pid!);
  const seconds = Math.max(1, Math.round(SETUP.durationMs / 1000));
  const report = await runWrk({
    wrk,
    time,
    url: `http://127.0.0.1:${port}/hello.fcgi`,
    threads: 1,
    connections: SETUP.connections,
    seconds,
    dir,
  });
  const serverSeconds = treeCpuSeconds(server.pid!) - server0;
  const nginxSeconds = treeCpuSeconds(nginx.pid!) - nginx0;
  return {
    reqPerSec: report.reqPerSec,
    p50Ms: report.p50Ms,
    p99Ms: report.p99Ms,
    requests: report.requests,
    errors: report.non2xx + report.socketErrors,
    generatorUs: (report.cpuSeconds * 1e6) / report.requests,
    serverUs: (serverSeconds * 1e6) / report.requests,
    nginxUs: (nginxSeconds * 1e6) / report.requests,
  };
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function summarize(row: Row): Record<string, number | string | null> {
  const s = row.samples;
  const nginx = s.map((x) => x.nginxUs).filter((x): x is number => x !== null);
  return {
    label: row.label,
    reqPerSec: mean(s.map((x) => x.reqPerSec)),
    reqPerSecMin: Math.min(...s.map((x) => x.reqPerSec)),
    reqPerSecMax: Math.max(...s.map((x) => x.reqPerSec)),
    p50Ms: mean(s.map((x) => x.p50Ms)),
    p99Ms: mean(s.map((x) => x.p99Ms)),
    errors: s.reduce((a, x) => a + x.errors, 0),
    generatorUsPerRequest: mean(s.map((x) => x.generatorUs)),
    serverUsPerRequest: mean(s.map((x) => x.serverUs)),
    nginxUsPerRequest: nginx.length === 0 ? null : mean(nginx),
  };
}

function markdown(rows: Record<string, number | string | null>[]): string {
  const num = (v: number | string | null | undefined, digits = 0): string =>
    typeof v === 'number'
      ? v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
      : 'n/a';
  const head = [
    'Row',
    'req/s',
    'min–max',
    'p50',
    'p99',
    'Errors',
    'generator CPU/req',
    'server CPU/req',
    'nginx CPU/req',
    'generator/server',
  ];
  const lines = rows.map((r) => [
    String(r.label),
    num(r.reqPerSec),
    `${num(r.reqPerSecMin)}–${num(r.reqPerSecMax)}`,
    `${num(r.p50Ms, 3)} ms`,
    `${num(r.p99Ms, 3)} ms`,
    num(r.errors),
    `${num(r.generatorUsPerRequest, 1)} µs`,
    `${num(r.serverUsPerRequest, 1)} µs`,
    r.nginxUsPerRequest === null ? '-' : `${num(r.nginxUsPerRequest, 1)} µs`,
    `${num((r.generatorUsPerRequest as number) / (r.serverUsPerRequest as number), 2)}×`,
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...lines.map((l) => l[c]!.length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, c) => (c === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(head), rule, ...lines.map(line)].join('\n');
}

async function main(): Promise<void> {
  if (relaunchCompiled(__filename)) return;
  const json = process.argv.includes('--json');
  const nginxBinary = findBinary(['nginx']);
  const wrk = findBinary(['wrk']);
  const time = findBinary(['time']);
  if (nginxBinary === null || wrk === null || time === null) {
    process.stderr.write(
      'bench:cli needs nginx (apt-get install nginx-light), wrk (apt-get install wrk) and GNU time (apt-get install time)\n',
    );
    process.exitCode = 1;
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-cli-bench-'));
  cleanUpOnExit(dir);
  const ours: Row = { label: `fastcgi-engine bench → engine (${SETUP.connections} kept connections)`, samples: [] };
  const theirs: Row = { label: `wrk -t1 → nginx → engine (${SETUP.connections} connections)`, samples: [] };
  try {
    const socket = join(dir, 'app.sock');
    const server = await startEngineServe(__filename, HELLO, socket);
    const nginx = await startNginx(nginxBinary, dir, {
      socket,
      keepalive: SETUP.connections,
      root: dir,
      location: '\\.fcgi$',
    });
    const rows = [
      { row: ours, run: () => ourBench(time, socket, server, dir) },
      { row: theirs, run: () => wrkThroughNginx(time, wrk, nginx.port, server, nginx.child, dir) },
    ];
    for (const { row, run } of rows) {
      const primer = await run();
      process.stderr.write(`  warmup · ${row.label}: ${Math.round(primer.reqPerSec)} req/s (not recorded)\n`);
    }
    for (let round = 0; round < SETUP.rounds; round++) {
      for (const { row, run } of round % 2 === 0 ? rows : [...rows].reverse()) {
        const sample = await run();
        row.samples.push(sample);
        process.stderr.write(
          `  round ${round + 1}/${SETUP.rounds} · ${row.label}: ${Math.round(sample.reqPerSec)} req/s\n`,
        );
      }
    }
    await stop(nginx.child, 'SIGQUIT');
    await stop(server);
  } finally {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  }
  const knobs = KNOBS.filter((k) => process.env[k] !== undefined && process.env[k] !== '').map(
    (k) => `${k}=${process.env[k]} `,
  );
  const env = environment(
    `${knobs.join('')}npm run bench:cli${json ? ' -- --json' : ''}`,
    { time: SETUP.durationMs, warmupTime: 0, rounds: SETUP.rounds, targetSampleUs: 0 },
    __filename,
  );
  const rows = [summarize(ours), summarize(theirs)];
  if (json) {
    process.stdout.write(`${JSON.stringify({ environment: env, setup: SETUP, rows }, null, 2)}\n`);
    return;
  }
  process.stdout.write(
    [
      environmentLine(env),
      `Command: \`${env.command}\` · ${SETUP.durationMs} ms per run · ${SETUP.rounds} round(s), rows alternating · req/s: mean of the runs (min–max); p50/p99: each generator's own, mean of the runs; CPU per request: user+system time / requests.`,
      '',
      markdown(rows),
      '',
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  killAll();
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
