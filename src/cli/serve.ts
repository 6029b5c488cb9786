// `fastcgi-engine serve <module>`: loads an application module, detects its kind, and serves it over FastCGI on
// a unix socket, a TCP port or the socket the web server / systemd passed in; optionally with worker processes
// (node:cluster, the Supervisor) and an HTTP gateway in front for local debugging.
import cluster from 'node:cluster';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError, parseCount, parseDuration } from './args';
import { runSingle, runWorker } from './serve-process';
import { SETTINGS_ENV, type AppKind, type ServeSettings, type Where } from './serve-settings';
import { Supervisor } from './supervisor';

const HELP = `Usage: fastcgi-engine serve <module> [options]

Runs the application exported by <module> as a FastCGI application.

What the module may export (its default export, else module.exports, else a named 'fetch' or 'handler'):
  - an object with a fetch(request) method          → fetch handler (export default { fetch })
  - a Koa app (an object with a callback() method)  → app.callback()
  - an Express/Connect app (a function with .handle) → used as (req, res)
  - a function declaring 2 or more parameters        → http-style (req, res) handler
  - a function declaring 0 or 1 parameter            → fetch handler: (request) => Response
  --kind fetch|node overrides the guess (e.g. for a fetch handler declared as (request, context)).

Where it listens (one of):
  --socket PATH [--socket-mode 0660]   a unix socket (a stale socket file is removed)
  --port N [--host H]                  TCP (host default 127.0.0.1)
  (none)                               fd 0 or systemd's socket, when spawned by a web server / process manager

Options:
  --workers N          N worker processes sharing the socket (node:cluster); crashed workers restart with backoff
  --max-requests N     with --workers: replace a worker after it has served N requests
  --drain-timeout T    SIGTERM: let in-flight requests finish for up to T (default 30s), then exit 0
  --http PORT          also serve HTTP on 127.0.0.1:PORT through the built-in gateway (needs --socket or --port)
  --document-root DIR  the gateway's document root (default the current directory)
  --status-path P      answer REQUEST_URI P with the status page (php-fpm's pm.status_path): text, ?json,
                       ?openmetrics, ?prometheus; ?full adds one entry per worker
  --ping-path P        answer REQUEST_URI P with --ping-response (default 'pong'; php-fpm's ping.path)
  --slow-request-threshold T  count requests slower than T as 'slow requests' (default off)
  --access-log FILE|-  append one line per request (status, bytes, duration, method, URI); - for stdout
  --access-log-format common|json  the line format (default common: the common log format + seconds taken)
  -h, --help           this text

Signals: SIGTERM/SIGINT drain and exit 0, whatever else the application holds open (its own server, a pool, a
timer); SIGHUP (with --workers) replaces the workers one by one with fresh ones loading the module again,
without dropping a request.`;

function parseServeArgs(argv: string[]): ServeSettings | null {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      socket: { type: 'string' },
      'socket-mode': { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      workers: { type: 'string' },
      'max-requests': { type: 'string' },
      'drain-timeout': { type: 'string' },
      http: { type: 'string' },
      'document-root': { type: 'string' },
      kind: { type: 'string' },
      'status-path': { type: 'string' },
      'ping-path': { type: 'string' },
      'ping-response': { type: 'string' },
      'slow-request-threshold': { type: 'string' },
      'access-log': { type: 'string' },
      'access-log-format': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return null;
  if (positionals.length !== 1)
    throw new UsageError(
      positionals.length === 0 ? 'missing <module>' : `expected one module, got ${positionals.length} arguments`,
    );
  if (values.socket !== undefined && values.port !== undefined)
    throw new UsageError('give --socket or --port, not both');
  if (values.host !== undefined && values.port === undefined) throw new UsageError('--host needs --port');
  if (values['socket-mode'] !== undefined && values.socket === undefined)
    throw new UsageError('--socket-mode needs --socket');
  let socketMode: number | undefined;
  if (values['socket-mode'] !== undefined) {
    if (!/^0?[0-7]{3}$/.test(values['socket-mode']))
      throw new UsageError(`--socket-mode expects an octal mode such as 0660, got '${values['socket-mode']}'`);
    socketMode = Number.parseInt(values['socket-mode'], 8);
  }
  const port = parseCount('port', values.port, 1);
  if (port !== undefined && port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
  const where: Where =
    values.socket !== undefined
      ? { kind: 'socket', path: resolve(values.socket) }
      : port !== undefined
        ? { kind: 'port', port, host: values.host ?? '127.0.0.1' }
        : { kind: 'inherited' };
  const httpPort = parseCount('http', values.http, 1);
  if (httpPort !== undefined && where.kind === 'inherited')
    throw new UsageError('--http needs --socket or --port (the gateway must know where to connect)');
  if (values.kind !== undefined && values.kind !== 'fetch' && values.kind !== 'node')
    throw new UsageError(`--kind expects fetch or node, got '${values.kind}'`);
  const workers = parseCount('workers', values.workers, 1) ?? 0;
  const maxRequests = parseCount('max-requests', values['max-requests'], 1);
  if (maxRequests !== undefined && workers === 0) throw new UsageError('--max-requests needs --workers');
  for (const name of ['status-path', 'ping-path'] as const) {
    const path = values[name];
    if (path !== undefined && !path.startsWith('/'))
      throw new UsageError(`--${name} expects a path starting with /, got '${path}'`);
  }
  if (values['ping-response'] !== undefined && values['ping-path'] === undefined)
    throw new UsageError('--ping-response needs --ping-path');
  const logFormat = values['access-log-format'];
  if (logFormat !== undefined && logFormat !== 'common' && logFormat !== 'json')
    throw new UsageError(`--access-log-format expects common or json, got '${logFormat}'`);
  if (logFormat !== undefined && values['access-log'] === undefined)
    throw new UsageError('--access-log-format needs --access-log');
  const accessLog = values['access-log'];
  return {
    statusPath: values['status-path'],
    pingPath: values['ping-path'],
    pingResponse: values['ping-response'],
    slowRequestThreshold: parseDuration('slow-request-threshold', values['slow-request-threshold']),
    accessLog: accessLog === undefined || accessLog === '-' ? accessLog : resolve(accessLog),
    accessLogFormat: logFormat as 'common' | 'json' | undefined,
    module: resolve(positionals[0]!),
    where,
    socketMode,
    workers,
    maxRequests,
    drainTimeout: parseDuration('drain-timeout', values['drain-timeout']) ?? 30_000,
    http: httpPort,
    documentRoot: resolve(values['document-root'] ?? '.'),
    kind: values.kind as AppKind | undefined,
  };
}

/**
 * Ends the process once `running` settles, as php-fpm and gunicorn do after a stop: whatever the application
 * still holds (a server it started itself, a database pool, a timer) would otherwise keep it up after the drain
 * until a supervisor killed it.
 */
function exitWhenSettled(running: Promise<number>): Promise<number> {
  return running.then(
    (code) => process.exit(code),
    (error: unknown) => {
      // main() reports the error and sets the exit code in the microtasks that follow; exit after it has.
      setImmediate(() => process.exit());
      throw error;
    },
  );
}

export async function run(argv: string[]): Promise<number> {
  if (cluster.isWorker && process.env[SETTINGS_ENV] !== undefined) {
    return exitWhenSettled(runWorker(JSON.parse(process.env[SETTINGS_ENV]) as ServeSettings));
  }
  const settings = parseServeArgs(argv);
  if (settings === null) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  return exitWhenSettled(settings.workers > 0 ? new Supervisor(settings).run() : runSingle(settings));
}
