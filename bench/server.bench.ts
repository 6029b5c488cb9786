// Loopback server benchmark: node-fastcgi 2.0.0 (the incumbent, pure JS: the baseline row) against
// fastcgi-engine with the native scanner and with FASTCGI_NO_NATIVE=1, all running the same handlers, each in
// its own process, driven over a unix socket by the load generator's FastCGI driver (src/load/) in a closed
// loop. A node:http row, driven by the same loop over HTTP/1.1 keep-alive (./_util/http-target.ts), is a
// reference point only (another protocol, another client parser).
//
//   npm run bench:server                 markdown tables
//   npm run -s bench:server -- --json    JSON (-s keeps npm's banner off stdout)
//
// Method. Each request is what nginx sends with `fastcgi_keep_conn on`: BEGIN_REQUEST (responder, KEEP_CONN,
// request id 1), one PARAMS record with the 30 params of ./_util/workloads.ts (~1 KB), the empty PARAMS record
// and the empty STDIN record, pre-encoded once by the driver. C connections each keep one request in flight
// (closed loop).
// A run is a warmup then a measured window; the servers take turns in the order A,B,C,D then D,C,B,A (one
// round each way), so drift (thermal, boost clocks, noisy neighbours) hits every row alike. Every server
// process is started once per table and stays up (and JIT-warm) across its runs. The first reply of every
// run is checked against the handler's expected body. Latency is send to END_REQUEST, its HDR histograms
// pooled over runs (src/load/latency.ts).
// Server CPU is the server process's user+system time over the measured window (100 % = one core); client CPU
// the same for this process: on a 2-core machine a row whose client or server sits near 100 % is bound by it.
//
// Knobs (env): BENCH_CONNECTIONS (default 16), BENCH_DURATION_MS per run (3000), BENCH_WARMUP_MS per run
// (1000), BENCH_ROUNDS (2: A→D then D→A), BENCH_TIMEOUT_MS per request (2000), BENCH_TRANSPORT unix | tcp |
// both (unix; tcp is 127.0.0.1), BENCH_HTTP=0 drops the node:http row, BENCH_TSX=1 runs everything under tsx
// (see _util/report.ts; not for numbers). Total run time with the defaults: about 75 s.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { LoadDriver } from '../src/load/driver';
import { mergeLatencies } from '../src/load/latency';
import type { LoadSink, LoadTarget } from '../src/load/target';
import { parseAddress, type ConnectTarget } from '../src/wire/address';
import { HttpTarget } from './_util/http-target';
import { benchLoad, type LoadResult } from './_util/load-run';
import { nginxParams } from './_util/workloads';
import { environment, envNumber, formatTime, isCompiled, relaunchCompiled, table } from './_util/report';
import { paramsBody, type CpuMessage, type ReadyMessage, type ServerKind, type WorkloadName } from './apps/serve';

// --- what runs -------------------------------------------------------------------------------------------

type RowRole = 'baseline' | 'engine' | 'reference';

interface ServerSpec {
  /** Tag in JSON output. */
  readonly id: string;
  /** Row label. */
  readonly label: string;
  readonly kind: ServerKind;
  /** Environment overrides for the server process. */
  readonly env: Readonly<Record<string, string>>;
  readonly protocol: 'fastcgi' | 'http';
  readonly role: RowRole;
}

const NODE_FASTCGI: ServerSpec = {
  id: 'node-fastcgi',
  label: 'node-fastcgi',
  kind: 'node-fastcgi',
  env: {},
  protocol: 'fastcgi',
  role: 'baseline',
};
// An empty value counts as unset for the loader, whatever this process was started with.
const ENGINE_NATIVE: ServerSpec = {
  id: 'engine-native',
  label: 'fastcgi-engine, native scanner',
  kind: 'engine',
  env: { FASTCGI_NO_NATIVE: '', FASTCGI_REQUIRE_NATIVE: '' },
  protocol: 'fastcgi',
  role: 'engine',
};
const ENGINE_TS: ServerSpec = {
  id: 'engine-typescript',
  label: 'fastcgi-engine, TS scanner (FASTCGI_NO_NATIVE=1)',
  kind: 'engine',
  env: { FASTCGI_NO_NATIVE: '1', FASTCGI_REQUIRE_NATIVE: '' },
  protocol: 'fastcgi',
  role: 'engine',
};
const NODE_HTTP: ServerSpec = {
  id: 'node-http',
  label: 'node:http (reference: HTTP/1.1, other client)',
  kind: 'http',
  env: {},
  protocol: 'http',
  role: 'reference',
};

interface Workload {
  readonly name: WorkloadName;
  readonly title: string;
  readonly description: string;
  /** What the first reply of a run must contain, by protocol. */
  readonly expect: Record<ServerSpec['protocol'], string>;
}

const PARAMS = new Map(nginxParams(1));
const WORKLOADS: readonly Workload[] = [
  {
    name: 'hello',
    title: "hello world: `(req, res) => res.end('hello world')`",
    description:
      'The smallest handler: the cost of the server itself (framing, params, request/response objects, END_REQUEST).',
    expect: { fastcgi: 'hello world', http: 'hello world' },
  },
  {
    name: 'params',
    title: 'Read 3 params, 1 KB body',
    description:
      'The handler reads req.headers.host, req.url and req.method and answers a 1 KB body that starts with them (checked by the client).',
    expect: {
      fastcgi: paramsBody(PARAMS.get('REQUEST_METHOD')!, PARAMS.get('HTTP_HOST')!, PARAMS.get('REQUEST_URI')!),
      http: paramsBody('GET', 'x', '/'),
    },
  },
];

type Transport = 'unix' | 'tcp';

function httpRequest(keepConn: boolean): Buffer {
  return Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\n${keepConn ? '' : 'Connection: close\r\n'}\r\n`, 'latin1');
}

// --- knobs ------------------------------------------------------------------------------------------------

/**
 * auto: keep-conn for every row if every server passes the keep-conn check, else a new connection per request
 * for every row. on: keep-conn for the servers that pass, a new connection per request (labelled) for the
 * others. off: a new connection per request for every row.
 */
type KeepConnMode = 'auto' | 'on' | 'off';

interface Setup {
  readonly connections: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly rounds: number;
  readonly timeoutMs: number;
  readonly transports: readonly Transport[];
  readonly keepConn: KeepConnMode;
}

const KEEP_CONN_MODES: Readonly<Record<string, KeepConnMode>> = { '': 'auto', auto: 'auto', '1': 'on', '0': 'off' };

function readSetup(): Setup {
  const transport = process.env['BENCH_TRANSPORT'] ?? 'unix';
  const transports: Transport[] =
    transport === 'both'
      ? ['unix', 'tcp']
      : transport === 'tcp'
        ? ['tcp']
        : transport === 'unix' || transport === ''
          ? ['unix']
          : [];
  if (transports.length === 0) throw new Error(`BENCH_TRANSPORT must be unix, tcp or both, got ${transport}`);
  const keep = process.env['BENCH_KEEP_CONN'] ?? '';
  const keepConn: KeepConnMode | undefined = KEEP_CONN_MODES[keep];
  if (keepConn === undefined) throw new Error(`BENCH_KEEP_CONN must be auto, 1 or 0, got ${keep}`);
  return {
    connections: Math.max(1, Math.floor(envNumber('BENCH_CONNECTIONS', 16))),
    durationMs: Math.max(100, envNumber('BENCH_DURATION_MS', 3000)),
    warmupMs: envNumber('BENCH_WARMUP_MS', 1000),
    rounds: Math.max(1, Math.floor(envNumber('BENCH_ROUNDS', 2))),
    timeoutMs: Math.max(50, envNumber('BENCH_TIMEOUT_MS', 2000)),
    transports,
    keepConn,
  };
}

const KNOBS = [
  'BENCH_CONNECTIONS',
  'BENCH_DURATION_MS',
  'BENCH_WARMUP_MS',
  'BENCH_ROUNDS',
  'BENCH_TIMEOUT_MS',
  'BENCH_TRANSPORT',
  'BENCH_KEEP_CONN',
  'BENCH_HTTP',
  'BENCH_TSX',
];

// --- server processes -------------------------------------------------------------------------------------

/** Every server process alive, so that no exit path leaves one behind. */
const live = new Set<ChildProcess>();

interface Running {
  readonly spec: ServerSpec;
  readonly child: ChildProcess;
  readonly ready: ReadyMessage;
  readonly address: ConnectTarget;
  /** Whether its connections are reused across requests (see KeepConnMode). */
  keepConn: boolean;
  /** Asks the server for its CPU time; resolves with the reply. */
  cpu(): Promise<CpuMessage>;
}

function appPath(): { file: string; execArgv: string[] } {
  // Compiled: the twin of apps/serve.ts next to this file in the cache dir, run by plain node like this process.
  if (isCompiled(__filename)) return { file: join(__dirname, 'apps', 'serve.js'), execArgv: [] };
  return { file: join(__dirname, 'apps', 'serve.ts'), execArgv: ['--import', 'tsx'] };
}

function startServer(spec: ServerSpec, workload: WorkloadName, transport: Transport, dir: string): Promise<Running> {
  const { file, execArgv } = appPath();
  const where = transport === 'tcp' ? 'tcp' : join(dir, `${spec.id}-${workload}.sock`);
  // The server's stdout goes to our stderr: stdout carries the report.
  const child = fork(file, [spec.kind, workload, where], {
    env: { ...process.env, ...spec.env },
    execArgv,
    stdio: ['ignore', 2, 2, 'ipc'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  const cpuWaiters: ((message: CpuMessage) => void)[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${spec.label} did not start listening within 10 s`)), 10_000);
    const onExit = (code: number | null, signal: string | null): void => {
      clearTimeout(timer);
      reject(new Error(`${spec.label} exited before listening (code ${code}, signal ${signal})`));
    };
    child.once('exit', onExit);
    child.on('message', (message: ReadyMessage | CpuMessage) => {
      if (message.type === 'cpu') {
        cpuWaiters.shift()?.(message);
        return;
      }
      clearTimeout(timer);
      child.off('exit', onExit);
      const address = parseAddress(
        typeof message.address === 'number' ? { port: message.address } : { path: message.address },
      );
      resolve({
        spec,
        child,
        ready: message,
        address,
        keepConn: true,
        cpu: () =>
          new Promise<CpuMessage>((done) => {
            cpuWaiters.push(done);
            child.send({ type: 'cpu' });
          }),
      });
    });
  });
}

function stopServer(server: Running): Promise<void> {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 2000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function killAll(): void {
  for (const child of live) child.kill('SIGKILL');
}

// --- runs ---------------------------------------------------------------------------------------------------

interface RunRecord {
  readonly result: LoadResult;
  readonly serverCpuPercent: number;
}

async function runOne(
  server: Running,
  workload: Workload,
  setup: Setup,
  durationMs: number,
  warmupMs: number,
): Promise<RunRecord> {
  const { address, keepConn } = server;
  const protocol = server.spec.protocol;
  const { connections, timeoutMs } = setup;
  let cpuStart: Promise<CpuMessage> | null = null;
  let cpuEnd: Promise<CpuMessage> | null = null;
  // FastCGI: nginx's request, BEGIN_REQUEST (KEEP_CONN unless asked otherwise), 30 params, empty PARAMS, empty
  // STDIN, id 1. HTTP: a keep-alive GET (or Connection: close).
  const target = (sink: LoadSink): LoadTarget =>
    protocol === 'fastcgi'
      ? new LoadDriver(
          {
            address,
            connections,
            perConnection: 1,
            keepConn,
            params: nginxParams(1),
            body: null,
            timeoutMs,
            sampleFirstReply: true,
          },
          sink,
        )
      : new HttpTarget(
          { address, request: httpRequest(keepConn), connections, keepConn, timeoutMs, sampleFirstReply: true },
          sink,
        );
  const result = await benchLoad(target, {
    concurrency: connections,
    warmupMs,
    durationMs,
    expectBody: workload.expect[protocol],
    onMeasureStart: () => {
      cpuStart = server.cpu();
    },
    onMeasureEnd: () => {
      cpuEnd = server.cpu();
    },
  });
  let serverCpuPercent = Number.NaN;
  if (cpuStart !== null && cpuEnd !== null) {
    const [a, b] = await Promise.all([cpuStart as Promise<CpuMessage>, cpuEnd as Promise<CpuMessage>]);
    serverCpuPercent = (b.cpuUs - a.cpuUs) / ((b.wallMs - a.wallMs) * 10);
  }
  if (server.child.exitCode !== null || server.child.signalCode !== null)
    throw new Error(`${server.spec.label} died during its run`);
  return { result, serverCpuPercent };
}

/**
 * Checks that every server keeps a KEEP_CONN connection open across requests (node-fastcgi claims to): two
 * connections for a short while must carry every request without a reconnect, error or timeout.
 */
async function keepConnCheck(
  servers: readonly Running[],
  workload: Workload,
  setup: Setup,
): Promise<Map<ServerSpec, string>> {
  const failures = new Map<ServerSpec, string>();
  for (const server of servers) {
    server.keepConn = true;
    const { result } = await runOne(server, workload, { ...setup, connections: 2 }, 300, 0);
    const problems: string[] = [];
    if (result.requests === 0) problems.push('no reply');
    if (result.connectionsOpened > 2) problems.push(`${result.connectionsOpened} connections opened for 2`);
    if (result.errors + result.timeouts > 0)
      problems.push(`${result.errors} errors, ${result.timeouts} timeouts (${result.errorSamples.join('; ')})`);
    if (problems.length > 0) failures.set(server.spec, problems.join(', '));
  }
  return failures;
}

// --- results ------------------------------------------------------------------------------------------------

interface RowResult {
  readonly server: string;
  readonly label: string;
  readonly role: RowRole;
  /** The engine's scanner as the server process reported it. */
  readonly codec: string | null;
  /** Connections reused across requests (false: a new connection per request). */
  readonly keepConn: boolean;
  readonly runs: number;
  /** Mean of the runs' req/s. */
  readonly reqPerSec: number;
  readonly reqPerSecMin: number;
  readonly reqPerSecMax: number;
  /** Pooled over all runs, µs. */
  readonly p50Us: number;
  readonly p99Us: number;
  readonly requests: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly serverCpuPercent: number;
  readonly clientCpuPercent: number;
  /** reqPerSec / node-fastcgi's reqPerSec. */
  readonly ratio: number;
  readonly errorSamples: readonly string[];
  readonly perRun: readonly {
    reqPerSec: number;
    requests: number;
    elapsedMs: number;
    errors: number;
    timeouts: number;
    connectionsOpened: number;
    serverCpuPercent: number;
    clientCpuPercent: number;
  }[];
}

interface TableResult {
  readonly workload: WorkloadName;
  readonly title: string;
  readonly description: string;
  readonly transport: Transport;
  readonly rows: readonly RowResult[];
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

function summarize(servers: readonly Running[], runs: Map<ServerSpec, RunRecord[]>): RowResult[] {
  const rows = servers.map((server) => {
    const records = runs.get(server.spec) ?? [];
    const rates = records.map((r) => r.result.reqPerSec);
    const latency = mergeLatencies(records.map((r) => r.result.latency));
    return {
      server: server.spec.id,
      label: server.spec.label,
      role: server.spec.role,
      codec: server.ready.codec,
      keepConn: server.keepConn,
      runs: records.length,
      reqPerSec: mean(rates),
      reqPerSecMin: Math.min(...rates),
      reqPerSecMax: Math.max(...rates),
      p50Us: latency.getValueAtPercentile(50),
      p99Us: latency.getValueAtPercentile(99),
      requests: records.reduce((sum, r) => sum + r.result.requests, 0),
      errors: records.reduce((sum, r) => sum + r.result.errors, 0),
      timeouts: records.reduce((sum, r) => sum + r.result.timeouts, 0),
      serverCpuPercent: mean(records.map((r) => r.serverCpuPercent)),
      clientCpuPercent: mean(records.map((r) => r.result.clientCpuPercent)),
      ratio: Number.NaN,
      errorSamples: [...new Set(records.flatMap((r) => r.result.errorSamples))].slice(0, 5),
      perRun: records.map((r) => ({
        reqPerSec: r.result.reqPerSec,
        requests: r.result.requests,
        elapsedMs: r.result.elapsedMs,
        errors: r.result.errors,
        timeouts: r.result.timeouts,
        connectionsOpened: r.result.connectionsOpened,
        serverCpuPercent: r.serverCpuPercent,
        clientCpuPercent: r.result.clientCpuPercent,
      })),
    };
  });
  const baseline = rows.find((row) => row.role === 'baseline')?.reqPerSec ?? Number.NaN;
  return rows.map((row) => ({ ...row, ratio: row.reqPerSec / baseline }));
}

// --- output -------------------------------------------------------------------------------------------------

function int(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a';
}

function percent(n: number): string {
  return Number.isFinite(n) ? `${Math.round(n)} %` : 'n/a';
}

function ratioCell(row: RowResult): string {
  if (row.role === 'baseline') return '1.00 (baseline)';
  if (!Number.isFinite(row.ratio)) return 'n/a';
  return row.role === 'reference' ? `${row.ratio.toFixed(2)}× (reference)` : `${row.ratio.toFixed(2)}×`;
}

/** One sentence per table: the engine against the baseline, and native against TS with the run ranges. */
function reading(rows: readonly RowResult[]): string {
  const base = rows.find((r) => r.role === 'baseline');
  const native = rows.find((r) => r.server === ENGINE_NATIVE.id);
  const ts = rows.find((r) => r.server === ENGINE_TS.id);
  const parts: string[] = [];
  if (base !== undefined) {
    for (const row of [native, ts]) {
      if (row !== undefined) parts.push(`${row.label}: ${row.ratio.toFixed(2)}× node-fastcgi's req/s`);
    }
  }
  if (native !== undefined && ts !== undefined) {
    const overlap = native.reqPerSecMin <= ts.reqPerSecMax && ts.reqPerSecMin <= native.reqPerSecMax;
    const ranges =
      Math.min(native.runs, ts.runs) < 2
        ? 'one run each: no range to judge noise by'
        : `run ranges ${overlap ? 'overlap: within noise' : 'do not overlap'}`;
    parts.push(`native / TS scanner: ${(native.reqPerSec / ts.reqPerSec).toFixed(3)}× (${ranges})`);
  }
  return parts.length === 0 ? '' : `${parts.join('; ')}.`;
}

interface Report {
  readonly environment: {
    readonly node: string;
    readonly v8: string;
    readonly platform: string;
    readonly cpu: string;
    readonly cores: number;
    readonly commit: string;
    readonly dirty: boolean;
    readonly date: string;
    readonly command: string;
    readonly runner: string;
    readonly nodeFastcgi: string;
  };
  readonly setup: Setup & { readonly order: string; readonly connectionMode: string };
  readonly notes: readonly string[];
  readonly tables: readonly TableResult[];
}

function formatMarkdown(report: Report): string {
  const env = report.environment;
  const setup = report.setup;
  const out: string[] = [];
  out.push(
    `Node ${env.node} (V8 ${env.v8}, ${env.platform}) · CPU: ${env.cpu} × ${env.cores} cores · node-fastcgi ${env.nodeFastcgi} · ` +
      `commit ${env.commit}${env.dirty ? ' (uncommitted changes)' : ''} · ${env.date}`,
  );
  out.push(
    `Command: \`${env.command}\` · servers run as ${env.runner}, each in its own process; the client runs in the parent process · ` +
      `closed loop: ${setup.connections} connections, one request in flight each, ${setup.connectionMode} · ` +
      `${setup.warmupMs} ms warmup + ${setup.durationMs} ms measured per run · ${setup.rounds} round(s), servers in the order ${setup.order} · ` +
      `req/s: mean of the runs (min–max); p50/p99: latency to the whole reply (END_REQUEST) pooled over the runs; errors after the warmup; CPU: % of one core over the measured window.`,
  );
  for (const note of report.notes) out.push(`Note: ${note}`);
  for (const t of report.tables) {
    out.push('', `### ${t.title} (${t.transport === 'unix' ? 'unix socket' : 'TCP 127.0.0.1'})`, '', t.description, '');
    const mixed = t.rows.some((row) => row.keepConn) && t.rows.some((row) => !row.keepConn);
    const rows = t.rows.map((row) => [
      mixed && !row.keepConn ? `${row.label} [new connection per request]` : row.label,
      int(row.reqPerSec),
      `${int(row.reqPerSecMin)}–${int(row.reqPerSecMax)}`,
      formatTime(row.p50Us * 1000),
      formatTime(row.p99Us * 1000),
      row.timeouts > 0 ? `${row.errors} (+${row.timeouts} timeouts)` : String(row.errors),
      percent(row.serverCpuPercent),
      percent(row.clientCpuPercent),
      ratioCell(row),
    ]);
    out.push(
      table(
        ['Server', 'req/s', 'min–max', 'p50', 'p99', 'Errors', 'Server CPU', 'Client CPU', 'Ratio vs node-fastcgi'],
        rows,
        new Set([1, 2, 3, 4, 5, 6, 7, 8]),
      ),
    );
    const sentence = reading(t.rows);
    if (sentence !== '') out.push('', sentence);
    for (const row of t.rows) {
      if (row.errorSamples.length > 0) out.push('', `Errors of ${row.label}: ${row.errorSamples.join('; ')}`);
    }
  }
  return out.join('\n');
}

function formatJson(report: Report): string {
  return JSON.stringify(
    report,
    (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value),
    2,
  );
}

// --- main ---------------------------------------------------------------------------------------------------

function nodeFastcgiVersion(): string {
  try {
    return (require('node-fastcgi/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * Why node-fastcgi 2.0.0 closes every connection: lib/server.js tests `record.flags &
 * fcgi.records.BeginRequest.flags.KEEP_CONN`, but fastcgi-stream 1.0.0 names that flag `KEEPCONN`, so the
 * mask is undefined, the test is always 0 and the connection is ended after each END_REQUEST.
 * Returns a sentence when the installed packages have that mismatch, else null.
 */
function nodeFastcgiKeepConnCause(): string | null {
  try {
    const from = dirname(require.resolve('node-fastcgi'));
    const stream = require(require.resolve('fastcgi-stream', { paths: [from] })) as {
      records: { BeginRequest: { flags: Record<string, number> } };
    };
    const flags = stream.records.BeginRequest.flags;
    if (flags['KEEP_CONN'] === undefined && flags['KEEPCONN'] !== undefined) {
      return 'node-fastcgi reads BeginRequest.flags.KEEP_CONN, but its fastcgi-stream names the flag KEEPCONN: the mask is undefined, so node-fastcgi ends every connection after END_REQUEST (FCGI_KEEP_CONN is never honoured).';
    }
  } catch {
    // not installed as expected: no explanation
  }
  return null;
}

function progress(message: string): void {
  process.stderr.write(`  ${message}\n`);
}

async function main(): Promise<void> {
  if (relaunchCompiled(__filename)) return;
  const json = process.argv.includes('--json');
  const setup = readSetup();
  const specs = [NODE_FASTCGI, ENGINE_NATIVE, ENGINE_TS];
  if (process.env['BENCH_HTTP'] !== '0') specs.push(NODE_HTTP);
  const order = specs.map((_, i) => String.fromCharCode(65 + i)).join(',');
  const orderText =
    setup.rounds > 1
      ? `${order} then ${order.split(',').reverse().join(',')}${setup.rounds > 2 ? ', alternating' : ''}`
      : order;
  const notes: string[] = [];
  const tables: TableResult[] = [];

  const dir = mkdtempSync(join(tmpdir(), 'fcgi-bench-'));
  const cleanup = (): void => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      cleanup();
      process.exit(130);
    });
  }

  let running: Running[] = [];
  // Decided once, by the first table's check, and kept for every table.
  let keepConnOf: ((spec: ServerSpec) => boolean) | null = setup.keepConn === 'off' ? () => false : null;
  let connectionMode = 'a new connection per request (BENCH_KEEP_CONN=0)';
  const dropped = new Set<string>();
  try {
    for (const workload of WORKLOADS) {
      for (const transport of setup.transports) {
        progress(`${workload.name} (${transport}): starting ${specs.length} servers`);
        running = await Promise.all(
          specs.filter((s) => !dropped.has(s.id)).map((spec) => startServer(spec, workload.name, transport, dir)),
        );
        // A "native" row that fell back to TypeScript would be mislabelled: drop it and say why.
        const native = running.find((r) => r.spec === ENGINE_NATIVE);
        if (native !== undefined && native.ready.codec !== 'native') {
          notes.push(
            `native addon not loaded in the server (${native.ready.codecReason ?? 'unknown reason'}): no native row.`,
          );
          dropped.add(ENGINE_NATIVE.id);
          await stopServer(native);
          running = running.filter((r) => r !== native);
        }
        const ts = running.find((r) => r.spec === ENGINE_TS);
        if (ts !== undefined && ts.ready.codec !== 'typescript')
          throw new Error(`FASTCGI_NO_NATIVE=1 server reports codec ${ts.ready.codec}`);
        if (keepConnOf === null) {
          const failures = await keepConnCheck(running, workload, setup);
          const failed = [...failures].map(([spec, why]) => `${spec.label}: ${why}`).join('; ');
          if (failures.size === 0) {
            keepConnOf = () => true;
            connectionMode = 'keep-conn (FCGI_KEEP_CONN; HTTP/1.1 keep-alive)';
            notes.push('keep-conn check passed for every server: each connection carried all its requests.');
          } else if (setup.keepConn === 'auto') {
            keepConnOf = () => false;
            connectionMode =
              'a new connection per request (FastCGI requests without FCGI_KEEP_CONN; HTTP `Connection: close`), because a server failed the keep-conn check';
            notes.push(
              `keep-conn check failed (${failed}), so every row opens a new connection per request; latency includes the connect. ` +
                'BENCH_KEEP_CONN=1 keeps connections open for the servers that pass.',
            );
          } else {
            keepConnOf = (spec) => ![...failures.keys()].includes(spec);
            connectionMode =
              'keep-conn (FCGI_KEEP_CONN; HTTP/1.1 keep-alive) except the rows marked [new connection per request] (BENCH_KEEP_CONN=1)';
            notes.push(
              `keep-conn check failed (${failed}): those rows open a new connection per request, so their ratios mix connection modes.`,
            );
          }
          const cause = failures.has(NODE_FASTCGI) ? nodeFastcgiKeepConnCause() : null;
          if (cause !== null) notes.push(cause);
        }
        for (const server of running) server.keepConn = keepConnOf(server.spec);
        const runs = new Map<ServerSpec, RunRecord[]>();
        for (let round = 0; round < setup.rounds; round++) {
          const turn = round % 2 === 0 ? running : [...running].reverse();
          for (const server of turn) {
            const record = await runOne(server, workload, setup, setup.durationMs, setup.warmupMs);
            (runs.get(server.spec) ?? runs.set(server.spec, []).get(server.spec)!).push(record);
            const r = record.result;
            progress(
              `${workload.name} (${transport}) round ${round + 1}/${setup.rounds} · ${server.spec.label}: ${int(r.reqPerSec)} req/s, ` +
                `p50 ${formatTime(r.latency.getValueAtPercentile(50) * 1000)}, errors ${r.errors}, timeouts ${r.timeouts}, ` +
                `server CPU ${percent(record.serverCpuPercent)}, client CPU ${percent(r.clientCpuPercent)}`,
            );
          }
        }
        tables.push({
          workload: workload.name,
          title: workload.title,
          description: workload.description,
          transport,
          rows: summarize(running, runs),
        });
        await Promise.all(running.map(stopServer));
        running = [];
      }
    }
  } finally {
    await Promise.all(running.map(stopServer));
    cleanup();
  }

  const knobs = KNOBS.filter((k) => process.env[k] !== undefined && process.env[k] !== '').map(
    (k) => `${k}=${process.env[k]} `,
  );
  const env = environment(
    `${knobs.join('')}npm run bench:server${json ? ' -- --json' : ''}`,
    { time: setup.durationMs, warmupTime: setup.warmupMs, rounds: setup.rounds, targetSampleUs: 0 },
    __filename,
  );
  if (specs.includes(NODE_HTTP)) {
    notes.push(
      'node:http is a reference row, not a competitor: it speaks HTTP/1.1 to a different client loop (pre-encoded `GET / HTTP/1.1`, replies framed by Content-Length), so its ratio compares protocols and clients as well as servers.',
    );
  }
  const report: Report = {
    environment: {
      node: env.node,
      v8: env.v8,
      platform: env.platform,
      cpu: env.cpu,
      cores: env.cores,
      commit: env.commit,
      dirty: env.dirty,
      date: env.date,
      command: env.command,
      runner: env.runner,
      nodeFastcgi: nodeFastcgiVersion(),
    },
    setup: { ...setup, order: orderText, connectionMode },
    notes,
    tables,
  };
  process.stdout.write(`${json ? formatJson(report) : formatMarkdown(report)}\n`);
}

main().catch((error: unknown) => {
  killAll();
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
