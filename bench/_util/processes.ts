// Child processes for the end-to-end benchmarks: finding the programs (php-fpm, nginx, wrk), waiting until they
// answer, and stopping every one of them on any exit path. The web servers' configs: ./nginx.ts, ./haproxy.ts.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, rmSync } from 'node:fs';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

const live = new Set<ChildProcess>();

/** SIGTERM to every tracked process (not SIGKILL: a php-fpm or nginx master killed outright leaves its workers behind). */
export function killAll(): void {
  for (const child of live) child.kill('SIGTERM');
}

/** On exit, and on SIGINT/SIGTERM (then exit 130), stops every tracked process and removes `dir`. */
export function cleanUpOnExit(dir: string): void {
  process.once('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killAll();
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  }
}

/** Remembers `child` for killAll until it exits. */
export function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** Sends `signal` and waits for the exit (SIGKILL after 5 s). */
export async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** The first executable named one of `names` on PATH or in the sbin/bin dirs, or null. */
export function findBinary(names: readonly string[]): string | null {
  for (const name of names) {
    for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin']) {
      if (dir === '') continue;
      try {
        accessSync(join(dir, name), constants.X_OK);
        return join(dir, name);
      } catch {
        // next
      }
    }
  }
  return null;
}

/** Polls `check` until it holds; fails when `child` exits first or after 10 s, with `log()` in the message. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  child: ChildProcess,
  log: () => string,
): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${log()}`);
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what} did not start within 10 s: ${log()}`);
    await delay(20);
  }
}

export function canConnect(options: { path: string } | { port: number; host: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(options);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function freePort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
