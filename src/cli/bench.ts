// `fastcgi-engine bench <address>`: a FastCGI load generator on the public client. Closed loop (N connections ×
// K in flight, as fast as answers come) or open loop (--rate: requests start on a schedule whether or not the
// backend keeps up, and latency counts from the intended start, so queueing is not hidden: coordinated
// omission corrected). Latency goes into an HDR histogram (hdr-histogram-js), in microseconds.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as hdr from 'hdr-histogram-js';
import { BackendError, ProtocolStatus, createClient, type Client, type FastCGIError } from '../index';
import { UsageError, describeAddress, parseAddress, parseCount, parseDuration } from './args';

const HELP = `Usage: fastcgi-engine bench <address> [options]

Load-tests a FastCGI backend (php-fpm, a fastcgi-engine server, …). <address>: /path.sock, unix:/path,
host:port, tcp://host:port or a port.

Load:
  --connections N     connections (default 10)
  --multiplex K       requests in flight per connection (default 1; >1 needs a multiplexing backend)
  --duration T        how long: 10s, 500ms, 2m (default 10s)
  --requests N        stop after N requests instead (whichever of --duration/--requests comes first when both)
  --rate R            open loop: start R requests per second on schedule; latency is measured from the
                      intended start time (coordinated omission corrected). Without it: closed loop.
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
  -h, --help          this text

Progress goes to stderr: one line refreshed in place on a terminal, a line a second otherwise.
Report: req/s, bytes/s (response bodies), latency p50/p90/p99/p99.9/max, counts by HTTP status, by
protocolStatus (REQUEST_COMPLETE for every answered request) and by error code. total = Σ status + Σ errors.`;

const PROTOCOL_STATUS_NAMES: Record<number, string> = Object.fromEntries(Object.entries(ProtocolStatus).map(([k, v]) => [v, k]));

interface BenchSettings {
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
}

export interface BenchReport {
  address: string;
  mode: 'closed' | 'open';
  connections: number;
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
      return Object.fromEntries(Object.entries(JSON.parse(text) as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
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
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return null;
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'missing <address>' : `expected one address, got ${positionals.length} arguments`);
  const path = values.path ?? '/';
  if (!path.startsWith('/')) throw new UsageError(`--path must start with '/', got '${path}'`);
  const method = (values.method ?? 'GET').toUpperCase();
  const bodySize = parseCount('body-size', values['body-size'], 0) ?? 0;
  const q = path.indexOf('?');
  const params: Record<string, string> = {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: 'localhost',
    SERVER_PORT: '80',
    REMOTE_ADDR: '127.0.0.1',
    REQUEST_METHOD: method,
    REQUEST_URI: path,
    SCRIPT_NAME: q === -1 ? path : path.slice(0, q),
    QUERY_STRING: q === -1 ? '' : path.slice(q + 1),
    HTTP_HOST: 'localhost',
  };
  if (bodySize > 0) params.CONTENT_TYPE = 'application/octet-stream';
  for (const header of values.header ?? []) {
    const colon = header.indexOf(':');
    if (colon <= 0) throw new UsageError(`--header expects 'Name: value', got '${header}'`);
    const name = header.slice(0, colon).trim();
    params[name.toLowerCase() === 'content-type' ? 'CONTENT_TYPE' : `HTTP_${name.toUpperCase().replace(/-/g, '_')}`] = header.slice(colon + 1).trim();
  }
  if (values['params-file'] !== undefined) Object.assign(params, parseParamsFile(values['params-file']));
  const requests = parseCount('requests', values.requests, 1);
  const durationMs = parseDuration('duration', values.duration) ?? (requests === undefined ? 10_000 : undefined);
  if (durationMs !== undefined && durationMs <= 0) throw new UsageError('--duration must be more than 0');
  const rate = values.rate === undefined ? undefined : Number(values.rate);
  if (rate !== undefined && !(rate > 0)) throw new UsageError(`--rate expects a number of requests per second > 0, got '${values.rate}'`);
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
  };
}

class Stats {
  readonly histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
  readonly status = new Map<string, number>();
  readonly protocolStatus = new Map<string, number>();
  readonly errorCodes = new Map<string, number>();
  total = 0;
  completed = 0;
  errors = 0;
  bytes = 0;
  /** Since the last progress line. */
  windowCount = 0;

  static bump(map: Map<string, number>, key: string): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }

  record(latencyUs: number): void {
    this.histogram.recordValue(Math.max(1, Math.round(latencyUs)));
    this.total++;
    this.windowCount++;
  }
}

/** Sends one request, reads the whole body, and records the outcome; latency counts from `startedAt` (µs clock). */
async function once(client: Client, settings: BenchSettings, stats: Stats, startedAt: number): Promise<void> {
  try {
    const response = await client.request({ params: settings.params, body: settings.body, requestTimeout: settings.timeout, bodyTimeout: settings.timeout });
    for await (const chunk of response.body) stats.bytes += (chunk as Buffer).length;
    const completion = await response.completed;
    stats.completed++;
    Stats.bump(stats.status, String(response.status));
    Stats.bump(stats.protocolStatus, PROTOCOL_STATUS_NAMES[completion.protocolStatus] ?? String(completion.protocolStatus));
  } catch (error) {
    stats.errors++;
    if (error instanceof BackendError) Stats.bump(stats.protocolStatus, PROTOCOL_STATUS_NAMES[error.protocolStatus] ?? String(error.protocolStatus));
    const code = (error as FastCGIError).code ?? (error as Error).name;
    Stats.bump(stats.errorCodes, String(code));
  }
  stats.record(nowUs() - startedAt);
}

function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

function ms(us: number): number {
  return Math.round(us) / 1000;
}

function report(settings: BenchSettings, stats: Stats, elapsedUs: number): BenchReport {
  const seconds = elapsedUs / 1e6;
  const h = stats.histogram;
  const empty = h.totalCount === 0;
  return {
    address: describeAddress(settings.address),
    mode: settings.rate === undefined ? 'closed' : 'open',
    connections: settings.connections,
    multiplex: settings.multiplex,
    keepConn: settings.keepConn,
    rate: settings.rate ?? null,
    durationSeconds: Math.round(seconds * 1000) / 1000,
    total: stats.total,
    completed: stats.completed,
    errors: stats.errors,
    requestsPerSecond: Math.round((stats.total / seconds) * 10) / 10,
    bytesPerSecond: Math.round(stats.bytes / seconds),
    bytes: stats.bytes,
    latencyMs: {
      min: empty ? 0 : ms(h.minNonZeroValue),
      mean: empty ? 0 : ms(h.mean),
      p50: ms(h.getValueAtPercentile(50)),
      p90: ms(h.getValueAtPercentile(90)),
      p99: ms(h.getValueAtPercentile(99)),
      p999: ms(h.getValueAtPercentile(99.9)),
      max: ms(h.maxValue),
    },
    status: Object.fromEntries(stats.status),
    protocolStatus: Object.fromEntries(stats.protocolStatus),
    errorCodes: Object.fromEntries(stats.errorCodes),
  };
}

function formatReport(r: BenchReport): string {
  const counts = (m: Record<string, number>): string => (Object.keys(m).length === 0 ? '-' : Object.entries(m).map(([k, v]) => `${k}: ${v}`).join(', '));
  const mb = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} kB`);
  return [
    `${r.mode === 'open' ? `open loop at ${r.rate} req/s` : 'closed loop'} against ${r.address}: ${r.connections} connection(s) × ${r.multiplex} in flight, ${r.keepConn ? 'kept connections' : 'a connection per request'}`,
    `  ${r.total} requests in ${r.durationSeconds} s: ${r.requestsPerSecond} req/s, ${mb(r.bytesPerSecond)}/s (${mb(r.bytes)} of bodies)`,
    `  latency ms: p50 ${r.latencyMs.p50}  p90 ${r.latencyMs.p90}  p99 ${r.latencyMs.p99}  p99.9 ${r.latencyMs.p999}  max ${r.latencyMs.max}  (mean ${r.latencyMs.mean.toFixed(3)})${r.mode === 'open' ? '  [from the intended start]' : ''}`,
    `  status: ${counts(r.status)}`,
    `  protocolStatus: ${counts(r.protocolStatus)}`,
    `  errors: ${counts(r.errorCodes)}`,
  ].join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const settings = parseBenchArgs(argv);
  if (settings === null) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const client = createClient({
    address: settings.address,
    poolSize: settings.connections,
    keepConn: settings.keepConn,
    multiplex: settings.multiplex > 1,
    maxRequestsPerConnection: settings.multiplex,
    queueLimit: 1_000_000,
    connectRetryWindow: 0,
    requestTimeout: settings.timeout,
    bodyTimeout: settings.timeout,
  });
  const stats = new Stats();
  const start = nowUs();
  const deadline = settings.durationMs === undefined ? Infinity : start + settings.durationMs * 1000;
  const limit = settings.requests ?? Infinity;
  let issued = 0;
  const more = (): boolean => issued < limit && nowUs() < deadline;

  const tty = process.stderr.isTTY === true;
  let lastTick = start;
  const progress = setInterval(() => {
    const now = nowUs();
    const rate = stats.windowCount / ((now - lastTick) / 1e6);
    stats.windowCount = 0;
    lastTick = now;
    const line = `${((now - start) / 1e6).toFixed(1)} s: ${stats.total} done, ${Math.round(rate)} req/s, p99 ${ms(stats.histogram.getValueAtPercentile(99))} ms, errors ${stats.errors}`;
    process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
  }, 1000);

  if (settings.rate === undefined) {
    const loop = async (): Promise<void> => {
      while (more()) {
        issued++;
        await once(client, settings, stats, nowUs());
      }
    };
    await Promise.all(Array.from({ length: settings.connections * settings.multiplex }, loop));
  } else {
    const interval = 1e6 / settings.rate;
    const inFlight = new Set<Promise<void>>();
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = nowUs();
        // Start every request whose intended time has come; each is timed from that intended time.
        while (issued < limit) {
          const intended = start + issued * interval;
          if (intended > now || intended >= deadline) break;
          issued++;
          const p = once(client, settings, stats, intended);
          inFlight.add(p);
          void p.then(() => inFlight.delete(p));
        }
        const nextIntended = start + issued * interval;
        if (issued >= limit || nextIntended >= deadline) return resolve();
        setTimeout(tick, Math.max(0, Math.min(10, (nextIntended - nowUs()) / 1000)));
      };
      tick();
    });
    await Promise.all(inFlight);
  }
  clearInterval(progress);
  if (tty) process.stderr.write('\r\x1b[K');
  const elapsed = nowUs() - start;
  await client.close();
  const result = report(settings, stats, elapsed);
  process.stdout.write(settings.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatReport(result)}\n`);
  return result.errors > 0 && result.completed === 0 ? 1 : 0;
}
