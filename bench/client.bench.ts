// Client-side benchmark, two tables from one run, each against the same php-fpm pool (Debian php8.2-fpm,
// started here from a temp dir):
//
//   1. HTTP gateways: nginx (nginx-light, the baseline row) vs createGateway on node:http, both keeping
//      connections to php-fpm open (nginx: `fastcgi_keep_conn on` + upstream `keepalive`), one nginx worker vs
//      one Node process. Driven over HTTP/1.1 keep-alive by the load generator's closed loop (src/load/run.ts)
//      with the HTTP target of ./_util/http-target.ts. Two more rows are floors, not products: the engine's codec
//      with nothing around it (./apps/floor-gateway.ts) behind node:http, and behind a bare TCP server, i.e. the
//      least any `(req, res)` gateway and any Node gateway pay per request on this machine.
//   2. FastCGI clients in this process: fastcgi-client 0.2.0 (the npm package, the baseline row) vs
//      createClient (kept connections, the default) and createClient with keepConn: false (a connection per
//      request, as fastcgi-client does against php-fpm), C requests in flight in a closed loop.
//
//   3. Several backends: nginx with an `upstream` of 1, 2 and 3 php-fpm pools vs the gateway whose client has the
//      same pools as `upstreams` (skip with --no-several).
//
//   npm run bench:client                 markdown tables
//   npm run -s bench:client -- --json    JSON (-s keeps npm's banner off stdout)
//
// Method. Every row meets the same php-fpm pool (pm = static, BENCH_PHP_CHILDREN workers) and the same
// scripts, written to the temp dir: hello.php (12 bytes) and bytes.php (64 KiB), both with Content-Length.
// Rows take turns A,B,… then …,B,A (BENCH_ROUNDS), each run a warmup then a measured window; the first reply
// of every run is checked. A kept connection holds its php worker even while idle, so both front ends close
// idle connections after 1 s and runs are 1.5 s apart: each run starts with every worker free. Each row gets
// one unrecorded run first (JIT warmup). Latency is send to last byte of the body. nginx and the gateway run in their own
// processes; the load generator (table 1) and the clients (table 2) run in this one.
//
// Knobs (env): BENCH_CONNECTIONS (16: HTTP connections in table 1, requests in flight in table 2),
// BENCH_PHP_CHILDREN (4), BENCH_DURATION_MS per run (3000), BENCH_WARMUP_MS per run (1000), BENCH_ROUNDS (2),
// BENCH_TIMEOUT_MS per request (5000), BENCH_TSX=1 (see _util/report.ts; not for numbers). About 4 min in all.
// Needs php-fpm8.2 (apt-get install php8.2-fpm) and nginx (apt-get install nginx-light).
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { createClient as createEngineClient } from '../src/client/client';
import { LoadDriver } from '../src/load/driver';
import { mergeLatencies, type Histogram } from '../src/load/latency';
import { CallTarget, type RequestFn } from './_util/call-target';
import { HttpTarget } from './_util/http-target';
import { benchLoad, type LoadResult } from './_util/load-run';
import type { GatewayKind } from './apps/gateway';
import { treeCpuSeconds } from './_util/proc-cpu';
import { startNginx, startNginxRoutes } from './_util/nginx';
import { cleanUpOnExit, findBinary, killAll, stop, track } from './_util/processes';
import { PHP_SCRIPTS, startPhpFpm, writePhpScripts } from './_util/php-fpm';
import { environment, envNumber, formatTime, isCompiled, relaunchCompiled } from './_util/report';

// --- knobs ------------------------------------------------------------------------------------------------

const SETUP = {
  connections: Math.max(1, Math.floor(envNumber('BENCH_CONNECTIONS', 16))),
  phpChildren: Math.max(1, Math.floor(envNumber('BENCH_PHP_CHILDREN', 4))),
  durationMs: Math.max(100, envNumber('BENCH_DURATION_MS', 3000)),
  warmupMs: envNumber('BENCH_WARMUP_MS', 1000),
  rounds: Math.max(1, Math.floor(envNumber('BENCH_ROUNDS', 2))),
  timeoutMs: Math.max(100, envNumber('BENCH_TIMEOUT_MS', 5000)),
};
/** The gateway's upstream pool size (default: one connection per php worker). */
const GATEWAY_POOL = Math.max(1, Math.floor(envNumber('BENCH_GATEWAY_POOL', SETUP.phpChildren)));
const KNOBS = [
  'BENCH_CONNECTIONS',
  'BENCH_PHP_CHILDREN',
  'BENCH_DURATION_MS',
  'BENCH_WARMUP_MS',
  'BENCH_ROUNDS',
  'BENCH_TIMEOUT_MS',
  'BENCH_GATEWAY_POOL',
  'BENCH_TSX',
];

interface Workload {
  readonly name: string;
  readonly title: string;
  /** Path under the document root, query included. */
  readonly path: string;
  /** The body starts with this (checked on the first reply of each run). */
  readonly expect: string;
}

const HELLO: Workload = { name: 'hello', title: 'hello.php (12-byte body)', path: '/hello.php', expect: 'hello world' };
const BYTES: Workload = { name: '64k', title: 'bytes.php (64 KiB body)', path: '/bytes.php?n=65536', expect: 'ab' };

// --- processes ----------------------------------------------------------------------------------------------

/**
 * A front end in a process of its own: ./apps/gateway.ts (its compiled twin when this file runs compiled) with
 * `kind SOCKETS DOCROOT POOL`. One socket: a client with one `upstream` address; several (`gateway-balanced`):
 * a client with `upstreams`, each capped at POOL. `bare`: node:http answering what hello.php answers, with no
 * backend; `floor-http` / `floor-net`: the engine's codec alone (./apps/floor-gateway.ts).
 */
async function startGateway(
  kind: GatewayKind,
  phpSockets: string | readonly string[],
  docroot: string,
): Promise<{ child: ChildProcess; port: number }> {
  const sockets = typeof phpSockets === 'string' ? phpSockets : phpSockets.join(',');
  const compiled = isCompiled(__filename);
  const execArgv = compiled ? [] : ['--import', 'tsx'];
  // A profile of the gateway process, to see where its CPU goes (not for numbers: profiling slows it).
  const profileDir = process.env.BENCH_GATEWAY_PROFILE;
  if (profileDir !== undefined && profileDir !== '') execArgv.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`);
  const file = join(__dirname, 'apps', compiled ? 'gateway.js' : 'gateway.ts');
  const args = [kind, sockets, docroot, String(GATEWAY_POOL)];
  const child = track(fork(file, args, { execArgv, stdio: ['ignore', 2, 2, 'ipc'] }));
  const [message] = (await once(child, 'message')) as [{ port: number }];
  return { child, port: message.port };
}

// --- table 1: HTTP gateways -------------------------------------------------------------------------------

interface Row {
  readonly label: string;
  readonly baseline: boolean;
  readonly runs: {
    reqPerSec: number;
    latency: Histogram;
    errors: number;
    timeouts: number;
    samples: readonly string[];
    cpu: CpuPerRequest | null;
  }[];
}

/** CPU µs per completed request over the measured window, by process (tree). */
interface CpuPerRequest {
  front: number;
  php: number;
  generator: number;
}

/** Where the CPU of a gateway run goes: the front end's process tree, php-fpm's, and this process. */
interface CpuProbe {
  readonly frontPid: number;
  /** Every php-fpm master whose pool the front end uses. */
  readonly phpPids: readonly number[];
}

function phpCpuSeconds(probe: CpuProbe): number {
  return probe.phpPids.reduce((sum, pid) => sum + treeCpuSeconds(pid), 0);
}

function httpRequestBytes(path: string): Buffer {
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: bench\r\n\r\n`, 'latin1');
}

async function gatewayRun(
  port: number,
  workload: Workload,
  probe: CpuProbe,
): Promise<LoadResult & { cpu: CpuPerRequest }> {
  let front0 = 0;
  let php0 = 0;
  let front = 0;
  let php = 0;
  const request = httpRequestBytes(workload.path);
  const result = await benchLoad(
    (sink) =>
      new HttpTarget(
        {
          address: { port, host: '127.0.0.1' },
          request,
          connections: SETUP.connections,
          keepConn: true,
          timeoutMs: SETUP.timeoutMs,
          sampleFirstReply: true,
        },
        sink,
      ),
    {
      concurrency: SETUP.connections,
      warmupMs: SETUP.warmupMs,
      durationMs: SETUP.durationMs,
      expectBody: workload.expect,
      onMeasureStart: () => {
        front0 = treeCpuSeconds(probe.frontPid);
        php0 = phpCpuSeconds(probe);
      },
      onMeasureEnd: () => {
        front = treeCpuSeconds(probe.frontPid) - front0;
        php = phpCpuSeconds(probe) - php0;
      },
    },
  );
  const perRequest = (seconds: number): number =>
    result.requests > 0 ? (seconds * 1e6) / result.requests : Number.NaN;
  const generator = (result.clientCpuPercent / 100) * (result.elapsedMs / 1000);
  return { ...result, cpu: { front: perRequest(front), php: perRequest(php), generator: perRequest(generator) } };
}

/** A row of an alternation: the HTTP load of `workload` against a started front end. */
function frontRun(
  row: Row,
  started: { child: ChildProcess; port: number },
  workload: Workload,
  phpPids: readonly number[],
): { row: Row; run: () => Promise<LoadResult & { cpu: CpuPerRequest }> } {
  return { row, run: () => gatewayRun(started.port, workload, { frontPid: started.child.pid!, phpPids }) };
}

/**
 * The FastCGI exchange with nothing else in the process: `fastcgi-engine bench`'s wire driver keeping one
 * request in flight on each of the pool's kept connections. Its CPU per request is the cheapest a Node process
 * can talk FastCGI to this php-fpm.
 */
async function driverRun(
  phpSocket: string,
  docroot: string,
  phpPid: number,
): Promise<LoadResult & { cpu: CpuPerRequest }> {
  const params = Object.entries(phpParams(docroot, HELLO));
  let php0 = 0;
  let php = 0;
  const result = await benchLoad(
    (sink) =>
      new LoadDriver(
        {
          address: { path: phpSocket },
          connections: SETUP.phpChildren,
          perConnection: 1,
          keepConn: true,
          params,
          body: null,
          timeoutMs: SETUP.timeoutMs,
          sampleFirstReply: true,
        },
        sink,
      ),
    {
      concurrency: SETUP.phpChildren,
      warmupMs: SETUP.warmupMs,
      durationMs: SETUP.durationMs,
      expectBody: HELLO.expect,
      onMeasureStart: () => {
        php0 = treeCpuSeconds(phpPid);
      },
      onMeasureEnd: () => {
        php = treeCpuSeconds(phpPid) - php0;
      },
    },
  );
  const perRequest = (seconds: number): number =>
    result.requests > 0 ? (seconds * 1e6) / result.requests : Number.NaN;
  const generator = (result.clientCpuPercent / 100) * (result.elapsedMs / 1000);
  return { ...result, cpu: { front: Number.NaN, php: perRequest(php), generator: perRequest(generator) } };
}

// --- table 2: clients in this process -------------------------------------------------------------------

function phpParams(docroot: string, workload: Workload): Record<string, string> {
  const [path, query = ''] = workload.path.split('?');
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: 'GET',
    SCRIPT_FILENAME: join(docroot, path!),
    SCRIPT_NAME: path!,
    REQUEST_URI: workload.path,
    QUERY_STRING: query,
    DOCUMENT_ROOT: docroot,
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: 'bench',
  };
}

function engineRequest(
  client: ReturnType<typeof createEngineClient>,
  params: Record<string, string>,
  expect: string,
): RequestFn {
  return async () => {
    const response = await client.request({ params });
    const body = await response.buffer();
    if (response.status !== 200 || !body.toString('latin1', 0, expect.length).startsWith(expect))
      throw new Error(`unexpected reply ${response.status}`);
  };
}

interface FastcgiClientRequest {
  stdin: NodeJS.WritableStream;
  stdout: NodeJS.ReadableStream;
  getExitStatus(): Error | number;
}
interface FastcgiClient {
  on(event: 'ready', listener: () => void): void;
  request(params: Record<string, string>, callback: (error: Error | null, request: FastcgiClientRequest) => void): void;
}

async function fastcgiClient(socket: string): Promise<FastcgiClient> {
  const create = require('fastcgi-client') as (options: Record<string, unknown>) => FastcgiClient;
  const client = create({ sockFile: socket });
  await new Promise<void>((resolve) => client.on('ready', resolve));
  return client;
}

function fastcgiClientRequest(client: FastcgiClient, params: Record<string, string>, expect: string): RequestFn {
  return () =>
    new Promise<void>((resolve, reject) => {
      client.request(params, (error, request) => {
        if (error !== null) return reject(error);
        const chunks: Buffer[] = [];
        request.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.stdout.on('end', () => {
          // fastcgi-client hands over the raw CGI output: the header block is the caller's to split off.
          const raw = Buffer.concat(chunks);
          const at = raw.indexOf('\r\n\r\n');
          if (at === -1 || !raw.toString('latin1', at + 4, at + 4 + expect.length).startsWith(expect))
            reject(new Error('unexpected reply'));
          else resolve();
        });
        request.stdin.end();
      });
    });
}

/** C requests in flight, each followed by the next as soon as it completes; warmup, then a measured window. */
function closedLoop(request: RequestFn): Promise<LoadResult> {
  return benchLoad((sink) => new CallTarget(request, sink, SETUP.timeoutMs), {
    concurrency: SETUP.connections,
    warmupMs: SETUP.warmupMs,
    durationMs: SETUP.durationMs,
    expectBody: '',
  });
}

// --- report -------------------------------------------------------------------------------------------------

interface TableOut {
  readonly title: string;
  readonly description: string;
  readonly rows: readonly {
    label: string;
    baseline: boolean;
    reqPerSec: number;
    reqPerSecMin: number;
    reqPerSecMax: number;
    p50Us: number;
    p99Us: number;
    errors: number;
    timeouts: number;
    ratio: number;
    errorSamples: readonly string[];
    /** Mean over the runs; null for rows measured in this process (table 2). */
    cpuUsPerRequest: CpuPerRequest | null;
  }[];
}

function meanCpu(runs: readonly (CpuPerRequest | null)[]): CpuPerRequest | null {
  const known = runs.filter((r): r is CpuPerRequest => r !== null);
  if (known.length === 0) return null;
  const mean = (key: keyof CpuPerRequest): number => known.reduce((a, r) => a + r[key], 0) / known.length;
  return { front: mean('front'), php: mean('php'), generator: mean('generator') };
}

function summarize(title: string, description: string, rows: readonly Row[]): TableOut {
  const summarized = rows.map((row) => {
    const rates = row.runs.map((r) => r.reqPerSec);
    const latency = mergeLatencies(row.runs.map((r) => r.latency));
    return {
      label: row.label,
      baseline: row.baseline,
      reqPerSec: rates.reduce((a, b) => a + b, 0) / rates.length,
      reqPerSecMin: Math.min(...rates),
      reqPerSecMax: Math.max(...rates),
      p50Us: latency.getValueAtPercentile(50),
      p99Us: latency.getValueAtPercentile(99),
      errors: row.runs.reduce((a, r) => a + r.errors, 0),
      timeouts: row.runs.reduce((a, r) => a + r.timeouts, 0),
      ratio: Number.NaN,
      errorSamples: [...new Set(row.runs.flatMap((r) => r.samples))].slice(0, 3),
      cpuUsPerRequest: meanCpu(row.runs.map((r) => r.cpu)),
    };
  });
  const base = summarized.find((r) => r.baseline)?.reqPerSec ?? Number.NaN;
  return { title, description, rows: summarized.map((r) => ({ ...r, ratio: r.reqPerSec / base })) };
}

function int(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a';
}

function markdownTable(table: TableOut): string {
  const withCpu = table.rows.some((r) => r.cpuUsPerRequest !== null);
  const headers = [
    'Row',
    'req/s',
    'min–max',
    'p50',
    'p99',
    'Errors',
    'Ratio',
    ...(withCpu ? ['CPU/req: front end', 'php-fpm', 'load generator'] : []),
  ];
  const us = (n: number | undefined): string => (n !== undefined && Number.isFinite(n) ? `${n.toFixed(1)} µs` : 'n/a');
  const cells = table.rows.map((r) => [
    r.label,
    int(r.reqPerSec),
    `${int(r.reqPerSecMin)}–${int(r.reqPerSecMax)}`,
    formatTime(r.p50Us * 1000),
    formatTime(r.p99Us * 1000),
    r.timeouts > 0 ? `${r.errors} (+${r.timeouts} timeouts)` : String(r.errors),
    r.baseline ? '1.00 (baseline)' : Number.isFinite(r.ratio) ? `${r.ratio.toFixed(2)}×` : 'n/a',
    ...(withCpu ? [us(r.cpuUsPerRequest?.front), us(r.cpuUsPerRequest?.php), us(r.cpuUsPerRequest?.generator)] : []),
  ]);
  const widths = headers.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c]!.length)));
  const line = (row: readonly string[]) =>
    `| ${row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, c) => (c === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  const out = [`### ${table.title}`, '', table.description, '', line(headers), rule, ...cells.map(line)];
  for (const r of table.rows)
    if (r.errorSamples.length > 0) out.push('', `Errors of ${r.label}: ${r.errorSamples.join('; ')}`);
  return out.join('\n');
}

function progress(message: string): void {
  process.stderr.write(`  ${message}\n`);
}

// --- table: several backends -------------------------------------------------------------------------------

/** Pools behind one front end, in the several-backends table: 1, 2 and 3. */
const POOL_SETS = [1, 2, 3] as const;

/**
 * nginx's `upstream` with 1, 2 and 3 php-fpm pools (round robin, the keepalive cache sized for all of them) next
 * to the gateway's client with the same pools as `upstreams` (least-in-flight, each capped at its pool's
 * workers). `pools[0]` is the pool of the tables above; the others are started here the same way. Each set has
 * its own script directory (/n1/, /n2/, /n3/) so one nginx routes all three; the gateway gets the same paths.
 */
async function severalBackends(
  phpFpm: string,
  nginx: string,
  dir: string,
  docroot: string,
  first: { child: ChildProcess; socket: string },
): Promise<TableOut> {
  const pools = [first];
  for (let i = 2; i <= Math.max(...POOL_SETS); i++)
    pools.push(await startPhpFpm(phpFpm, dir, SETUP.phpChildren, `php${i}`));
  for (const n of POOL_SETS) {
    mkdirSync(join(docroot, `n${n}`));
    writeFileSync(join(docroot, `n${n}`, 'hello.php'), PHP_SCRIPTS['hello.php']!);
  }
  const nginxDir = join(dir, 'nginx-several');
  mkdirSync(nginxDir);
  const front = await startNginxRoutes(
    nginx,
    nginxDir,
    POOL_SETS.map((n) => ({
      location: `~ ^/n${n}/.*\\.php$`,
      protocol: 'fastcgi' as const,
      server: pools.slice(0, n).map((pool) => `unix:${pool.socket}`),
      keepalive: n * SETUP.phpChildren,
    })),
    { root: docroot },
  );
  const tables: TableOut[] = [];
  for (const n of POOL_SETS) {
    const used = pools.slice(0, n);
    const workload: Workload = { name: `${n} pools`, title: '', path: `/n${n}/hello.php`, expect: HELLO.expect };
    const phpPids = used.map((pool) => pool.child.pid!);
    const gateway = await startGateway(
      'gateway-balanced',
      used.map((pool) => pool.socket),
      docroot,
    );
    const plural = n === 1 ? 'pool' : 'pools';
    const nginxRow: Row = { label: `nginx, upstream of ${n} ${plural} (round robin)`, baseline: true, runs: [] };
    const gatewayRow: Row = {
      label: `createGateway, upstreams: ${n} ${plural} (least-in-flight)`,
      baseline: false,
      runs: [],
    };
    await alternate(
      [frontRun(nginxRow, front, workload, phpPids), frontRun(gatewayRow, gateway, workload, phpPids)],
      `several backends, ${n} ${plural}`,
    );
    await stop(gateway.child);
    tables.push(summarize('', '', [nginxRow, gatewayRow]));
  }
  await stop(front.child, 'SIGQUIT');
  for (const pool of pools.slice(1)) await stop(pool.child);
  return {
    title: `Several backends: ${HELLO.title} over 1, 2 and 3 php-fpm pools`,
    description: `The load of the tables above (${SETUP.connections} HTTP/1.1 keep-alive connections) against nginx with an \`upstream\` of N php-fpm pools (round robin, \`keepalive ${SETUP.phpChildren}\` per pool) and against the gateway whose client has the same pools as \`upstreams\` (least-in-flight, \`maxConcurrent: ${SETUP.phpChildren}\` each, the rest queued). Each pool has ${SETUP.phpChildren} static workers on a unix socket; php-fpm's column is all N pools together. Each ratio is against nginx with the same pools.`,
    rows: tables.flatMap((table) => table.rows),
  };
}

// --- main ---------------------------------------------------------------------------------------------------

// Idle connections to php-fpm close after 1 s (nginx keepalive_timeout, the clients' idleTimeout): wait that
// out between runs so each starts with every php worker free.
const SETTLE_MS = 1500;

async function alternate(
  rows: { row: Row; run: () => Promise<LoadResult & { cpu?: CpuPerRequest }> }[],
  what: string,
): Promise<void> {
  for (const { row, run } of rows) {
    const primer = await run();
    progress(`${what} warmup run · ${row.label}: ${int(primer.reqPerSec)} req/s (not recorded)`);
    await delay(SETTLE_MS);
  }
  for (let round = 0; round < SETUP.rounds; round++) {
    const turn = round % 2 === 0 ? rows : [...rows].reverse();
    for (const { row, run } of turn) {
      const result = await run();
      await delay(SETTLE_MS);
      if (!result.verified)
        throw new Error(`${row.label}: the first reply was not the expected one (${result.errorSamples.join('; ')})`);
      row.runs.push({
        reqPerSec: result.reqPerSec,
        latency: result.latency,
        errors: result.errors,
        timeouts: result.timeouts,
        samples: result.errorSamples,
        cpu: result.cpu ?? null,
      });
      progress(
        `${what} round ${round + 1}/${SETUP.rounds} · ${row.label}: ${int(result.reqPerSec)} req/s, errors ${result.errors}, timeouts ${result.timeouts}`,
      );
    }
  }
}

async function main(): Promise<void> {
  if (relaunchCompiled(__filename)) return;
  const json = process.argv.includes('--json');
  const phpFpm = findBinary(['php-fpm8.2', 'php-fpm']);
  const nginx = findBinary(['nginx']);
  if (phpFpm === null || nginx === null) {
    process.stderr.write(
      `bench:client needs ${phpFpm === null ? 'php-fpm8.2 (apt-get install php8.2-fpm)' : ''}${phpFpm === null && nginx === null ? ' and ' : ''}${nginx === null ? 'nginx (apt-get install nginx-light)' : ''}\n`,
    );
    process.exitCode = 1;
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-client-bench-'));
  const docroot = join(dir, 'www');
  mkdirSync(docroot);
  writePhpScripts(docroot);
  cleanUpOnExit(dir);
  const tables: TableOut[] = [];
  try {
    const php = await startPhpFpm(phpFpm, dir, SETUP.phpChildren);
    const front = await startNginx(nginx, dir, {
      socket: php.socket,
      keepalive: SETUP.phpChildren,
      root: docroot,
      location: '\\.php$',
    });
    const gateway = await startGateway('gateway', php.socket, docroot);
    // Baselines for the gateway: the engine's codec alone behind node:http, and behind no HTTP library.
    const floorHttp = await startGateway('floor-http', php.socket, docroot);
    const floorNet = await startGateway('floor-net', php.socket, docroot);
    for (const workload of [HELLO, BYTES]) {
      const nginxRow: Row = { label: 'nginx 1 worker, fastcgi_keep_conn + keepalive', baseline: true, runs: [] };
      const gatewayRow: Row = { label: 'createGateway on node:http, 1 process', baseline: false, runs: [] };
      const floorHttpRow: Row = {
        label: "floor: node:http + the engine's codec, no client",
        baseline: false,
        runs: [],
      };
      const floorNetRow: Row = {
        label: "floor: bare TCP + the engine's codec, no HTTP library",
        baseline: false,
        runs: [],
      };
      await alternate(
        [
          frontRun(nginxRow, front, workload, [php.child.pid!]),
          frontRun(gatewayRow, gateway, workload, [php.child.pid!]),
          frontRun(floorHttpRow, floorHttp, workload, [php.child.pid!]),
          frontRun(floorNetRow, floorNet, workload, [php.child.pid!]),
        ],
        `gateway ${workload.name}`,
      );
      tables.push(
        summarize(
          `HTTP gateway in front of php-fpm: ${workload.title}`,
          `${SETUP.connections} HTTP/1.1 keep-alive connections, one request in flight each, to nginx or to the gateway, in front of the same php-fpm pool (${SETUP.phpChildren} static workers, unix socket). The gateway keeps up to ${SETUP.phpChildren} connections and queues the rest; nginx opens one upstream connection per request in flight and keeps ${SETUP.phpChildren} idle ones, php-fpm's listen queue holding the others. The floor rows keep up to ${SETUP.phpChildren} connections as the gateway does, with nothing but the engine's codec between the front end and php-fpm (bench/apps/floor-gateway.ts).`,
          [nginxRow, gatewayRow, floorHttpRow, floorNetRow],
        ),
      );
    }
    await stop(front.child, 'SIGQUIT');
    await stop(gateway.child);
    await stop(floorHttp.child);
    await stop(floorNet.child);
    if (!process.argv.includes('--no-several')) tables.push(await severalBackends(phpFpm, nginx, dir, docroot, php));

    // What any node:http gateway pays at the least: node:http with no backend, and the FastCGI exchange alone.
    const bare = await startGateway('bare', php.socket, docroot);
    const bareRow: Row = { label: 'node:http answering the same 12 bytes, no backend', baseline: false, runs: [] };
    const driverRow: Row = {
      label: `FastCGI exchange alone: bench's wire driver, ${SETUP.phpChildren} kept connections`,
      baseline: false,
      runs: [],
    };
    await alternate(
      [
        {
          row: bareRow,
          run: () => gatewayRun(bare.port, HELLO, { frontPid: bare.child.pid!, phpPids: [php.child.pid!] }),
        },
        { row: driverRow, run: () => driverRun(php.socket, docroot, php.child.pid!) },
      ],
      'floor',
    );
    await stop(bare.child);
    tables.push(
      summarize(
        `What a node:http gateway pays at the least: ${HELLO.title}`,
        `The two halves of a gateway measured alone. node:http: the HTTP load of the tables above against a node:http server that answers what hello.php answers, with no backend (front-end CPU per request). FastCGI: fastcgi-engine bench's wire driver in this process against the same php-fpm pool, one request in flight per kept connection (load-generator CPU per request is the exchange's cost). No baseline: the sum of the two front-end costs is the floor for the gateway row above.`,
        [bareRow, driverRow],
      ),
    );

    const params = phpParams(docroot, HELLO);
    const kept = createEngineClient({
      address: php.socket,
      poolSize: SETUP.phpChildren,
      multiplex: false,
      queueLimit: 100_000,
      idleTimeout: 1000,
    });
    const perRequest = createEngineClient({
      address: php.socket,
      poolSize: SETUP.connections,
      keepConn: false,
      queueLimit: 100_000,
    });
    const npmClient = await fastcgiClient(php.socket);
    const npmRow: Row = { label: 'fastcgi-client 0.2.0 (connection per request)', baseline: true, runs: [] };
    const keptRow: Row = { label: `createClient, ${SETUP.phpChildren} kept connections`, baseline: false, runs: [] };
    const perRequestRow: Row = {
      label: 'createClient, keepConn: false (connection per request)',
      baseline: false,
      runs: [],
    };
    await alternate(
      [
        { row: npmRow, run: () => closedLoop(fastcgiClientRequest(npmClient, params, HELLO.expect)) },
        { row: keptRow, run: () => closedLoop(engineRequest(kept, params, HELLO.expect)) },
        { row: perRequestRow, run: () => closedLoop(engineRequest(perRequest, params, HELLO.expect)) },
      ],
      'client hello',
    );
    tables.push(
      summarize(
        `FastCGI clients against php-fpm: ${HELLO.title}`,
        `${SETUP.connections} requests in flight from this process (closed loop: each completion starts the next), whole body read, against the same php-fpm pool. fastcgi-client opens a connection per request because php-fpm does not multiplex; createClient keeps ${SETUP.phpChildren} connections (queueing the rest), or opens one per request with keepConn: false.`,
        [npmRow, keptRow, perRequestRow],
      ),
    );
    await kept.close();
    await perRequest.close();
    await stop(php.child);
  } finally {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  }

  const knobs = KNOBS.filter((k) => process.env[k] !== undefined && process.env[k] !== '').map(
    (k) => `${k}=${process.env[k]} `,
  );
  const env = environment(
    `${knobs.join('')}npm run bench:client${json ? ' -- --json' : ''}`,
    { time: SETUP.durationMs, warmupTime: SETUP.warmupMs, rounds: SETUP.rounds, targetSampleUs: 0 },
    __filename,
  );
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ environment: env, setup: SETUP, tables }, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`,
    );
    return;
  }
  const out = [
    `Node ${env.node} (V8 ${env.v8}, ${env.platform}) · CPU: ${env.cpu} × ${env.cores} cores · commit ${env.commit}${env.dirty ? ' (uncommitted changes)' : ''} · ${env.date}`,
    `Command: \`${env.command}\` · ${SETUP.warmupMs} ms warmup + ${SETUP.durationMs} ms measured per run · ${SETUP.rounds} round(s), rows alternating in order · ` +
      'req/s: mean of the runs (min–max); p50/p99: latency to the last body byte, pooled; errors after the warmup. php-fpm, nginx and the gateway share the machine with the load generator.',
  ];
  for (const table of tables) out.push('', markdownTable(table));
  process.stdout.write(`${out.join('\n')}\n`);
}

main().catch((error: unknown) => {
  killAll();
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
