// Runs a private php-fpm for `php-server`: a generated pool config in a temp dir, the master in the foreground
// (--nodaemonize) with its log on our stderr, restarted with backoff when it dies, stopped with us.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import { connect } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { FastCGIError, InvalidArgumentError } from '../errors';

const SEARCH_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin'];

/** findPhpFpm returns php-fpm8.2 or php-fpm from PATH or the sbin directories, or null. */
export function findPhpFpm(): string | null {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter((d) => d !== ''), ...SEARCH_DIRS];
  for (const name of ['php-fpm8.2', 'php-fpm']) {
    for (const dir of dirs) {
      const candidate = path.join(dir, name);
      try {
        fs.accessSync(candidate, fs.constants.X_OK);
        return candidate;
      } catch {
        // next
      }
    }
  }
  return null;
}

export interface PhpFpmSupervisorOptions {
  /** The php-fpm binary. Default: findPhpFpm(). */
  binary?: string;
  /** pm.max_children. Default 5. */
  maxChildren?: number;
  /** Largest upload PHP accepts (post_max_size and upload_max_filesize), in bytes. Default 100 MiB. */
  maxBodySize?: number;
  /** Where php-fpm's own log lines go. Default process.stderr. */
  log?: NodeJS.WritableStream;
}

/** A php-fpm master on a unix socket in a temp dir, kept running until stop(). */
export class PhpFpmSupervisor {
  readonly dir: string;
  readonly socketPath: string;
  readonly #binary: string;
  readonly #conf: string;
  readonly #log: NodeJS.WritableStream;
  #child: ChildProcess | null = null;
  #stopping = false;
  #backoff = 100;

  constructor(options: PhpFpmSupervisorOptions = {}) {
    const binary = options.binary ?? findPhpFpm();
    if (binary === null)
      throw new InvalidArgumentError(
        'php-fpm not found on PATH or in /usr/sbin: install php-fpm (Debian: apt-get install php8.2-fpm) or give an upstream',
      );
    const children = options.maxChildren ?? 5;
    if (!Number.isInteger(children) || children < 1)
      throw new InvalidArgumentError(`maxChildren must be a whole number >= 1, got ${children}`);
    this.#binary = binary;
    this.#log = options.log ?? process.stderr;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fastcgi-engine-php-'));
    this.socketPath = path.join(this.dir, 'php-fpm.sock');
    this.#conf = path.join(this.dir, 'php-fpm.conf');
    const maxBody = options.maxBodySize ?? 100 * 1024 * 1024;
    const lines = [
      '[global]',
      `pid = ${path.join(this.dir, 'php-fpm.pid')}`,
      // /proc/self/fd/2 cannot be opened when stderr is a socket (node's pipes are): a file, and -O copies
      // every line to stderr.
      `error_log = ${path.join(this.dir, 'php-fpm.log')}`,
      'daemonize = no',
      '',
      '[www]',
      `listen = ${this.socketPath}`,
      'listen.mode = 0600',
      'pm = dynamic',
      `pm.max_children = ${children}`,
      'pm.start_servers = 1',
      'pm.min_spare_servers = 1',
      `pm.max_spare_servers = ${Math.max(1, Math.min(3, children))}`,
      // Worker output (error_log() with no log file set) reaches the master's stderr, then ours.
      'catch_workers_output = yes',
      'decorate_workers_output = no',
      `php_admin_value[post_max_size] = ${maxBody}`,
      `php_admin_value[upload_max_filesize] = ${maxBody}`,
      '',
    ];
    fs.writeFileSync(this.#conf, lines.join('\n'));
  }

  /** The address to give the gateway. */
  get address(): string {
    return `unix:${this.socketPath}`;
  }

  /** The running master's PID, or null. */
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  /** Starts the master and waits until its socket accepts connections (at most 10 s). */
  async start(): Promise<void> {
    this.#stopping = false;
    this.#spawn();
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(this.socketPath))) {
      if (this.#stopping) throw new FastCGIError('FCGI_ERR_INVALID_STATE', 'php-fpm was stopped while starting');
      if (Date.now() > deadline)
        throw new FastCGIError('FCGI_ERR_CONNECT_TIMEOUT', `php-fpm did not listen on ${this.socketPath} within 10 s`);
      await delay(25);
    }
  }

  #spawn(): void {
    // -R: php-fpm refuses to run pools as root without it (a container's only user is often root).
    const args = ['--nodaemonize', '--force-stderr', '-y', this.#conf, ...(process.getuid?.() === 0 ? ['-R'] : [])];
    const child = spawn(this.#binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    const startedAt = Date.now();
    child.stdout!.pipe(this.#log, { end: false });
    child.stderr!.pipe(this.#log, { end: false });
    child.once('exit', (code, signal) => {
      if (this.#child === child) this.#child = null;
      // The master leads its own process group (php-fpm calls setsid() even in the foreground). Killed without
      // stopping its workers (kill -9, the OOM killer), it leaves them serving the old socket, which a new
      // master then refuses to take over ("Another FPM instance seems to already listen"), and holding our
      // stdout/stderr pipes open: the group goes with it. The group's ID cannot be reused while a member lives.
      if (child.pid !== undefined) killGroup(child.pid);
      if (this.#stopping) return;
      // A master that ran a while had a real crash: start again quickly. One that dies at once (bad config,
      // port in use) is retried more and more slowly, up to 10 s apart.
      this.#backoff = Date.now() - startedAt > 10_000 ? 100 : Math.min(this.#backoff * 2, 10_000);
      this.#log.write(
        `fastcgi-engine php-server: php-fpm exited (${signal ?? code}); restarting in ${this.#backoff} ms\n`,
      );
      setTimeout(() => {
        if (!this.#stopping) this.#spawn();
      }, this.#backoff).unref();
    });
  }

  /** Stops the master (SIGTERM; SIGKILL after 5 s), and removes the temp dir. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const child = this.#child;
    this.#child = null;
    if (child !== null && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // no member left
  }
}

function canConnect(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path: socketPath });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
