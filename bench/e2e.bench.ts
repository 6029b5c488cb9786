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
// FASTCGI_NO_NATIVE=1), `fastcgi-engine serve` with a fetch handler, the fastcgi-engine/node-fastcgi drop-in,
// node-fastcgi itself, Go's net/http/fcgi and libfcgi (C), the last two built here from bench/apps. Then HAProxy
// (one thread) with an fcgi-app (get-values, mpxs-conns, http-reuse always) in front of the engine, next to
// HAProxy → node:http, backends on TCP so that the connections HAProxy holds to them can be counted.
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
// Needs nginx, wrk and GNU time (apt-get install nginx-light wrk time); HAProxy, Go, gcc + libfcgi-dev +
// libssl-dev and node-fastcgi for their rows (a missing one skips its rows, with the reason).
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { benchFlags, numberFlag } from './_util/args';
import { startHaproxy } from './_util/haproxy';
import { startNginxRoutes } from './_util/nginx';
import { treeCpuSeconds } from './_util/proc-cpu';
import { cleanUpOnExit, findBinary, killAll, stop } from './_util/processes';
import { environment, environmentLine, relaunchCompiled, sourceRoot, type Environment } from './_util/report';
import { barChartSvg } from './_util/svg-bars';
import { sampleConnections } from './_util/tcp-connections';
import { runWrk } from './_util/wrk';
import { PEERS, serverAddress, socketFor, type Backend, type Peer, type PeerContext, type Section } from './e2e/peers';
import { markdownTable, summarize, type RowKey, type Sample, type Summary } from './e2e/results';
import { WORKLOADS, checkAnswer, wrkScript, type Workload } from './e2e/workloads';

const USAGE = `Usage: npm run bench:e2e -- [options]
  --seconds S        length of each measured run, whole seconds (default 4)
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
    process.stderr.write(
      `--${name}: unknown ${unknown.join(', ') || '(empty)'}; one or more of ${all.map((item) => item.id).join(', ')}\n`,
    );
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
    seconds: Math.max(1, Math.round(numberFlag(flags.seconds, 4, 'seconds'))),
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

interface Row {
  readonly peer: Peer;
  readonly backend: Backend;
  /** Base URL through the front end, ending in '/': the workload's route is appended. */
  readonly url: string;
  readonly web: { pid: number };
  /** The backend's TCP port, when the connections to it are counted. */
  readonly countPort: number | null;
  /** Workloads this row answered wrongly in the check, with what was wrong. */
  readonly broken: Map<string, string>;
}

async function measure(
  row: Row,
  workload: Workload,
  seconds: number,
  setup: Setup,
  tools: { wrk: string; time: string },
  dir: string,
): Promise<Sample> {
  const backendPid = row.backend.child.pid!;
  const web0 = treeCpuSeconds(row.web.pid);
  const backend0 = treeCpuSeconds(backendPid);
  const sampler = row.countPort === null ? null : sampleConnections(row.countPort);
  const script = wrkScript(dir, workload);
  let report;
  let connections: number[] | null = null;
  try {
    report = await runWrk({
      ...tools,
      url: `${row.url}${workload.route}`,
      threads: 1,
      connections: setup.connections,
      seconds,
      dir,
      ...(script === undefined ? {} : { script }),
    });
  } finally {
    connections = sampler?.stop() ?? null;
  }
  const webSeconds = treeCpuSeconds(row.web.pid) - web0;
  const backendSeconds = treeCpuSeconds(backendPid) - backend0;
  return {
    reqPerSec: report.reqPerSec,
    p50Ms: report.p50Ms,
    p99Ms: report.p99Ms,
    requests: report.requests,
    errors: report.non2xx + report.socketErrors,
    wrkSeconds: report.cpuSeconds,
    webSeconds,
    backendSeconds,
    connections,
  };
}

interface Outcome {
  readonly environment: Environment;
  readonly versions: Record<string, string>;
  readonly skipped: { id: string; label: string; reason: string }[];
  readonly samples: { key: RowKey; workload: Workload['id']; samples: Sample[] }[];
}

async function runBench(
  setup: Setup,
  root: string,
  tools: { wrk: string; time: string; nginx: string; haproxy: string | null },
  dir: string,
): Promise<Omit<Outcome, 'environment'>> {
  const context: PeerContext = { dir, root, connections: setup.connections };
  const versions: Record<string, string> = {
    nginx: toolVersion(tools.nginx, ['-v'], /nginx\/(\S+)/),
    wrk: toolVersion(tools.wrk, ['-v'], /wrk (\S+)/),
  };
  if (tools.haproxy !== null) versions['haproxy'] = toolVersion(tools.haproxy, ['-v'], /version (\S+)/);
  const skipped: Outcome['skipped'] = [];
  const skip = (peer: Peer, reason: string): void => {
    skipped.push({ id: peer.id, label: peer.label, reason });
    process.stderr.write(`  skip · ${peer.label}: ${reason}\n`);
  };

  // Build and start the backends.
  const started: { peer: Peer; backend: Backend }[] = [];
  for (const peer of setup.peers) {
    if (peer.section === 'haproxy' && tools.haproxy === null) {
      skip(peer, 'no haproxy on PATH (apt-get install haproxy)');
      continue;
    }
    const prepared = await peer.prepare(context);
    if ('skip' in prepared) {
      skip(peer, prepared.skip);
      continue;
    }
    if (prepared.version !== null) versions[peer.id] = prepared.version;
    const backend = await peer.start(context, peer.section === 'nginx' ? socketFor(context, peer) : { port: 0 });
    if (backend.mismatch !== null) {
      await stop(backend.child);
      skip(peer, backend.mismatch);
      continue;
    }
    started.push({ peer, backend });
  }

  // The front ends: one nginx for all its rows (a location per row), one HAProxy (a port per row).
  const rows: Row[] = [];
  const behindNginx = started.filter((s) => s.peer.section === 'nginx');
  const webServers: { child: ChildProcess; signal: NodeJS.Signals }[] = [];
  if (behindNginx.length > 0) {
    const nginx = await startNginxRoutes(
      tools.nginx,
      dir,
      behindNginx.map(({ peer, backend }) => ({
        location: `/${peer.id}/`,
        protocol: peer.protocol,
        server: serverAddress(backend.listen, 'unix:'),
        keepalive: setup.connections,
      })),
      { root: dir, maxBodyBytes: 2 * 1024 * 1024, responseBufferBytes: 256 * 1024 },
    );
    webServers.push({ child: nginx.child, signal: 'SIGQUIT' });
    for (const { peer, backend } of behindNginx) {
      rows.push({
        peer,
        backend,
        url: `http://127.0.0.1:${nginx.port}/${peer.id}/`,
        web: { pid: nginx.child.pid! },
        countPort: null,
        broken: new Map(),
      });
    }
  }
  const behindHaproxy = started.filter((s) => s.peer.section === 'haproxy');
  if (behindHaproxy.length > 0 && tools.haproxy !== null) {
    const haproxy = await startHaproxy(
      tools.haproxy,
      dir,
      behindHaproxy.map(({ peer, backend }) => ({
        name: peer.id.replace(/[^A-Za-z0-9_]/g, '_'),
        protocol: peer.protocol,
        server: serverAddress(backend.listen, ''),
      })),
    );
    webServers.push({ child: haproxy.child, signal: 'SIGTERM' });
    behindHaproxy.forEach(({ peer, backend }, i) => {
      const port = 'port' in backend.listen ? backend.listen.port : null;
      rows.push({
        peer,
        backend,
        url: `http://127.0.0.1:${haproxy.ports[i]}/${peer.id}/`,
        web: { pid: haproxy.child.pid! },
        countPort: port,
        broken: new Map(),
      });
    });
  }

  // Every row must answer every workload right before it is measured.
  for (const row of rows) {
    for (const workload of setup.workloads) {
      const wrong = await checkAnswer(`${row.url}${workload.route}`, workload);
      if (wrong !== null) {
        row.broken.set(workload.id, wrong);
        skipped.push({
          id: row.peer.id,
          label: `${row.peer.label} · ${workload.id}`,
          reason: `wrong answer: ${wrong}`,
        });
        process.stderr.write(`  skip · ${row.peer.label} · ${workload.id}: wrong answer: ${wrong}\n`);
      }
    }
  }

  for (const { backend } of started) backend.stderr.quiet();
  const samples = new Map<string, Sample[]>();
  const keyOf = (row: Row, workload: Workload): string => `${row.peer.id}\u0000${workload.id}`;
  const tools2 = { wrk: tools.wrk, time: tools.time };
  if (setup.warmupSeconds > 0) {
    for (const workload of setup.workloads) {
      for (const row of rows) {
        if (row.broken.has(workload.id)) continue;
        const sample = await measure(row, workload, setup.warmupSeconds, setup, tools2, dir);
        process.stderr.write(
          `  warmup · ${workload.id} · ${row.peer.label}: ${Math.round(sample.reqPerSec)} req/s (not recorded)\n`,
        );
      }
    }
  }
  for (let round = 0; round < setup.rounds; round++) {
    for (const workload of setup.workloads) {
      for (const row of round % 2 === 0 ? rows : [...rows].reverse()) {
        if (row.broken.has(workload.id)) continue;
        const sample = await measure(row, workload, setup.seconds, setup, tools2, dir);
        const key = keyOf(row, workload);
        samples.set(key, [...(samples.get(key) ?? []), sample]);
        process.stderr.write(
          `  round ${round + 1}/${setup.rounds} · ${workload.id} · ${row.peer.label}: ${Math.round(sample.reqPerSec)} req/s, ${sample.errors} errors\n`,
        );
      }
    }
  }

  for (const { child, signal } of webServers) await stop(child, signal);
  for (const { backend } of started) await stop(backend.child);
  for (const { backend } of started) {
    const summary = backend.stderr.summary();
    if (summary !== null) process.stderr.write(`  ${summary}\n`);
  }

  return {
    versions,
    skipped,
    samples: rows.flatMap((row) =>
      setup.workloads.map((workload) => ({
        key: { id: row.peer.id, label: row.peer.label, section: row.peer.section, reference: row.peer.reference },
        workload: workload.id,
        samples: samples.get(keyOf(row, workload)) ?? [],
      })),
    ),
  };
}

const SECTIONS: Record<Section, string> = {
  nginx: 'nginx (1 worker) → backend on a unix socket, kept connections on both sides',
  haproxy:
    'HAProxy (1 thread) → backend on 127.0.0.1 TCP, http-reuse always; the engine behind an fcgi-app with get-values and mpxs-conns',
};

function versionsLine(versions: Record<string, string>): string {
  return `Peers: ${Object.entries(versions)
    .map(([name, version]) => (version.startsWith(name) || /\s/.test(version) ? version : `${name} ${version}`))
    .join(' · ')}`;
}

function markdown(setup: Setup, outcome: Outcome, summaries: readonly Summary[]): string {
  const env = outcome.environment;
  const out = [
    environmentLine(env),
    versionsLine(outcome.versions),
    `Command: \`${env.command}\` · wrk -t1 -c${setup.connections}, ${setup.seconds} s per run, ${setup.rounds} round(s), rows alternate order each round, ` +
      `${setup.warmupSeconds > 0 ? `${setup.warmupSeconds} s unrecorded warmup per row and workload` : 'no warmup'}`,
    'req/s: median of the rounds (min–max); p50/p99: wrk --latency, median of the rounds; errors: non-2xx + socket errors, all rounds; ' +
      'CPU per request: user+system time over all rounds / requests (wrk from GNU time; web server and backend from /proc, whole process trees).',
  ];
  if (outcome.skipped.length > 0) {
    out.push('', 'Skipped:');
    for (const s of outcome.skipped) out.push(`- ${s.label} (${s.id}): ${s.reason}`);
  }
  for (const section of ['nginx', 'haproxy'] as const) {
    const inSection = summaries.filter((s) => s.section === section);
    if (inSection.length === 0) continue;
    out.push('', `## ${SECTIONS[section]}`);
    for (const workload of setup.workloads) {
      const rows = inSection.filter((s) => s.workload === workload.id);
      if (rows.length === 0) continue;
      out.push('', `### ${workload.title}`, '', markdownTable(section, rows));
    }
  }
  return `${out.join('\n')}\n`;
}

function writeSvg(setup: Setup, outcome: Outcome, summaries: readonly Summary[]): void {
  const env = outcome.environment;
  const svg = barChartSvg({
    title: 'Backend CPU per request (µs, lower is better)',
    notes: [
      `${env.cpu} × ${env.cores} cores · Node ${env.node} · commit ${env.commit}${env.dirty ? ' (uncommitted changes)' : ''} · ${env.date.slice(0, 10)}`,
      `${env.command} · wrk -t1 -c${setup.connections}, ${setup.seconds} s × ${setup.rounds} round(s)`,
    ],
    unit: 'µs',
    series: ['behind nginx', 'behind HAProxy'],
    panels: setup.workloads.map((workload) => ({
      title: workload.title,
      bars: summaries
        .filter((s) => s.workload === workload.id)
        .map((s) => ({ label: s.label, value: s.backendUs, series: s.section === 'nginx' ? 0 : 1 })),
    })),
  });
  mkdirSync(dirname(setup.svg), { recursive: true });
  writeFileSync(setup.svg, svg);
}

async function main(): Promise<void> {
  if (relaunchCompiled(__filename)) return;
  const root = sourceRoot(__filename);
  const setup = readSetup(root);
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
  const outcome: Outcome = {
    ...result,
    environment: environment(
      commandLine(),
      { time: setup.seconds * 1000, warmupTime: setup.warmupSeconds * 1000, rounds: setup.rounds, targetSampleUs: 0 },
      __filename,
    ),
  };
  const summaries = summarize(outcome.samples);
  writeSvg(setup, outcome, summaries);
  if (setup.json) {
    const { peers, workloads, ...knobs } = setup;
    const json = {
      environment: outcome.environment,
      versions: outcome.versions,
      setup: { ...knobs, rows: peers.map((p) => p.id), workloads: workloads.map((w) => w.id) },
      skipped: outcome.skipped,
      summaries,
      samples: outcome.samples,
    };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    return;
  }
  process.stdout.write(markdown(setup, outcome, summaries));
  process.stderr.write(`chart: ${setup.svg}\n`);
}

main().catch((error: unknown) => {
  killAll();
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
