// How much of an open-loop latency figure is the generator: `fastcgi-engine bench --rate R` against the engine's
// hello world (`fastcgi-engine serve bench/apps/hello.mjs`, one process, unix socket), next to
//   - the closed loop with one connection (what the server takes per request, the reference),
//   - the same open loop timed by setTimeout (the generator without the addon, as it was before the timerfd),
//   - `--calibrate`'s floor (the same load against a null responder in the generator's process).
// Rates: fixed ones and half of what the closed loop sustains with 8 connections.
//
//   npm run bench:open-loop                 markdown table
//   npm run -s bench:open-loop -- --json    JSON
//
// Knobs (env): BENCH_DURATION_MS (5000 per run), BENCH_RATES (e.g. "200,1000,3000"; "half" is added). Each run
// is preceded by an unrecorded 1 s one (JIT). About 1.5 min. Run it on an otherwise idle machine: the figures
// are sub-millisecond and anything else on the cores shows in them.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchReport } from '../src/cli/bench';
import { startEngineServe, engineCli } from './_util/engine-cli';
import { cleanUpOnExit, killAll, stop, track } from './_util/processes';
import { environment, environmentLine, envNumber, sourceRoot } from './_util/report';

const DURATION_MS = Math.max(1000, envNumber('BENCH_DURATION_MS', 5000));
const RATES = (process.env.BENCH_RATES ?? '200,1000,3000')
  .split(',')
  .map(Number)
  .filter((r) => r > 0);
const ROOT = sourceRoot(__filename);
const HELLO = join(ROOT, 'bench/apps/hello.mjs');

async function bench(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<BenchReport> {
  const child = track(
    spawn(process.execPath, [...engineCli(__filename), 'bench', ...args, '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    }),
  );
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`bench ${args.join(' ')} exited with ${code}: ${stderr.slice(-1500)}`);
  return JSON.parse(stdout) as BenchReport;
}

interface Row {
  label: string;
  rate: number | null;
  scheduler: string;
  p50: number;
  p99: number;
  p999: number;
  lagP50: number | null;
  lagP99: number | null;
  floorP50: number | null;
  floorP99: number | null;
}

function row(label: string, r: BenchReport): Row {
  return {
    label,
    rate: r.rate,
    scheduler: r.scheduler ?? '-',
    p50: r.latencyMs.p50,
    p99: r.latencyMs.p99,
    p999: r.latencyMs.p999,
    lagP50: r.senderLagMs?.p50 ?? null,
    lagP99: r.senderLagMs?.p99 ?? null,
    floorP50: r.floorMs?.p50 ?? null,
    floorP99: r.floorMs?.p99 ?? null,
  };
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-open-loop-'));
  cleanUpOnExit(dir);
  const rows: Row[] = [];
  let halfRate = 0;
  try {
    const socket = join(dir, 'app.sock');
    const server = await startEngineServe(__filename, HELLO, socket);
    const duration = `${DURATION_MS}ms`;
    await bench([socket, '-c', '8', '-d', '1s']); // warm-up
    const capacity = await bench([socket, '-c', '8', '-d', duration]);
    halfRate = Math.round(capacity.requestsPerSecond / 2);
    rows.push(
      row('closed loop, 1 connection (reference)', await bench([socket, '-c', '1', '-d', duration, '--calibrate'])),
    );
    const noAddon = { ...process.env, FASTCGI_NO_NATIVE: '1' };
    for (const rate of [...RATES, halfRate]) {
      const args = [socket, '-c', '8', '--rate', String(rate), '-d', duration, '--calibrate'];
      await bench([socket, '-c', '8', '--rate', String(rate), '-d', '1s']);
      rows.push(row(`open loop ${rate}/s, setTimeout (before)`, await bench(args, noAddon)));
      rows.push(row(`open loop ${rate}/s, timerfd`, await bench(args)));
    }
    await stop(server);
  } finally {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  }
  const env = environment(
    `npm run bench:open-loop${json ? ' -- --json' : ''}`,
    { time: DURATION_MS, warmupTime: 1000, rounds: 1, targetSampleUs: 0 },
    __filename,
  );
  if (json) {
    process.stdout.write(`${JSON.stringify({ environment: env, halfRate, rows }, null, 2)}\n`);
    return;
  }
  const f = (v: number | null): string => (v === null ? '-' : v.toFixed(3));
  process.stdout.write(
    [
      environmentLine(env),
      `Command: \`${env.command}\` · ${DURATION_MS} ms per run, 8 connections in open loop · half the closed-loop capacity: ${halfRate}/s · ms`,
      '',
      '| run | p50 | p99 | p99.9 | sender lag p50 / p99 | floor p50 / p99 (--calibrate) |',
      '|---|---|---|---|---|---|',
      ...rows.map(
        (r) =>
          `| ${r.label} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.p999)} | ${f(r.lagP50)} / ${f(r.lagP99)} | ${f(r.floorP50)} / ${f(r.floorP99)} |`,
      ),
      '',
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  killAll();
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
