// The end-to-end benchmark, the headline: wrk → a real web server → a FastCGI backend, with every peer in one
// table per workload. Starts its own nginx, HAProxy and backends in a temp dir and stops them all.
//
//   npm run bench:e2e                                   markdown tables, bench/results/e2e.svg
//   npm run -s bench:e2e -- --json                      JSON (-s keeps npm's banner off stdout)
//   npm run bench:e2e -- --only node-http,engine-native --workloads hello,64k --seconds 3
//
// Rows (bench/e2e/peers.ts), each behind the same nginx (one worker, `include fastcgi_params`, kept connections
// on both sides: HTTP keep-alive from wrk, upstream keepalive + fastcgi_keep_conn to the backend), backends on
// unix sockets: node:http via proxy_pass (the reference), fastcgi-engine createServer (native scanner and
// FASTCGI_NO_NATIVE=1), the fetch API with the same handler, in the same harness process (`serve()`) and through
// the `fastcgi-engine serve` command, the fastcgi-engine/node-fastcgi drop-in, a floor (the engine's record
// decoder answering with pre-encoded records and no API around it: bench/apps/floor-server.ts), node-fastcgi
// itself, Go's net/http/fcgi and libfcgi (C), the last two built here from bench/apps. Then HAProxy (one
// thread) with an fcgi-app (get-values, mpxs-conns, http-reuse always) in front of the engine, next to HAProxy →
// node:http, backends on TCP so that the connections HAProxy holds to them can be counted.
//
// Workloads (bench/e2e/workloads.ts): hello world (12 bytes), a 4 KB and a 64 KB response, a 1 MB POST answered
// with its sha256. Every backend's answers are checked once before it is measured.
//
// Method. wrk -t1 -cN for S seconds per run with --latency. One unrecorded warmup run per row and workload,
// then R rounds; each round runs every workload on every row, rows in table order in even rounds and in reverse
// in odd ones, so drift hits every row alike. Backends, nginx and HAProxy start once and stay up (JIT-warm).
// CPU: wrk's user+system time from GNU time; the web server's (all its processes) and the backend's (its
// process tree) from /proc over the same run. Per request: CPU over all rounds / requests over all rounds.
// req/s, p50 and p99: median over the rounds. Errors: non-2xx + socket errors, all rounds.
//
// Defaults: wrk -t1 -c32, 3 s runs, 2 rounds, 1 s warmup: 12 rows × 4 workloads × 7 s of load, about 6 to 7
// minutes with the builds (Go's takes ~15 s with an empty cache) and the startup.
//
// Needs nginx, wrk and GNU time (apt-get install nginx-light wrk time); HAProxy, Go, gcc + libfcgi-dev +
// libssl-dev and node-fastcgi for their rows (a missing one skips its rows, with the reason).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { benchFlags, numberFlag } from './_util/args';
import { cleanUpOnExit, findBinary, killAll } from './_util/processes';
import { environment, relaunchCompiled, sourceRoot } from './_util/report';
import { json, markdown, writeSvg, type Outcome, type RunShape } from './e2e/output';
import { PEERS, type Peer } from './e2e/peers';
import { summarize, type Sample } from './e2e/results';
import { measure, startFleet, stopFleet, type Fleet, type Tools } from './e2e/rows';
import { WORKLOADS, type Workload } from './e2e/workloads';

const USAGE = `Usage: npm run bench:e2e -- [options]
  --seconds S        length of each measured run, whole seconds (default 3)
  --rounds R         rounds; rows alternate order each round (default 2)
  --warmup S         unrecorded warmup run per row and workload, seconds; 0: none (default 1)
  --connections N    wrk's connections (-c; default 32), one thread (-t1)
  --only a,b         rows: ${PEERS.map((p) => p.id).join(', ')}
  --workloads a,b    workloads: ${WORKLOADS.map((w) => w.id).join(', ')}
  --svg FILE         bar chart of backend CPU per request (default bench/results/e2e.svg)
  --json             JSON on stdout instead of markdown`;

interface Setup {
  readonly seconds: number;
  readonly rounds: number;
  readonly warmupSeconds: number;
  readonly connections: number;
  readonly peers: readonly Peer[];
  readonly workloads: readonly Workload[];
  readonly svg: string;
  readonly json: boolean;
}

function listFlag<T extends { id: string }>(value: string | undefined, all: readonly T[], name: string): T[] {
  if (value === undefined) return [...all];
  const ids = value
    .split(',')
    .map((id) => id.trim())
    .filter((id) => id !== '');
  const unknown = ids.filter((id) => !all.some((item) => item.id === id));
  if (unknown.length > 0 || ids.length === 0) {
    const known = all.map((item) => item.id).join(', ');
    process.stderr.write(`--${name}: unknown ${unknown.join(', ') || '(empty)'}; one or more of ${known}\n`);
    process.exit(2);
  }
  return all.filter((item) => ids.includes(item.id));
}

function readSetup(root: string): Setup {
  const flags = benchFlags(
    process.argv.slice(2),
    USAGE,
    ['seconds', 'rounds', 'warmup', 'connections', 'only', 'workloads', 'svg'] as const,
    ['json'] as const,
  );
  return {
    seconds: Math.max(1, Math.round(numberFlag(flags.seconds, 3, 'seconds'))),
    rounds: Math.max(1, Math.floor(numberFlag(flags.rounds, 2, 'rounds'))),
    warmupSeconds: Math.max(0, Math.round(numberFlag(flags.warmup, 1, 'warmup'))),
    connections: Math.max(1, Math.floor(numberFlag(flags.connections, 32, 'connections'))),
    peers: listFlag(flags.only, PEERS, 'only'),
    workloads: listFlag(flags.workloads, WORKLOADS, 'workloads'),
    svg: resolve(flags.svg ?? join(root, 'bench', 'results', 'e2e.svg')),
    json: flags.json === true,
  };
}

/** The command as the user typed it (npm script or tsx). */
function commandLine(): string {
  const args = process.argv.slice(2).join(' ');
  if (process.env['npm_lifecycle_event'] === 'bench:e2e') return `npm run bench:e2e${args === '' ? '' : ` -- ${args}`}`;
  return `npx tsx bench/e2e.bench.ts${args === '' ? '' : ` ${args}`}`;
}

/** `nginx -v`, `haproxy -v`, `wrk -v`: the version in their output (nginx prints it on stderr, wrk exits 1). */
function toolVersion(binary: string, args: string[], pattern: RegExp): string {
  const { stdout, stderr } = spawnSync(binary, args, { encoding: 'utf8' });
  return pattern.exec(`${stdout ?? ''}${stderr ?? ''}`)?.[1] ?? 'unknown';
}

/** The warmup, then the rounds (rows in table order, then reversed, and so on); the samples per row and workload. */
async function runRounds(fleet: Fleet, setup: Setup, tools: Tools, dir: string): Promise<Map<string, Sample[]>> {
  const samples = new Map<string, Sample[]>();
  const label = (workload: Workload, peer: Peer): string => `${workload.id} · ${peer.label}`;
  if (setup.warmupSeconds > 0) {
    for (const workload of setup.workloads) {
      for (const row of fleet.rows) {
        if (row.broken.has(workload.id)) continue;
        const sample = await measure(row, workload, setup.warmupSeconds, setup.connections, tools, dir);
        process.stderr.write(
          `  warmup · ${label(workload, row.peer)}: ${Math.round(sample.reqPerSec)} req/s (not recorded)\n`,
        );
      }
    }
  }
  for (let round = 0; round < setup.rounds; round++) {
    for (const workload of setup.workloads) {
      for (const row of round % 2 === 0 ? fleet.rows : [...fleet.rows].reverse()) {
        if (row.broken.has(workload.id)) continue;
        const sample = await measure(row, workload, setup.seconds, setup.connections, tools, dir);
        const key = `${row.peer.id} ${workload.id}`;
        samples.set(key, [...(samples.get(key) ?? []), sample]);
        const rate = `${Math.round(sample.reqPerSec)} req/s, ${sample.errors} errors`;
        process.stderr.write(`  round ${round + 1}/${setup.rounds} · ${label(workload, row.peer)}: ${rate}\n`);
      }
    }
  }
  return samples;
}

async function runBench(setup: Setup, root: string, tools: Tools, dir: string): Promise<Omit<Outcome, 'environment'>> {
  const loadSeconds =
    setup.peers.length * setup.workloads.length * (setup.rounds * setup.seconds + setup.warmupSeconds);
  process.stderr.write(
    `bench:e2e: ${setup.peers.length} row(s) × ${setup.workloads.length} workload(s): ` +
      `about ${Math.ceil(loadSeconds / 60)} min of load, plus builds and startup\n`,
  );
  const versions: Record<string, string> = {
    nginx: toolVersion(tools.nginx, ['-v'], /nginx\/(\S+)/),
    wrk: toolVersion(tools.wrk, ['-v'], /wrk (\S+)/),
  };
  if (tools.haproxy !== null) versions['haproxy'] = toolVersion(tools.haproxy, ['-v'], /version (\S+)/);
  const context = { dir, root, connections: setup.connections };
  const fleet = await startFleet(setup.peers, setup.workloads, context, tools, versions);
  const samples = await runRounds(fleet, setup, tools, dir);
  await stopFleet(fleet);
  const rows = fleet.rows.flatMap((row) =>
    setup.workloads.map((workload) => ({
      key: { id: row.peer.id, label: row.peer.label, section: row.peer.section, reference: row.peer.reference },
      workload: workload.id,
      samples: samples.get(`${row.peer.id} ${workload.id}`) ?? [],
    })),
  );
  return { versions, skipped: fleet.skipped, samples: rows, summaries: summarize(rows) };
}

async function main(): Promise<void> {
  const root = sourceRoot(__filename);
  // Flags first, so that --help and a bad flag answer before the compile step (the compiled twin reads them again).
  const setup = readSetup(root);
  if (relaunchCompiled(__filename)) return;
  const nginx = findBinary(['nginx']);
  const wrk = findBinary(['wrk']);
  const time = findBinary(['time']);
  if (nginx === null || wrk === null || time === null) {
    process.stderr.write(
      'bench:e2e needs nginx (apt-get install nginx-light), wrk (apt-get install wrk) and GNU time (apt-get install time)\n',
    );
    process.exitCode = 1;
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-e2e-bench-'));
  cleanUpOnExit(dir);
  let result: Omit<Outcome, 'environment'>;
  try {
    result = await runBench(setup, root, { wrk, time, nginx, haproxy: findBinary(['haproxy']) }, dir);
  } finally {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  }
  const options = {
    time: setup.seconds * 1000,
    warmupTime: setup.warmupSeconds * 1000,
    rounds: setup.rounds,
    targetSampleUs: 0,
  };
  const outcome: Outcome = { ...result, environment: environment(commandLine(), options, __filename) };
  const shape: RunShape = {
    seconds: setup.seconds,
    rounds: setup.rounds,
    warmupSeconds: setup.warmupSeconds,
    connections: setup.connections,
    rows: setup.peers.map((peer) => peer.id),
    workloads: setup.workloads,
  };
  writeSvg(setup.svg, shape, outcome);
  if (setup.json) {
    process.stdout.write(json(shape, outcome));
    return;
  }
  process.stdout.write(markdown(shape, outcome));
  process.stderr.write(`chart: ${setup.svg}\n`);
}

main().catch((error: unknown) => {
  killAll();
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
