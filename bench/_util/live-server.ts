// The attacked server as a child process (test/fixtures/apps/live-app.ts under tsx): start, ask for figures,
// read its peak RSS from the kernel, notice a crash, stop.
//
// Peak RSS is the kernel's high-water mark (VmHWM in /proc/PID/status), which sees every spike between two
// samples, even one inside a long synchronous stretch that a timer in the child would miss. Writing 5 to
// /proc/PID/clear_refs resets it to the current RSS, so each phase gets its own peak.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { LiveStats } from '../../test/fixtures/apps/live-app';

export type { LiveStats };

const APP = resolve(__dirname, '../../test/fixtures/apps/live-app.ts');
export const MiB = 1024 * 1024;

export interface LiveServerOptions {
  /** Server options, passed as JSON. */
  server?: Record<string, unknown>;
  /** --max-old-space-size for the child, in MiB (the abuse tests use 256); 0 for V8's default. */
  heapMiB?: number;
}

export class LiveServer {
  readonly path: string;
  readonly child: ChildProcess;
  readonly #dir: string;
  #exit: string | null = null;
  #stderr = '';
  readonly #waiting: Array<(stats: LiveStats) => void> = [];

  private constructor(dir: string, child: ChildProcess) {
    this.#dir = dir;
    this.path = join(dir, 'app.sock');
    this.child = child;
    child.stderr!.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-4000);
    });
    child.on('message', (message: { type?: string }) => {
      if (message?.type === 'stats') this.#waiting.shift()?.(message as LiveStats);
    });
    child.once('exit', (code, signal) => {
      this.#exit = signal !== null ? `killed by ${signal}` : `exited with code ${code}`;
      for (const waiter of this.#waiting.splice(0)) waiter(null as unknown as LiveStats);
    });
  }

  static async start(options: LiveServerOptions = {}): Promise<LiveServer> {
    const dir = mkdtempSync(join(tmpdir(), 'fcgi-live-'));
    const child = fork(APP, [join(dir, 'app.sock'), JSON.stringify(options.server ?? {})], {
      execArgv: [
        '--import',
        'tsx',
        '--expose-gc',
        ...(options.heapMiB === 0 ? [] : [`--max-old-space-size=${options.heapMiB ?? 256}`]),
      ],
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    const server = new LiveServer(dir, child);
    const ready = new Promise<void>((resolvePromise, reject) => {
      child.on('message', (message: { type?: string }) => {
        if (message?.type === 'ready') resolvePromise();
      });
      child.once('exit', () => reject(new Error(`the app ${server.#exit}: ${server.#stderr}`)));
    });
    await ready;
    return server;
  }

  /** Why the child is gone ('exited with code 1', 'killed by SIGABRT'), or null while it runs. */
  get exit(): string | null {
    return this.#exit;
  }

  /** Why the child is gone and the error it threw, in one line; null while it runs. */
  get crash(): string | null {
    if (this.#exit === null) return null;
    const thrown = this.#stderr
      .split('\n')
      .filter((line) => /^\w*Error\b|^\s+at |code: /.test(line))
      .slice(0, 4);
    return `${this.#exit}: ${thrown.map((l) => l.trim()).join(' | ') || this.#stderr.trim().slice(-300)}`;
  }

  /** The end of what the child wrote to stderr. */
  get stderr(): string {
    return this.#stderr;
  }

  /** The app's figures; after a GC when `gc`. Null when the child is gone. */
  async stats(gc = false): Promise<LiveStats | null> {
    if (this.#exit !== null || !this.child.connected) return null;
    const answer = new Promise<LiveStats>((resolvePromise) => this.#waiting.push(resolvePromise));
    this.child.send({ type: 'stats', gc });
    return answer;
  }

  /** Current and peak RSS from the kernel, in bytes; null once the child is gone. */
  rss(): { rss: number; peak: number } | null {
    try {
      const status = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
      const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
      return { rss: kb('VmRSS'), peak: kb('VmHWM') };
    } catch {
      return null;
    }
  }

  /** Starts a new peak: the high-water mark drops to the current RSS. */
  resetPeak(): void {
    try {
      writeFileSync(`/proc/${this.child.pid}/clear_refs`, '5');
    } catch {
      // Gone, or a kernel without it: the peak then covers the whole life of the child.
    }
  }

  /**
   * Polls until nothing is left in the server's tables (connections, buffered bytes, requests) or `ms` pass;
   * returns the last figures.
   */
  async drained(ms: number): Promise<LiveStats | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      const stats = await this.stats();
      if (stats === null) return null;
      if (leftOver(stats) === 0 || Date.now() > deadline) return stats;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    if (this.#exit === null) {
      const exited = once(this.child, 'exit');
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** Everything still held: connections, charged bytes, requests in the tables and in handlers. */
export function leftOver(stats: LiveStats): number {
  return stats.connections + stats.bufferedBytes + stats.activeRequests + stats.inFlight;
}

export function describeLeft(stats: LiveStats | null): string {
  if (stats === null) return 'n/a (server gone)';
  return `${stats.connections} conn, ${stats.bufferedBytes} B, ${stats.activeRequests} req, ${stats.inFlight} handlers`;
}

/** Counts in `after` minus those in `before`, keeping the ones that grew. */
export function countsSince(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) {
    const grown = value - (before[key] ?? 0);
    if (grown > 0) out[key] = grown;
  }
  return out;
}

export function formatCounts(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? '-' : entries.map(([k, v]) => `${k.replace(/^FCGI_ERR_/, '')}×${v}`).join(' ');
}

export const mib = (bytes: number): string => (bytes / MiB).toFixed(1);
