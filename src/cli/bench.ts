// `fastcgi-engine bench <address>`: the command line of the load generator in src/load/ (FastCGI driver, closed
// and open loops, HDR latency histograms). Closed loop (N connections × K in flight, as fast as answers come)
// or open loop (--rate: requests start on a schedule and latency counts from the intended start: coordinated
// omission corrected; the open loop also measures its own lateness, the sender lag). --threads spreads the
// load over worker threads; --plot writes the percentile chart as SVG; --calibrate measures the generator.
import {
  accessSync,
  constants as fsConstants,
  readFileSync,
  statSync,
  writeFileSync,
  type Stats as FileStats,
} from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import { once } from 'node:events';
import { toolParams } from '../cgi/params';
import { parseAddress as parseBackendAddress } from '../wire/address';
import { LoadDriver } from '../load/driver';
import { decodeLatencies, encodeLatencies, ms, percentileMs } from '../load/latency';
import { startModuleWorker } from '../load/module-worker';
import { startNullResponder } from '../load/null-responder';
import { runLoad, type LoadRun } from '../load/run';
import { LoadStats } from '../load/stats';
import { UsageError, parseAddress, parseCount, parseDuration, parseHeaderOptions } from './args';
import { percentileDistribution, renderLatencyPlot } from './latency-plot';

const HELP = `Usage: fastcgi-engine bench <address> [options]

Load-tests a FastCGI backend (php-fpm, a fastcgi-engine server, …). <address>: /path.sock, unix:/path,
host:port, tcp://host:port or a port.

Load:
  --connections N     connections (default 10)
  --threads N         spread the connections (and the rate) over N threads, each with its own event loop,
                      like wrk's -t (default 1)
  --multiplex K       requests in flight per connection (default 1; >1 needs a multiplexing backend)
  --duration T        how long: 10s, 500ms, 2m (default 10s)
  --requests N        stop after N requests instead (whichever of --duration/--requests comes first when both)
  --rate R            open loop: start R requests per second on schedule; latency is measured from the
                      intended start time (coordinated omission corrected). Without it: closed loop. Sends
                      are timed by a timerfd to the microsecond (Linux, with the addon; else the event
                      loop's ~1 ms timers, and the report says so); it shows how late each send was
                      (sender lag).
  --no-keep-conn      a new connection per request (default: kept connections, FCGI_KEEP_CONN)
Request:
  --method M          REQUEST_METHOD (default GET)
  --path P            REQUEST_URI (default /); SCRIPT_NAME and QUERY_STRING follow
  --header 'N: v'     an HTTP header (sent as HTTP_N); repeatable
  --params-file F     CGI params: a JSON object, or K=V lines (e.g. SCRIPT_FILENAME for php-fpm)
  --body-size N       send a body of N bytes
  --timeout MS        per-request timeout (default 30000)
Output:
  --json              print the final report as JSON on stdout
  --plot FILE         write the latency percentile plot (HdrHistogram style, log percentile axis) as SVG
  --calibrate         first run the same load (at most 3 s or 20000 requests) against a null responder in
                      this process and print its latency beside the results: the generator's own floor
  -h, --help          this text

Progress goes to stderr: one line refreshed in place on a terminal, a line a second otherwise.
Report: req/s, bytes/s (response bodies), latency p50/p90/p99/p99.9/max, counts by HTTP status, by
protocolStatus (REQUEST_COMPLETE for every answered request) and by error code. total = Σ status + Σ errors.
With --rate also the sender lag (actual − intended send time, p50/p99/max), and a warning on stderr when the
generator could not keep its schedule: that delay is then part of the latency figures.`;

export interface BenchSettings {
  address: ReturnType<typeof parseAddress>;
  connections: number;
  multiplex: number;
  durationMs: number | undefined;
  requests: number | undefined;
  rate: number | undefined;
  keepConn: boolean;
  method: string;
  path: string;
  params: Record<string, string>;
  body: Buffer | null;
  timeout: number;
  json: boolean;
  /** --plot, resolved to an absolute path whose directory was found writable. */
  plot: string | undefined;
  calibrate: boolean;
  /** Event loops (worker threads) the connections are spread over. */
  threads: number;
}

export interface BenchReport {
  address: string;
  mode: 'closed' | 'open';
  connections: number;
  /** Event loops the connections were spread over (--threads). */
  threads: number;
  multiplex: number;
  keepConn: boolean;
  rate: number | null;
  durationSeconds: number;
  total: number;
  completed: number;
  errors: number;
  requestsPerSecond: number;
  bytesPerSecond: number;
  bytes: number;
  latencyMs: { min: number; mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
  /** Open loop: actual − intended send time of each request (the generator's own lateness); null in closed loop. */
  senderLagMs: { p50: number; p99: number; max: number } | null;
  /** Open loop: what timed the sends ('timerfd': to the µs, with the addon; 'setTimeout': ~1 ms); null in closed loop. */
  scheduler: 'timerfd' | 'setTimeout' | null;
  /**
   * With --calibrate: the latency of the same load against a null responder in this process (a worker thread
   * answering at once over a unix socket), the floor of what this generator can measure here; else null.
   */
  floorMs: { p50: number; p99: number; p999: number; requestsPerSecond: number } | null;
  /** Where --plot wrote the SVG (absolute path), else null. */
  plot: string | null;
  status: Record<string, number>;
  protocolStatus: Record<string, number>;
  errorCodes: Record<string, number>;
}

function parseParamsFile(file: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`--params-file ${file}: ${(error as Error).message}`);
  }
  if (text.trimStart().startsWith('{')) {
    try {
      return Object.fromEntries(
        Object.entries(JSON.parse(text) as Record<string, unknown>).map(([k, v]) => [k, String(v)]),
      );
    } catch (error) {
      throw new UsageError(`--params-file ${file}: not valid JSON: ${(error as Error).message}`);
    }
  }
  const params: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new UsageError(`--params-file ${file}: expected K=V, got '${line}'`);
    params[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  return params;
}

function parseBenchArgs(argv: string[]): BenchSettings | null {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      connections: { type: 'string', short: 'c' },
      multiplex: { type: 'string' },
      duration: { type: 'string', short: 'd' },
      requests: { type: 'string', short: 'n' },
      rate: { type: 'string', short: 'R' },
      'no-keep-conn': { type: 'boolean' },
      method: { type: 'string' },
      path: { type: 'string' },
      header: { type: 'string', multiple: true },
      'params-file': { type: 'string' },
      'body-size': { type: 'string' },
      timeout: { type: 'string' },
      json: { type: 'boolean' },
      plot: { type: 'string' },
      calibrate: { type: 'boolean' },
      threads: { type: 'string', short: 't' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return null;
  if (positionals.length !== 1)
    throw new UsageError(
      positionals.length === 0 ? 'missing <address>' : `expected one address, got ${positionals.length} arguments`,
    );
  const path = values.path ?? '/';
  if (!path.startsWith('/')) throw new UsageError(`--path must start with '/', got '${path}'`);
  const method = (values.method ?? 'GET').toUpperCase();
  const bodySize = parseCount('body-size', values['body-size'], 0) ?? 0;
  // CONTENT_LENGTH is the driver's to set, from the body it sends.
  const params = Object.fromEntries(
    toolParams({
      software: 'fastcgi-engine-bench',
      method,
      uri: path,
      contentType: bodySize > 0 ? 'application/octet-stream' : undefined,
      headers: parseHeaderOptions(values.header ?? []),
    }),
  );
  if (values['params-file'] !== undefined) Object.assign(params, parseParamsFile(values['params-file']));
  const requests = parseCount('requests', values.requests, 1);
  const durationMs = parseDuration('duration', values.duration) ?? (requests === undefined ? 10_000 : undefined);
  if (durationMs !== undefined && durationMs <= 0) throw new UsageError('--duration must be more than 0');
  const rate = values.rate === undefined ? undefined : Number(values.rate);
  if (rate !== undefined && !(rate > 0))
    throw new UsageError(`--rate expects a number of requests per second > 0, got '${values.rate}'`);
  return {
    address: parseAddress(positionals[0]),
    connections: parseCount('connections', values.connections, 1) ?? 10,
    multiplex: parseCount('multiplex', values.multiplex, 1) ?? 1,
    durationMs,
    requests,
    rate,
    keepConn: values['no-keep-conn'] !== true,
    method,
    path,
    params,
    body: bodySize > 0 ? Buffer.alloc(bodySize, 0x61) : null,
    timeout: parseCount('timeout', values.timeout, 1) ?? 30_000,
    json: values.json === true,
    plot: values.plot === undefined ? undefined : checkPlotPath(values.plot),
    calibrate: values.calibrate === true,
    threads: parseCount('threads', values.threads, 1) ?? 1,
  };
}

/**
 * checkPlotPath fails before the load starts, as a usage error (exit 2), when the --plot file could not be
 * written: its directory missing or not writable, or the path naming a directory or a read-only file.
 */
function checkPlotPath(file: string): string {
  if (file === '') throw new UsageError('--plot expects a file name, e.g. --plot latency.svg');
  const path = resolvePath(file);
  const existing = statOrNull(path);
  if (existing !== null) {
    if (existing.isDirectory())
      throw new UsageError(
        `--plot ${file}: is a directory; give a file name, e.g. ${file.replace(/\/+$/, '')}/latency.svg`,
      );
    try {
      accessSync(path, fsConstants.W_OK);
    } catch {
      throw new UsageError(`--plot ${file}: the file exists and cannot be written (permission denied)`);
    }
    return path;
  }
  const dir = dirname(path);
  const parent = statOrNull(dir);
  if (parent === null) throw new UsageError(`--plot ${file}: directory ${dir} does not exist`);
  if (!parent.isDirectory()) throw new UsageError(`--plot ${file}: ${dir} is not a directory`);
  try {
    accessSync(dir, fsConstants.W_OK | fsConstants.X_OK);
  } catch {
    throw new UsageError(`--plot ${file}: cannot create files in ${dir} (permission denied)`);
  }
  return path;
}

function statOrNull(path: string): FileStats | null {
  try {
    return statSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    if ((error as NodeJS.ErrnoException).code === 'ENOTDIR')
      throw new UsageError(`--plot ${path}: a parent of it is not a directory`);
    throw new UsageError(`--plot ${path}: ${(error as Error).message}`);
  }
}

/** The params, encoded once by the driver; CONTENT_LENGTH is the driver's to set from the body. */
function paramPairs(settings: BenchSettings): [string, string][] {
  return Object.entries(settings.params).filter(([name]) => name !== 'CONTENT_LENGTH');
}

/** Open loop: above this sender lag at p99 (µs) the report warns that the schedule was not kept. */
const LAG_WARN_US = 2000;

function report(
  settings: BenchSettings,
  stats: LoadStats,
  elapsedUs: number,
  plot: string | null,
  scheduler: BenchReport['scheduler'] = null,
): BenchReport {
  const seconds = elapsedUs / 1e6;
  const h = stats.histogram;
  const empty = h.totalCount === 0;
  const lag = stats.senderLag;
  const protocolStatus: Record<string, number> = {};
  if (stats.answered > 0) protocolStatus.REQUEST_COMPLETE = stats.answered;
  for (const [name, n] of stats.protocolStatus) protocolStatus[name] = (protocolStatus[name] ?? 0) + n;
  return {
    address: settings.address.label,
    mode: settings.rate === undefined ? 'closed' : 'open',
    connections: settings.connections,
    threads: settings.threads,
    multiplex: settings.multiplex,
    keepConn: settings.keepConn,
    rate: settings.rate ?? null,
    durationSeconds: Math.round(seconds * 1000) / 1000,
    total: stats.total,
    completed: stats.answered,
    errors: stats.errors,
    requestsPerSecond: Math.round((stats.total / seconds) * 10) / 10,
    bytesPerSecond: Math.round(stats.bytes / seconds),
    bytes: stats.bytes,
    latencyMs: {
      min: empty ? 0 : ms(h.minNonZeroValue),
      mean: empty ? 0 : ms(h.mean),
      p50: percentileMs(h, 50),
      p90: percentileMs(h, 90),
      p99: percentileMs(h, 99),
      p999: percentileMs(h, 99.9),
      max: ms(h.maxValue),
    },
    senderLagMs:
      settings.rate === undefined
        ? null
        : { p50: percentileMs(lag, 50), p99: percentileMs(lag, 99), max: ms(lag.maxValue) },
    scheduler: settings.rate === undefined ? null : scheduler,
    floorMs: null,
    plot,
    status: Object.fromEntries([...stats.status].map(([code, n]) => [String(code), n])),
    protocolStatus,
    errorCodes: Object.fromEntries(stats.errorCodes),
  };
}

function describeMode(r: BenchReport): string {
  return r.mode === 'open' ? `open loop at ${r.rate} req/s` : 'closed loop';
}

function formatReport(r: BenchReport): string {
  const counts = (m: Record<string, number>): string =>
    Object.keys(m).length === 0
      ? '-'
      : Object.entries(m)
          .map(([k, v]) => `${k}: ${v}`)
          .join(', ');
  const mb = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} kB`);
  const lines = [
    `${describeMode(r)} against ${r.address}: ${r.connections} connection(s) × ${r.multiplex} in flight${r.threads > 1 ? ` on ${r.threads} threads` : ''}, ${r.keepConn ? 'kept connections' : 'a connection per request'}`,
    `  ${r.total} requests in ${r.durationSeconds} s: ${r.requestsPerSecond} req/s, ${mb(r.bytesPerSecond)}/s (${mb(r.bytes)} of bodies)`,
    `  latency ms: p50 ${r.latencyMs.p50}  p90 ${r.latencyMs.p90}  p99 ${r.latencyMs.p99}  p99.9 ${r.latencyMs.p999}  max ${r.latencyMs.max}  (mean ${r.latencyMs.mean.toFixed(3)})${r.mode === 'open' ? '  [from the intended start]' : ''}`,
  ];
  if (r.senderLagMs !== null) {
    const how =
      r.scheduler === 'timerfd'
        ? 'sends timed by a timerfd, to the µs'
        : 'sends timed by setTimeout (~1 ms; the addon did not load): part of the latency is the generator';
    lines.push(
      `  sender lag ms: p50 ${r.senderLagMs.p50}  p99 ${r.senderLagMs.p99}  max ${r.senderLagMs.max}  [actual − intended send time; ${how}]`,
    );
  }
  lines.push(
    `  status: ${counts(r.status)}`,
    `  protocolStatus: ${counts(r.protocolStatus)}`,
    `  errors: ${counts(r.errorCodes)}`,
  );
  if (r.floorMs !== null) {
    lines.push(
      `  generator floor ms: p50 ${r.floorMs.p50}  p99 ${r.floorMs.p99}  p99.9 ${r.floorMs.p999}  [the same load against a null responder in this process, ${r.floorMs.requestsPerSecond} req/s]`,
    );
  }
  if (r.plot !== null) lines.push(`  plot: ${r.plot}`);
  return lines.join('\n');
}

function plotSvg(r: BenchReport, stats: LoadStats): string {
  const l = r.latencyMs;
  const lag = r.senderLagMs === null ? '' : ` (from the intended start; sender lag p99 ${r.senderLagMs.p99} ms)`;
  return renderLatencyPlot({
    title: `${describeMode(r)} against ${r.address}: ${r.requestsPerSecond} req/s`,
    subtitle: [
      `${r.total} requests in ${r.durationSeconds} s, ${r.connections} connection(s) × ${r.multiplex} in flight, ${r.errors} error(s)`,
      `latency ms: p50 ${l.p50}, p90 ${l.p90}, p99 ${l.p99}, p99.9 ${l.p999}, max ${l.max}${lag}`,
    ],
    count: stats.histogram.totalCount,
    points: percentileDistribution(stats.histogram, 1000),
    floorMs: r.floorMs?.p50,
  });
}

/** One load run: the outcomes, how long it took (µs) and what timed open-loop sends. */
interface Measured {
  stats: LoadStats;
  elapsed: number;
  scheduler: BenchReport['scheduler'];
}

async function measure(settings: BenchSettings, progressLines: boolean): Promise<Measured> {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  const run: LoadRun = await runLoad(
    (sink) =>
      new LoadDriver(
        {
          address: settings.address,
          connections: settings.connections,
          perConnection: settings.multiplex,
          keepConn: settings.keepConn,
          params: paramPairs(settings),
          body: settings.body,
          timeoutMs: settings.timeout,
        },
        sink,
      ),
    {
      concurrency: settings.connections * (settings.keepConn ? settings.multiplex : 1),
      rate: settings.rate,
      durationMs: settings.durationMs,
      requests: settings.requests,
      onProgress: progressLines
        ? (stats, elapsedUs) => {
            const rate = stats.windowCount / ((elapsedUs - last) / 1e6);
            stats.windowCount = 0;
            last = elapsedUs;
            const line = `${(elapsedUs / 1e6).toFixed(1)} s: ${stats.total} done, ${Math.round(rate)} req/s, p99 ${percentileMs(stats.histogram, 99)} ms, errors ${stats.errors}`;
            process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
          }
        : undefined,
    },
  );
  if (tty && progressLines) process.stderr.write('\r\x1b[K');
  return { stats: run.stats, elapsed: run.elapsedUs, scheduler: run.scheduler };
}

/** What a thread sends back: its outcomes, histograms encoded (hdr's compressed base64). */
export interface ShareResult {
  histogram: string;
  senderLag: string;
  status: [number, number][];
  protocolStatus: [string, number][];
  errorCodes: [string, number][];
  answered: number;
  errors: number;
  bytes: number;
  elapsed: number;
  scheduler: BenchReport['scheduler'];
}

/** Runs one thread's share (bench-thread.ts). */
export async function measureShare(settings: BenchSettings): Promise<ShareResult> {
  // Structured clone turned the body Buffer into a Uint8Array.
  const share = { ...settings, body: settings.body === null ? null : Buffer.from(settings.body) };
  const { stats, elapsed, scheduler } = await measure(share, false);
  return {
    histogram: encodeLatencies(stats.histogram),
    senderLag: encodeLatencies(stats.senderLag),
    status: [...stats.status],
    protocolStatus: [...stats.protocolStatus],
    errorCodes: [...stats.errorCodes],
    answered: stats.answered,
    errors: stats.errors,
    bytes: stats.bytes,
    elapsed,
    scheduler,
  };
}

/** Splits `total` into `n` near-equal integer parts, the larger first. */
function split(total: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
}

/** --threads N: each thread a share of the load; their histograms and counts merged into one result. */
async function measureThreaded(settings: BenchSettings): Promise<Measured> {
  const n = settings.threads;
  const connections = split(settings.connections, n);
  const requests = settings.requests === undefined ? null : split(settings.requests, n);
  const shares: BenchSettings[] = connections.map((c, i) => ({
    ...settings,
    threads: 1,
    plot: undefined,
    calibrate: false,
    connections: c,
    requests: requests === null ? undefined : requests[i]!,
    rate: settings.rate === undefined ? undefined : settings.rate / n,
  }));
  const results = await Promise.all(
    shares.map(async (share) => {
      const worker = startModuleWorker(__filename.replace(/bench(\.[cm]?[jt]s)$/, 'bench-thread$1'), share);
      const [result] = (await once(worker, 'message')) as [ShareResult];
      await worker.terminate();
      return result;
    }),
  );
  const stats = new LoadStats();
  let elapsed = 0;
  for (const r of results) {
    stats.histogram.add(decodeLatencies(r.histogram));
    stats.senderLag.add(decodeLatencies(r.senderLag));
    for (const [k, v] of r.status) stats.status.set(k, (stats.status.get(k) ?? 0) + v);
    for (const [k, v] of r.protocolStatus) stats.protocolStatus.set(k, (stats.protocolStatus.get(k) ?? 0) + v);
    for (const [k, v] of r.errorCodes) stats.errorCodes.set(k, (stats.errorCodes.get(k) ?? 0) + v);
    stats.answered += r.answered;
    stats.errors += r.errors;
    stats.bytes += r.bytes;
    stats.total += r.answered + r.errors;
    elapsed = Math.max(elapsed, r.elapsed);
  }
  return { stats, elapsed, scheduler: results[0]?.scheduler ?? null };
}

/** --calibrate runs this long (or this many requests) at most against the null responder. */
const CALIBRATE_MAX_MS = 3000;
const CALIBRATE_MAX_REQUESTS = 20_000;

/** The same load against the null responder, shortened: the generator's floor. */
async function calibrate(settings: BenchSettings): Promise<NonNullable<BenchReport['floorMs']>> {
  const responder = await startNullResponder();
  try {
    const durationMs = settings.durationMs === undefined ? undefined : Math.min(settings.durationMs, CALIBRATE_MAX_MS);
    const requests = settings.requests === undefined ? undefined : Math.min(settings.requests, CALIBRATE_MAX_REQUESTS);
    const { stats, elapsed } = await measure(
      {
        ...settings,
        address: parseBackendAddress({ path: responder.path }),
        durationMs,
        requests,
        params: { ...settings.params },
      },
      false,
    );
    const h = stats.histogram;
    return {
      p50: percentileMs(h, 50),
      p99: percentileMs(h, 99),
      p999: percentileMs(h, 99.9),
      requestsPerSecond: Math.round(stats.total / (elapsed / 1e6)),
    };
  } finally {
    await responder.close();
  }
}

export async function run(argv: string[]): Promise<number> {
  const settings = parseBenchArgs(argv);
  if (settings === null) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (settings.threads > settings.connections)
    throw new UsageError(
      `--threads ${settings.threads} needs at least as many connections (--connections ${settings.connections})`,
    );
  const floor = settings.calibrate ? await calibrate(settings) : null;
  const { stats, elapsed, scheduler } =
    settings.threads > 1 ? await measureThreaded(settings) : await measure(settings, true);

  let result = { ...report(settings, stats, elapsed, null, scheduler), floorMs: floor };
  let code = result.errors > 0 && result.completed === 0 ? 1 : 0;
  if (settings.plot !== undefined) {
    try {
      writeFileSync(settings.plot, plotSvg(result, stats));
      result = { ...result, plot: settings.plot };
    } catch (error) {
      process.stderr.write(
        `fastcgi-engine bench: could not write --plot ${settings.plot}: ${(error as Error).message}\n`,
      );
      code = 1;
    }
  }
  // Latency is timed from the intended start, so the generator's own lateness is inside every latency figure.
  // Up to about a millisecond of it is the timers' granularity and expected at high rates; warn past twice that,
  // where the generator itself fell behind (no CPU to spare, a GC pause) and the high percentiles start to
  // describe it rather than the backend.
  const lag = result.senderLagMs;
  if (lag !== null && stats.senderLag.getValueAtPercentile(99) > LAG_WARN_US) {
    process.stderr.write(
      `fastcgi-engine bench: warning: the sender could not keep the schedule (sender lag p99 ${lag.p99} ms, max ${lag.max} ms): ` +
        'latency includes up to that much of the generator’s own delay. Lower --rate, or run the generator where it has a core to itself.\n',
    );
  }
  process.stdout.write(settings.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatReport(result)}\n`);
  return code;
}
