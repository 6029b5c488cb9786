// Runs the fastcgi-engine executable as a child process (node --import tsx src/cli/main.ts …) and collects its
// output; every process is killed when the test finishes.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { onTestFinished } from 'vitest';

export const ROOT = resolve(__dirname, '../..');
export const MAIN = join(ROOT, 'src/cli/main.ts');
export const APPS = join(__dirname, 'apps');

export interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code (or 128 + signal number style string) when the process ends. */
  exited: Promise<number | null>;
}

export function start(args: string[], options: { stdio?: StdioOptions; env?: NodeJS.ProcessEnv } = {}): Running {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    stdio: options.stdio ?? ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Runs to completion (killed after timeoutMs). */
export async function runCli(
  args: string[],
  timeoutMs = 15_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const running = start(args);
  const timer = setTimeout(() => running.child.kill('SIGKILL'), timeoutMs);
  const code = await running.exited;
  clearTimeout(timer);
  return { code, stdout: running.stdout(), stderr: running.stderr() };
}

export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-cli-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Waits until `predicate` holds, polling. */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** True when something accepts connections on the unix socket path. */
export function answers(path: string): Promise<boolean> {
  return new Promise((r) => {
    const socket = net.connect(path);
    socket.once('connect', () => {
      socket.destroy();
      r(true);
    });
    socket.once('error', () => r(false));
  });
}

/** Starts `serve` on a unix socket in a temp dir and waits until it logs that it listens. */
export async function startServe(
  app: string,
  extra: string[] = [],
): Promise<Running & { socket: string; dir: string }> {
  const dir = tempDir();
  const socket = join(dir, 'app.sock');
  const running = start(['serve', join(APPS, app), '--socket', socket, ...extra]);
  await waitFor(
    () => running.stderr().includes('listening on') || running.child.exitCode !== null,
    15_000,
    `serve ${app} to listen`,
  );
  if (!running.stderr().includes('listening on')) throw new Error(`serve did not start:\n${running.stderr()}`);
  return { ...running, socket, dir };
}
