// How much of an open-loop latency figure is the generator: `fastcgi-engine bench --rate R` against the engine's
// hello world (`fastcgi-engine serve bench/apps/hello.mjs`, one process, unix socket), next to
//   - the closed loop with one connection (what the server takes per request, the reference),
//   - the same open loop timed by setTimeout (the generator without the addon, as it was before the timerfd),
//   - `--calibrate`'s floor (the same load against a null responder in the generator's process),
//   - the machine's own floor, no Node in it (bench/apps/wakeup.c, built here with cc): how late a thread
//     sleeping on a timerfd wakes at the same rate, and a one-byte round trip to an echo process sent at that
//     rate (two wake-ups from idle) next to the same round trip back to back. No sender can be steadier than
//     the first, nor an open-loop median nearer the closed loop's than the second allows.
// Rates: fixed ones and half of what the closed loop sustains with 8 connections.
//
//   npm run bench:open-loop                 markdown table
//   npm run -s bench:open-loop -- --json    JSON
//
// Knobs (env): BENCH_DURATION_MS (5000 per run), BENCH_RATES (e.g. "200,1000,3000"; "half" is added). Each run
// is preceded by an unrecorded 1 s one (JIT). About 1.5 min. Run it on an otherwise idle machine: the figures
// are sub-millisecond and anything else on the cores shows in them.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchReport } from '../src/cli/bench';
import { startEngineServe, engineCli } from './_util/engine-cli';
import { cleanUpOnExit, findBinary, killAll, stop, track } from './_util/processes';
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

/** One run of bench/apps/wakeup.c: percentiles in ms. */
interface Wakeup {
  mode: 'timer' | 'pingpong';
  rate: number;
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

// Builds bench/apps/wakeup.c; a string says why it could not.
function buildWakeup(dir: string): string | { binary: string } {
  const cc = findBinary(['cc', 'gcc']);
  if (cc === null) return 'no C compiler (apt-get install gcc)';
  const binary = join(dir, 'wakeup');
  try {
    execFileSync(cc, ['-O2', '-o', binary, join(ROOT, 'bench/apps/wakeup.c')], { stdio: 'pipe', timeout: 60_000 });
  } catch (error) {
    return `cc failed: ${String((error as { stderr?: Buffer }).stderr ?? error)
      .trim()
      .split('\n')
      .slice(-2)
      .join(' / ')}`;
  }
  return { binary };
}

function wakeup(binary: string, mode: Wakeup['mode'], rate: number, count: number): Wakeup {
  const out = execFileSync(binary, [mode, String(rate), String(count)], { encoding: 'utf8', timeout: 120_000 });
  return JSON.parse(out) as Wakeup;
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
  const machine: Wakeup[] = [];
  let machineSkip: string | null = null;
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
    const built = buildWakeup(dir);
    if (typeof built === 'string') machineSkip = built;
    else {
      // As many samples as the open-loop run sent, within 1,000-20,000.
      const samples = (rate: number): number =>
        Math.min(20_000, Math.max(1000, Math.round((rate * DURATION_MS) / 1000)));
      machine.push(wakeup(built.binary, 'pingpong', 0, 20_000));
      for (const rate of [...RATES, halfRate]) {
        machine.push(wakeup(built.binary, 'timer', rate, samples(rate)));
        machine.push(wakeup(built.binary, 'pingpong', rate, samples(rate)));
      }
    }
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
    process.stdout.write(`${JSON.stringify({ environment: env, halfRate, rows, machine, machineSkip }, null, 2)}\n`);
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
      ...machineTable(machine, machineSkip, f),
    ].join('\n'),
  );
}

function machineTable(machine: Wakeup[], skip: string | null, f: (v: number) => string): string[] {
  if (skip !== null) return [`Machine floor (bench/apps/wakeup.c): skipped, ${skip}.`, ''];
  const closed = machine.find((m) => m.mode === 'pingpong' && m.rate === 0);
  const lines = [
    `Machine floor, no Node (bench/apps/wakeup.c): a timerfd sleeper's lateness at each rate, and a one-byte round trip to an echo process sent at that rate (back to back: p50 ${closed ? f(closed.p50) : '-'}, p99 ${closed ? f(closed.p99) : '-'} ms) · ms`,
    '',
    '| rate | timerfd lateness p50 / p99 / p99.9 / max | round trip at the rate p50 / p99 |',
    '|---|---|---|',
  ];
  for (const timer of machine.filter((m) => m.mode === 'timer')) {
    const trip = machine.find((m) => m.mode === 'pingpong' && m.rate === timer.rate);
    lines.push(
      `| ${timer.rate}/s | ${f(timer.p50)} / ${f(timer.p99)} / ${f(timer.p999)} / ${f(timer.max)} | ${trip ? `${f(trip.p50)} / ${f(trip.p99)}` : '-'} |`,
    );
  }
  lines.push('');
  return lines;
}

main().catch((error: unknown) => {
  killAll();
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
