// The process that serves the application: alone (no --workers) until SIGTERM/SIGINT, or as a node:cluster
// worker until its primary retires it; both drain with the engine's close(). Also the HTTP gateway --http puts
// in front.
import * as http from 'node:http';
import type { Server } from '../server/server';
import { EXIT_USAGE, UsageError } from './args';
import { loadApp } from './serve-app';
import { observe, singleProcess } from './serve-observe';
import { workerSide } from './status-ipc';
import { CLI_HOW_TO_RUN, describeWhere, log, type ServeSettings, type Where } from './serve-settings';

/**
 * Listens. In a cluster worker the engine's listen() knows the primary binds a socket path (it skips its
 * stale-file check there); the primary clears a stale file before forking.
 */
export function listen(server: Server, where: Where): Promise<void> {
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

/** drain closes the server: in-flight requests finish, for up to its closeTimeout (--drain-timeout). */
function drain(server: Server): Promise<void> {
  return new Promise<void>((resolvePromise) => server.close(() => resolvePromise()));
}

/** startGateway serves HTTP on 127.0.0.1:--http through the built-in gateway, to the FastCGI address. */
export function startGateway(settings: ServeSettings): Promise<http.Server> {
  const where = settings.where;
  const upstream =
    where.kind === 'socket'
      ? { path: where.path }
      : where.kind === 'port'
        ? { host: where.host, port: where.port }
        : null;
  if (upstream === null)
    throw new UsageError('--http needs --socket or --port (the gateway must know where to connect)');
  // Loaded only with --http: the gateway and the client it stands on are not part of a process that only serves.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createGateway } = require('../gateway/gateway') as typeof import('../gateway/gateway');
  const gateway = createGateway({ upstream: { address: upstream }, documentRoot: settings.documentRoot });
  const server = http.createServer(gateway);
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(settings.http, '127.0.0.1', () => {
      log(`HTTP gateway on http://127.0.0.1:${settings.http}/ → ${describeWhere(where)}`);
      resolvePromise(server);
    });
  });
}

/** Resolves with the first of SIGTERM / SIGINT. */
export function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolvePromise) => {
    process.once('SIGTERM', () => resolvePromise('SIGTERM'));
    process.once('SIGINT', () => resolvePromise('SIGINT'));
  });
}

/** runSingle serves in this process until SIGTERM/SIGINT, then drains; resolves with the exit code. */
export async function runSingle(settings: ServeSettings): Promise<number> {
  const server = await loadApp(settings, {
    socketMode: settings.socketMode,
    closeTimeout: settings.drainTimeout,
    slowRequestThreshold: settings.slowRequestThreshold,
  });
  const observer = observe(server, settings, singleProcess);
  try {
    await listen(server, settings.where);
  } catch (error) {
    log(`${(error as Error).message}${settings.where.kind === 'inherited' ? `\n${CLI_HOW_TO_RUN}` : ''}`);
    return EXIT_USAGE;
  }
  log(`listening on ${describeWhere(settings.where)}`);
  const gateway = settings.http !== undefined ? await startGateway(settings) : null;
  process.on('SIGHUP', () => log('SIGHUP: rolling reload needs --workers; ignored'));
  const signal = await stopSignal();
  log(`${signal}: draining (up to ${settings.drainTimeout} ms)`);
  gateway?.close();
  await drain(server);
  await observer.close();
  return 0;
}

/**
 * runWorker serves as a cluster worker: it counts requests for --max-requests (asking the primary for a
 * replacement) and drains when the primary says 'shutdown' or on SIGTERM; resolves with the exit code.
 */
export async function runWorker(settings: ServeSettings): Promise<number> {
  const server = await loadApp(settings, {
    closeTimeout: settings.drainTimeout,
    slowRequestThreshold: settings.slowRequestThreshold,
  });
  // The status page asks the primary, which sums every worker's sample (this one's included).
  const observer = observe(
    server,
    settings,
    workerSide(() => observer.sample()),
  );
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
  await new Promise<void>((resolvePromise) => {
    process.on('message', (message: { type?: string }) => {
      if (message?.type === 'shutdown') resolvePromise();
    });
    process.on('SIGTERM', () => resolvePromise());
    process.on('SIGINT', () => undefined); // the primary decides
    process.on('SIGHUP', () => undefined);
  });
  // The engine's close() does the whole drain: this worker stops accepting, so the other workers take the new
  // connections from the shared socket; requests in flight finish; a connection accepted a moment ago is given
  // its request's time (Server.close()). It resolves once the last connection is gone, and the worker then
  // exits (serve's run()), which lets the primary forget this worker's share of the listening socket.
  await drain(server);
  await observer.close();
  return 0;
}
