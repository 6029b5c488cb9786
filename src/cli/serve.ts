// `fastcgi-engine serve <module>`: loads an application module, detects its kind, and serves it over FastCGI on
// a unix socket, a TCP port or the socket the web server / systemd passed in; optionally with worker processes
// (node:cluster) and an HTTP gateway in front for local debugging.
import cluster, { type Worker } from 'node:cluster';
import { fstatSync, chmodSync } from 'node:fs';
import * as http from 'node:http';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createGateway, createServer, serve, type FetchHandler, type RequestListener, type Server, type ServerOptions } from '../index';
import { prepareSocketPath } from '../server/listen';
import { EXIT_USAGE, UsageError, parseCount, parseDuration } from './args';

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
  -h, --help           this text

Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP (with --workers) replaces the workers one by one with fresh
ones loading the module again, without dropping a request.`;

const CLI_HOW_TO_RUN = `With fastcgi-engine serve: --socket /run/app.sock, --port 9000 [--host 127.0.0.1], or no address when a web
server, process manager or systemd starts it with the listening socket (see 'fastcgi-engine serve --help').`;

export type AppKind = 'fetch' | 'node';

/** detectApp picks the handler out of a loaded module and says which kind it is (the rule in HELP). */
export function detectApp(loaded: unknown, force?: AppKind): { kind: 'fetch'; handler: FetchHandler } | { kind: 'node'; handler: RequestListener } {
  const mod = loaded as Record<string, unknown>;
  let candidate: unknown = mod.default ?? mod;
  // CommonJS compiled from ESM: module.exports.default, seen through import() as default.default.
  if (candidate !== null && typeof candidate === 'object' && 'default' in candidate && !('fetch' in candidate) && !('callback' in candidate)) {
    candidate = (candidate as { default: unknown }).default;
  }
  if ((candidate === null || typeof candidate !== 'object' || !('fetch' in candidate)) && typeof candidate !== 'function') {
    candidate = mod.fetch ?? mod.handler ?? candidate;
    if (typeof mod.fetch === 'function') return { kind: 'fetch', handler: mod.fetch as FetchHandler };
  }
  if (candidate !== null && typeof candidate === 'object') {
    const obj = candidate as Record<string, unknown>;
    if (typeof obj.fetch === 'function') return { kind: 'fetch', handler: { fetch: (obj.fetch as (r: Request) => Response).bind(obj) } };
    if (typeof obj.callback === 'function') return { kind: 'node', handler: (obj.callback as () => RequestListener).call(obj) };
  }
  if (typeof candidate === 'function') {
    const fn = candidate as ((...args: unknown[]) => unknown) & { handle?: unknown };
    if (force === 'fetch') return { kind: 'fetch', handler: fn as FetchHandler };
    if (force === 'node' || typeof fn.handle === 'function' || fn.length >= 2) return { kind: 'node', handler: fn as RequestListener };
    return { kind: 'fetch', handler: fn as FetchHandler };
  }
  throw new UsageError('the module exports no handler: export a (req, res) function, an Express/Koa app, or a fetch handler (export default { fetch })');
}

type Where = { kind: 'socket'; path: string } | { kind: 'port'; port: number; host: string } | { kind: 'inherited'; fd?: number };

interface ServeSettings {
  module: string;
  where: Where;
  socketMode: number | undefined;
  workers: number;
  maxRequests: number | undefined;
  drainTimeout: number;
  http: number | undefined;
  documentRoot: string;
  kind: AppKind | undefined;
}

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
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return null;
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'missing <module>' : `expected one module, got ${positionals.length} arguments`);
  if (values.socket !== undefined && values.port !== undefined) throw new UsageError('give --socket or --port, not both');
  if (values.host !== undefined && values.port === undefined) throw new UsageError('--host needs --port');
  if (values['socket-mode'] !== undefined && values.socket === undefined) throw new UsageError('--socket-mode needs --socket');
  let socketMode: number | undefined;
  if (values['socket-mode'] !== undefined) {
    if (!/^0?[0-7]{3}$/.test(values['socket-mode'])) throw new UsageError(`--socket-mode expects an octal mode such as 0660, got '${values['socket-mode']}'`);
    socketMode = Number.parseInt(values['socket-mode'], 8);
  }
  const port = parseCount('port', values.port, 1);
  if (port !== undefined && port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
  const where: Where =
    values.socket !== undefined ? { kind: 'socket', path: resolve(values.socket) } : port !== undefined ? { kind: 'port', port, host: values.host ?? '127.0.0.1' } : { kind: 'inherited' };
  const httpPort = parseCount('http', values.http, 1);
  if (httpPort !== undefined && where.kind === 'inherited') throw new UsageError('--http needs --socket or --port (the gateway must know where to connect)');
  if (values.kind !== undefined && values.kind !== 'fetch' && values.kind !== 'node') throw new UsageError(`--kind expects fetch or node, got '${values.kind}'`);
  const workers = parseCount('workers', values.workers, 1) ?? 0;
  const maxRequests = parseCount('max-requests', values['max-requests'], 1);
  if (maxRequests !== undefined && workers === 0) throw new UsageError('--max-requests needs --workers');
  return {
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

function log(message: string): void {
  process.stderr.write(`fastcgi-engine serve[${process.pid}]: ${message}\n`);
}

async function loadApp(settings: ServeSettings, options: ServerOptions): Promise<Server> {
  let loaded: unknown;
  try {
    loaded = await import(pathToFileURL(settings.module).href);
  } catch (error) {
    throw new UsageError(`cannot load ${settings.module}: ${(error as Error).message}`);
  }
  const app = detectApp(loaded, settings.kind);
  return app.kind === 'fetch' ? serve(app.handler, options) : createServer(options, app.handler);
}

function describeWhere(where: Where): string {
  return where.kind === 'socket' ? `unix:${where.path}` : where.kind === 'port' ? `${where.host}:${where.port}` : `inherited fd ${where.fd ?? 0}`;
}

/**
 * Listens. In a cluster worker the engine's listen() knows the primary binds a socket path (it skips its
 * stale-file check there); the primary clears a stale file before forking.
 */
function listen(server: Server, where: Where): Promise<void> {
  return new Promise<void>((resolvePromise, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    const done = (): void => {
      server.off('error', onError);
      resolvePromise();
    };
    if (where.kind === 'socket') server.listen(where.path, done);
    else if (where.kind === 'port') server.listen(where.port, where.host, done);
    else if (where.fd !== undefined) server.listen({ fd: where.fd }, done);
    else server.listen(done);
  });
}

function startGateway(settings: ServeSettings): Promise<http.Server> {
  const upstream = settings.where.kind === 'socket' ? { path: settings.where.path } : { host: (settings.where as { host: string }).host, port: (settings.where as { port: number }).port };
  const gateway = createGateway({ upstream: { address: upstream }, documentRoot: settings.documentRoot });
  const server = http.createServer(gateway);
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(settings.http, '127.0.0.1', () => {
      log(`HTTP gateway on http://127.0.0.1:${settings.http}/ → ${describeWhere(settings.where)}`);
      resolvePromise(server);
    });
  });
}

/** Single process: serve until SIGTERM/SIGINT, then drain. */
async function runSingle(settings: ServeSettings): Promise<number> {
  const server = await loadApp(settings, { socketMode: settings.socketMode, closeTimeout: settings.drainTimeout });
  try {
    await listen(server, settings.where);
  } catch (error) {
    log(`${(error as Error).message}${settings.where.kind === 'inherited' ? `\n${CLI_HOW_TO_RUN}` : ''}`);
    return EXIT_USAGE;
  }
  log(`listening on ${describeWhere(settings.where)}`);
  const gateway = settings.http !== undefined ? await startGateway(settings) : null;
  return new Promise<number>((resolvePromise) => {
    const stop = (signal: string): void => {
      log(`${signal}: draining (up to ${settings.drainTimeout} ms)`);
      gateway?.close();
      server.close(() => resolvePromise(0));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => log('SIGHUP: rolling reload needs --workers; ignored'));
  });
}

/** Cluster worker: load, listen, count requests, drain on 'shutdown'. */
async function runWorker(settings: ServeSettings): Promise<number> {
  const server = await loadApp(settings, { closeTimeout: settings.drainTimeout });
  let served = 0;
  let recycling = false;
  // Counted when a request starts: the replacement is started at once and this worker drains what it has.
  server.on('request', () => {
    served++;
    if (settings.maxRequests !== undefined && served >= settings.maxRequests && !recycling) {
      recycling = true;
      process.send?.({ type: 'recycle', served });
    }
  });
  await listen(server, settings.where);
  return new Promise<number>((resolvePromise) => {
    let closing = false;
    const shutdown = (): void => {
      if (closing) return;
      closing = true;
      // The engine's close() does the whole drain: this worker stops accepting, so the other workers take the
      // new connections from the shared socket; requests in flight finish; a connection accepted a moment ago
      // is given its request's time (Server.close()). The callback runs once the last connection is gone.
      server.close(() => {
        resolvePromise(0);
        // The IPC channel to the primary keeps a worker alive: let go of it so the process can end, through
        // the primary (worker.disconnect()), which then forgets this worker's share of the listening socket.
        if (cluster.worker !== undefined) cluster.worker.disconnect();
        else process.disconnect?.();
      });
    };
    process.on('message', (message: { type?: string }) => {
      if (message?.type === 'shutdown') shutdown();
    });
    process.on('SIGTERM', shutdown);
    process.on('SIGINT', () => undefined); // the primary decides
    process.on('SIGHUP', () => undefined);
  });
}

function isSocketFd(fd: number): boolean {
  try {
    return fstatSync(fd).isSocket();
  } catch {
    return false;
  }
}

/** Primary: fork, restart with backoff, recycle, rolling reload on SIGHUP, drain on SIGTERM. */
async function runPrimary(settings: ServeSettings): Promise<number> {
  const where = settings.where;
  if (where.kind === 'inherited') {
    if (process.env.LISTEN_PID !== undefined && Number(process.env.LISTEN_PID) === process.pid && Number(process.env.LISTEN_FDS) >= 1) where.fd = 3;
    else if (isSocketFd(0)) where.fd = 0;
    else {
      // Let the engine say what is wrong, in its words.
      const probe = createServer();
      const message = await new Promise<string>((r) => probe.once('error', (e: Error) => r(e.message)).listen());
      log(`${message}\n${CLI_HOW_TO_RUN}`);
      return EXIT_USAGE;
    }
  }
  if (where.kind === 'socket') {
    try {
      // The primary binds the path for every worker: the engine's stale-file rule, applied here once.
      await prepareSocketPath(where.path);
    } catch (error) {
      log((error as Error).message);
      return EXIT_USAGE;
    }
  }
  // No hand-off: each worker accepts from the shared listening socket itself. Under node's default
  // round-robin the primary accepts and passes the connection to a worker, keeping its own copy open until the
  // worker says it took it; a worker killed (SIGKILL, the OOM killer) with one on its way never says so, and
  // that connection stays open with nobody serving it until the web server's read timeout. Here a connection
  // is either still queued on the listening socket, where any live worker takes it, or open in the one worker
  // that accepted it, whose death closes it (the web server sees that at once and retries). The kernel spreads
  // the accepts about evenly (README: Command line). Set before the first fork, which freezes it, and over
  // NODE_CLUSTER_SCHED_POLICY.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const env = { FASTCGI_ENGINE_SERVE: JSON.stringify(settings) };
  const current = new Set<Worker>();
  const retiring = new Set<Worker>();
  // Referenced: when every worker is dead the primary has nothing else keeping it alive, and it must live to
  // start them again.
  const restarts = new Set<NodeJS.Timeout>();
  let stopping = false;
  let failures = 0;

  const fork = (): Promise<Worker> => {
    const worker = cluster.fork(env);
    current.add(worker);
    const started = Date.now();
    worker.on('message', (message: { type?: string }) => {
      if (message?.type === 'recycle' && current.has(worker) && !stopping) {
        log(`worker ${worker.process.pid} served its --max-requests; replacing it`);
        void replace(worker);
      }
    });
    worker.once('exit', (code, signal) => {
      current.delete(worker);
      const expected = retiring.delete(worker) || stopping;
      if (expected) return;
      failures = Date.now() - started > 10_000 ? 1 : failures + 1;
      const delay = Math.min(100 * 2 ** (failures - 1), 10_000);
      log(`worker ${worker.process.pid} died (${signal ?? `code ${code}`}); restarting in ${delay} ms`);
      const timer = setTimeout(() => {
        restarts.delete(timer);
        if (!stopping) void fork().catch(() => undefined);
      }, delay);
      restarts.add(timer);
    });
    return new Promise<Worker>((resolvePromise, reject) => {
      worker.once('listening', () => {
        if (stopping) void retire(worker);
        // Every time: when the last worker dies node closes the socket, and the next one to listen binds it anew.
        if (where.kind === 'socket' && settings.socketMode !== undefined) {
          try {
            chmodSync(where.path, settings.socketMode);
          } catch {
            // Gone again (that worker died at once): the next one to listen creates it and sets the mode.
          }
        }
        resolvePromise(worker);
      });
      worker.once('exit', () => reject(new Error('worker exited before listening')));
    });
  };

  const retire = (worker: Worker): Promise<void> =>
    new Promise<void>((resolvePromise) => {
      current.delete(worker);
      retiring.add(worker);
      worker.once('exit', () => resolvePromise());
      worker.send({ type: 'shutdown' });
      setTimeout(() => worker.process.kill('SIGKILL'), settings.drainTimeout).unref();
    });

  const replace = async (old: Worker): Promise<void> => {
    current.delete(old);
    retiring.add(old);
    try {
      await fork();
    } finally {
      await retire(old);
    }
  };

  try {
    for (let i = 0; i < settings.workers; i++) await fork();
  } catch {
    log('a worker failed to start; see its error above');
    stopping = true;
    for (const worker of current) worker.process.kill();
    return 1;
  }
  log(`listening on ${describeWhere(where)} with ${settings.workers} worker${settings.workers === 1 ? '' : 's'}`);
  const gateway = settings.http !== undefined ? await startGateway(settings) : null;

  let reloading = false;
  process.on('SIGHUP', () => {
    if (reloading || stopping) return;
    reloading = true;
    log('SIGHUP: rolling reload');
    void (async () => {
      for (const worker of [...current]) if (!stopping) await replace(worker);
      reloading = false;
      log('reload done');
    })();
  });
  return new Promise<number>((resolvePromise) => {
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      for (const timer of restarts) clearTimeout(timer);
      log(`${signal}: draining the workers (up to ${settings.drainTimeout} ms)`);
      gateway?.close();
      const remaining = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
      const check = (): void => {
        if (remaining().length === 0) resolvePromise(0);
      };
      cluster.on('exit', check);
      for (const worker of remaining()) void retire(worker);
      check();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

export async function run(argv: string[]): Promise<number> {
  if (cluster.isWorker && process.env.FASTCGI_ENGINE_SERVE !== undefined) {
    return runWorker(JSON.parse(process.env.FASTCGI_ENGINE_SERVE) as ServeSettings);
  }
  const settings = parseServeArgs(argv);
  if (settings === null) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  return settings.workers > 0 ? runPrimary(settings) : runSingle(settings);
}
