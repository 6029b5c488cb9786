// The primary of `serve --workers N`: forks the workers, restarts a crashed one with backoff, replaces one that
// has served --max-requests, replaces them all one by one on SIGHUP, and drains them on SIGTERM/SIGINT.
import cluster, { type Worker } from 'node:cluster';
import { chmodSync } from 'node:fs';
import type * as http from 'node:http';
import { inheritedListenFd, prepareSocketPath, releaseAtExit } from '../server/listen';
import { EXIT_USAGE } from './args';
import { startGateway, stopSignal } from './serve-process';
import { StatusAggregator } from './status-ipc';
import { CLI_HOW_TO_RUN, SETTINGS_ENV, describeWhere, log, type ServeSettings } from './serve-settings';

/** A crashed worker is restarted after this long, doubled for each further crash in a row. */
const RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 10_000;
/** A worker that ran this long before it died had been healthy: the backoff starts over. */
const HEALTHY_UPTIME_MS = 10_000;

export class Supervisor {
  readonly #settings: ServeSettings;
  /** Workers serving. */
  readonly #current = new Set<Worker>();
  /** Workers draining on purpose (replaced, reloaded, stopped): their exit is no crash. */
  readonly #retiring = new Set<Worker>();
  // Referenced: when every worker is dead the primary has nothing else keeping it alive, and it must live to
  // start them again.
  readonly #restarts = new Set<NodeJS.Timeout>();
  /** Crashes in a row, each within HEALTHY_UPTIME_MS of its worker's start. */
  #crashes = 0;
  #stopping = false;
  #reloading = false;
  #gateway: http.Server | null = null;
  readonly #status = new StatusAggregator();

  constructor(settings: ServeSettings) {
    this.#settings = settings;
  }

  /** run starts the workers and serves until SIGTERM/SIGINT has drained them; resolves with the exit code. */
  async run(): Promise<number> {
    if (!(await this.#prepareAddress())) return EXIT_USAGE;
    // No hand-off: each worker accepts from the shared listening socket itself. Under node's default
    // round-robin the primary accepts and passes the connection to a worker, keeping its own copy open until
    // the worker says it took it; a worker killed (SIGKILL, the OOM killer) with one on its way never says so,
    // and that connection stays open with nobody serving it until the web server's read timeout. Here a
    // connection is either still queued on the listening socket, where any live worker takes it, or open in
    // the one worker that accepted it, whose death closes it (the web server sees that at once and retries).
    // The kernel spreads the accepts about evenly (README: Command line). Set before the first fork, which
    // freezes it, and over NODE_CLUSTER_SCHED_POLICY.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    // A worker's stdin is not the primary's: spawned by a web server, that is the listening socket, and a child
    // given it as stdin makes it blocking (libuv does so to a child's fds 0-2 before exec, and Node restores a
    // blocking stdin when the process exits). Its O_NONBLOCK flag is shared by every process holding it: a worker
    // woken for a connection another one took would then sleep in accept() with its requests unserved, until
    // the next connection, and miss the 'shutdown' that drains it (test/cli/serve.test.ts, fd 0 with --workers).
    cluster.setupPrimary({ stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    try {
      for (let i = 0; i < this.#settings.workers; i++) await this.fork();
    } catch {
      log('a worker failed to start; see its error above');
      this.#stopping = true;
      for (const worker of this.#current) worker.process.kill();
      return 1;
    }
    const workers = this.#settings.workers;
    log(`listening on ${describeWhere(this.#settings.where)} with ${workers} worker${workers === 1 ? '' : 's'}`);
    if (this.#settings.http !== undefined) this.#gateway = await startGateway(this.#settings);
    process.on('SIGHUP', () => void this.reload());
    await this.stop(await stopSignal());
    return 0;
  }

  // The workers listen where the primary says: on the inherited socket's fd, or on a socket path the primary
  // has cleared of a stale file (the engine's rule, applied here once, since the primary binds it for all).
  async #prepareAddress(): Promise<boolean> {
    const where = this.#settings.where;
    try {
      if (where.kind === 'inherited') {
        where.fd = inheritedListenFd();
        releaseAtExit(where.fd);
      } else if (where.kind === 'socket') {
        await prepareSocketPath(where.path);
      }
      return true;
    } catch (error) {
      log(`${(error as Error).message}${where.kind === 'inherited' ? `\n${CLI_HOW_TO_RUN}` : ''}`);
      return false;
    }
  }

  /** fork starts a worker; resolves when it listens, rejects if it exits first. */
  fork(): Promise<Worker> {
    const worker = cluster.fork({ [SETTINGS_ENV]: JSON.stringify(this.#settings) });
    this.#current.add(worker);
    const startedAt = Date.now();
    worker.on('message', (message: { type?: string }) => {
      if (this.#status.handle(worker, message, () => [...this.#current])) return;
      if (message?.type === 'recycle' && this.#current.has(worker) && !this.#stopping) {
        log(`worker ${worker.process.pid} served its --max-requests; replacing it`);
        void this.replace(worker);
      }
    });
    worker.once('exit', (code, signal) => {
      this.#current.delete(worker);
      const expected = this.#retiring.delete(worker) || this.#stopping;
      if (!expected) this.#restart(worker, startedAt, signal ?? `code ${code}`);
    });
    return new Promise<Worker>((resolvePromise, reject) => {
      worker.once('listening', () => {
        if (this.#stopping) void this.retire(worker);
        this.#applySocketMode();
        resolvePromise(worker);
      });
      worker.once('exit', () => reject(new Error('worker exited before listening')));
    });
  }

  // Every time a worker listens: when the last worker dies node closes the socket, and the next one to listen
  // binds it anew.
  #applySocketMode(): void {
    const { where, socketMode } = this.#settings;
    if (where.kind !== 'socket' || socketMode === undefined) return;
    try {
      chmodSync(where.path, socketMode);
    } catch {
      // Gone again (that worker died at once): the next one to listen creates it and sets the mode.
    }
  }

  // A worker died unasked: fork another after a delay that doubles with each crash in a row.
  #restart(dead: Worker, startedAt: number, how: string): void {
    this.#crashes = Date.now() - startedAt > HEALTHY_UPTIME_MS ? 1 : this.#crashes + 1;
    const delay = Math.min(RESTART_DELAY_MS * 2 ** (this.#crashes - 1), MAX_RESTART_DELAY_MS);
    log(`worker ${dead.process.pid} died (${how}); restarting in ${delay} ms`);
    const timer = setTimeout(() => {
      this.#restarts.delete(timer);
      if (!this.#stopping) void this.fork().catch(() => undefined);
    }, delay);
    this.#restarts.add(timer);
  }

  /** retire drains a worker (the engine's close() in it), killing it if it is not gone after --drain-timeout. */
  retire(worker: Worker): Promise<void> {
    return new Promise<void>((resolvePromise) => {
      this.#current.delete(worker);
      this.#retiring.add(worker);
      worker.once('exit', () => resolvePromise());
      worker.send({ type: 'shutdown' });
      setTimeout(() => worker.process.kill('SIGKILL'), this.#settings.drainTimeout).unref();
    });
  }

  /** replace starts a new worker and, once it listens (or failed to start), retires `old`. */
  async replace(old: Worker): Promise<void> {
    this.#current.delete(old);
    this.#retiring.add(old);
    try {
      await this.fork();
    } finally {
      await this.retire(old);
    }
  }

  /** reload replaces every worker, one at a time, so the socket always has a worker accepting (SIGHUP). */
  async reload(): Promise<void> {
    if (this.#reloading || this.#stopping) return;
    this.#reloading = true;
    log('SIGHUP: rolling reload');
    for (const worker of [...this.#current]) if (!this.#stopping) await this.replace(worker);
    this.#reloading = false;
    log('reload done');
  }

  /** stop cancels pending restarts and drains every worker; resolves when all have exited. */
  stop(signal: string): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    this.#stopping = true;
    for (const timer of this.#restarts) clearTimeout(timer);
    log(`${signal}: draining the workers (up to ${this.#settings.drainTimeout} ms)`);
    this.#gateway?.close();
    return new Promise<void>((resolvePromise) => {
      const remaining = (): Worker[] =>
        Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
      const check = (): void => {
        if (remaining().length === 0) resolvePromise();
      };
      cluster.on('exit', check);
      for (const worker of remaining()) void this.retire(worker);
      check();
    });
  }
}
