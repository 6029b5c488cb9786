// Starts Debian's php-fpm (package php8.2-fpm) from a temp dir with a generated config, for one test file:
// `php-fpm8.2 -F -R -n -y conf` (foreground, root allowed, no system php.ini), listening on a unix socket in
// the temp dir. Stopped by PID; the temp dir is removed. Without the binary the tests skip, naming the package,
// unless FASTCGI_INTEROP_REQUIRED=1, which makes that a failure.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { connect } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import type { TestContext } from 'vitest';
import { findBinary, requireBinary } from '../helpers/binaries';

export { REQUIRED } from '../helpers/binaries';
export const PHP_FIXTURES = path.join(__dirname, '..', 'fixtures', 'php');

export const PHP_FPM = findBinary(['php-fpm8.2', 'php-fpm']);

/** The php-fpm binary, or a skip (a failure with FASTCGI_INTEROP_REQUIRED=1) naming the Debian package. */
export function phpFpmBinary(context: TestContext): string {
  return requireBinary(context, PHP_FPM, 'php-fpm8.2', 'php8.2-fpm');
}

export interface PhpFpmOptions {
  /** pm.max_children. Default 4. */
  maxChildren?: number;
  /** pm. Default static. */
  pm?: 'static' | 'dynamic' | 'ondemand';
  /** Extra pool lines. */
  extra?: string[];
}

/** A running php-fpm master. */
export class PhpFpm {
  readonly dir: string;
  readonly socketPath: string;
  readonly #binary: string;
  readonly #conf: string;
  #child: ChildProcess | null = null;
  #log = '';

  constructor(binary: string, options: PhpFpmOptions = {}) {
    this.#binary = binary;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcgi-fpm-'));
    this.socketPath = path.join(this.dir, 'fpm.sock');
    this.#conf = path.join(this.dir, 'fpm.conf');
    const pm = options.pm ?? 'static';
    const children = options.maxChildren ?? 4;
    const lines = [
      '[global]',
      `pid = ${path.join(this.dir, 'fpm.pid')}`,
      `error_log = ${path.join(this.dir, 'fpm.log')}`,
      'daemonize = no',
      '',
      '[test]',
      `listen = ${this.socketPath}`,
      'listen.mode = 0600',
      `pm = ${pm}`,
      `pm.max_children = ${children}`,
      ...(pm === 'dynamic'
        ? [`pm.start_servers = 1`, `pm.min_spare_servers = 1`, `pm.max_spare_servers = ${children}`]
        : []),
      'clear_env = yes',
      // Big bodies both ways; error_log stays unset so error_log() reaches the FastCGI STDERR stream.
      'php_admin_value[post_max_size] = 64M',
      'php_admin_value[memory_limit] = 256M',
      'php_admin_flag[display_errors] = off',
      'php_admin_flag[log_errors] = on',
      ...(options.extra ?? []),
      '',
    ];
    fs.writeFileSync(this.#conf, lines.join('\n'));
  }

  /** The master's PID while it runs. */
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  /** What php-fpm printed, for failure messages. */
  get log(): string {
    let file = '';
    try {
      file = fs.readFileSync(path.join(this.dir, 'fpm.log'), 'utf8');
    } catch {
      // not created yet
    }
    return `${this.#log}${file}`;
  }

  /** Starts the master and waits until the socket accepts connections (at most 10 s). */
  async start(): Promise<void> {
    const child = spawn(this.#binary, ['-F', '-R', '-n', '-y', this.#conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    child.stdout!.on('data', (chunk: Buffer) => (this.#log += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (this.#log += chunk.toString()));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`php-fpm exited with ${child.exitCode}: ${this.log}`);
      if (await canConnect(this.socketPath)) return;
      if (Date.now() > deadline) throw new Error(`php-fpm did not listen within 10 s: ${this.log}`);
      await delay(20);
    }
  }

  /** Stops the master (SIGTERM: it stops its workers) and waits for it to exit; SIGKILL after 5 s. */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  /**
   * Kills the master and its workers with SIGKILL, as a crash or the OOM killer would (workers outlive a master
   * killed alone, and would go on serving); start() brings the pool back on the same socket.
   */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const workers = childrenOf(child.pid!);
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    for (const pid of workers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await exited;
  }

  /** Stops, then removes the temp dir. */
  async dispose(): Promise<void> {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The PIDs of a process's children (Linux /proc). */
function childrenOf(pid: number): number[] {
  try {
    return fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((word) => word !== '')
      .map(Number);
  } catch {
    return [];
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

/** Params php-fpm needs to run a fixture script. */
export function phpParams(script: string, extra: Record<string, string> = {}): Record<string, string> {
  const query = extra.QUERY_STRING ?? '';
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: 'GET',
    SCRIPT_FILENAME: path.join(PHP_FIXTURES, script),
    SCRIPT_NAME: `/${script}`,
    REQUEST_URI: `/${script}${query === '' ? '' : `?${query}`}`,
    DOCUMENT_ROOT: PHP_FIXTURES,
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: 'localhost',
    ...extra,
  };
}
