// `serve --workers` while workers are killed with SIGKILL under load (the OOM killer, an operator's kill -9).
// Every request must end promptly: answered, or its connection closed or refused, which a web server sees at
// once and retries elsewhere. What must never happen is a connection left open that no process will serve:
// the web server then waits out its read timeout (nginx: 60 s) and the user with it.
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RecordType, Role } from '../../src/wire/constants';
import { encodeParams } from '../../src/wire/pairs';
import { encodeBeginRequest, encodeStream } from '../../src/wire/records';
import { APPS, MAIN, ROOT, tempDir, waitFor, type Running } from './helpers';

/** Longer than any answer takes here even on a busy machine (they take milliseconds); a hung one never comes. */
const DEADLINE_MS = 5000;
/**
 * Four servers (unix socket and TCP, twice) at once, 5 kills each. A server's restart backoff (100 ms, doubling
 * while workers keep dying young) makes its later kills slow, and each kill costs a worker start (about 1 s of
 * CPU), so several servers with a few kills each reach 20 kills soonest.
 */
const SERVERS = 4;
const KILLS_PER_SERVER = 5;
/** Requests in flight per server, each on a connection of its own, so that every one is a fresh accept. */
const CONCURRENCY = 2;
const KILL_PHASE_MS = 45_000;

const REQUEST = Buffer.concat([
  encodeBeginRequest(1, Role.RESPONDER),
  encodeParams(1, [
    ['REQUEST_METHOD', 'GET'],
    ['REQUEST_URI', '/'],
    ['SCRIPT_NAME', '/'],
    ['CONTENT_LENGTH', '0'],
  ]),
  encodeStream(RecordType.PARAMS, 1, Buffer.alloc(0)),
  encodeStream(RecordType.STDIN, 1, Buffer.alloc(0)),
]);

type Outcome = { kind: 'answered'; pid: number } | { kind: 'closed'; code: string } | { kind: 'hung' };

/** One request on a new connection, settled by END_REQUEST, by the connection ending, or by the deadline. */
function oneRequest(address: string | number): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = typeof address === 'string' ? net.connect(address) : net.connect(address, '127.0.0.1');
    let received = Buffer.alloc(0);
    let pid = 0;
    let settled = false;
    const settle = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => settle({ kind: 'hung' }), DEADLINE_MS);
    socket.once('connect', () => socket.write(REQUEST));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      let offset = 0;
      while (received.length - offset >= 8) {
        const type = received[offset + 1]!;
        const length = received.readUInt16BE(offset + 4);
        const end = offset + 8 + length + received[offset + 6]!;
        if (received.length < end) break;
        if (type === RecordType.STDOUT)
          pid ||= Number(/pid=(\d+)/.exec(received.subarray(offset + 8, offset + 8 + length).toString())?.[1] ?? 0);
        if (type === RecordType.END_REQUEST) return settle({ kind: 'answered', pid });
        offset = end;
      }
      received = received.subarray(offset);
    });
    socket.once('error', (error: NodeJS.ErrnoException) =>
      settle({ kind: 'closed', code: error.code ?? error.message }),
    );
    socket.once('close', () => settle({ kind: 'closed', code: 'EOF' }));
  });
}

/**
 * Starts `fastcgi-engine serve` as helpers.start() does, but through tsx's require hook, which its workers
 * inherit: a process then starts in half the CPU of `--import tsx`, and these tests start about thirty.
 */
function start(args: string[]): Running {
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', MAIN, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, stdout: () => '', stderr: () => stderr, exited };
}

/** The primary's live children: its workers (never another process, whatever pids get reused). */
function workersOf(primary: Running): Set<number> {
  try {
    const pid = primary.child.pid!;
    return new Set(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number));
  } catch {
    return new Set();
  }
}

interface Tally {
  answered: number;
  closed: Record<string, number>;
  hung: number;
  kills: number;
  /** Requests sent and not settled yet. */
  pending: number;
  /** The primary's exit code if it ended (it must not: it restarts the workers). */
  primaryExit: number | null;
}

/**
 * Loads one `serve --workers 2` and kills a worker that has just answered, KILLS_PER_SERVER times; each kill
 * comes 50-250 ms after a request from that worker, so connections are on their way to it at that moment.
 */
async function killUnderLoad(where: { socket: string } | { port: number }): Promise<Tally> {
  const address = 'socket' in where ? where.socket : where.port;
  const serve = start([
    'serve',
    join(APPS, 'node-handler.mjs'),
    ...('socket' in where ? ['--socket', where.socket] : ['--port', String(where.port)]),
    '--workers',
    '2',
  ]);
  await waitFor(
    () => serve.stderr().includes('listening on') || serve.child.exitCode !== null,
    30_000,
    'serve to listen',
  );
  expect(serve.stderr()).toContain('with 2 workers');
  const tally: Tally = { answered: 0, closed: {}, hung: 0, kills: 0, pending: 0, primaryExit: null };
  const killed = new Set<number>();
  let lastServer = 0;
  let stop = false;
  const load = Array.from({ length: CONCURRENCY }, async () => {
    while (!stop) {
      tally.pending++;
      const outcome = await oneRequest(address);
      tally.pending--;
      if (outcome.kind === 'answered') {
        tally.answered++;
        lastServer = outcome.pid;
      } else if (outcome.kind === 'hung') tally.hung++;
      else {
        tally.closed[outcome.code] = (tally.closed[outcome.code] ?? 0) + 1;
        // With every worker dead the socket is gone until one is back: do not spin on the refusals.
        await delay(50);
      }
    }
  });
  const startedAt = Date.now();
  while (tally.kills < KILLS_PER_SERVER && Date.now() - startedAt < KILL_PHASE_MS) {
    await delay(20);
    const victim = lastServer;
    if (victim === 0 || killed.has(victim) || !workersOf(serve).has(victim)) continue;
    await delay(50 + Math.random() * 200);
    killed.add(victim);
    process.kill(victim, 'SIGKILL');
    tally.kills++;
  }
  // Let the last kill's connections run into their deadlines, then stop; every request still in flight ends
  // within DEADLINE_MS, as a hung one does.
  await delay(1000);
  stop = true;
  await Promise.all(load);
  tally.primaryExit = serve.child.exitCode;
  // Killed rather than drained: workers it is starting would otherwise load in full, taking the CPU the other
  // servers' restarts need. (SIGTERM draining is tested in serve.test.ts.)
  const left = workersOf(serve);
  serve.child.kill('SIGKILL');
  for (const pid of left) process.kill(pid, 'SIGKILL');
  return tally;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('serve --workers: kill -9 under load', () => {
  it.skipIf(process.platform !== 'linux')(
    'workers killed over and over: every request is answered or refused at once, none hangs',
    async () => {
      const tallies = await Promise.all(
        Array.from({ length: SERVERS }, async (_, i) =>
          killUnderLoad(i % 2 === 0 ? { socket: join(tempDir(), 'app.sock') } : { port: await freePort() }),
        ),
      );
      const summary = JSON.stringify(tallies);
      const total = (key: 'kills' | 'hung' | 'pending'): number => tallies.reduce((sum, tally) => sum + tally[key], 0);
      expect(total('kills'), summary).toBeGreaterThanOrEqual(SERVERS * KILLS_PER_SERVER);
      expect(total('hung'), summary).toBe(0);
      expect(total('pending'), summary).toBe(0);
      expect(
        tallies.map((tally) => tally.primaryExit),
        summary,
      ).toEqual(tallies.map(() => null));
    },
    60_000,
  );

  it.skipIf(process.platform !== 'linux')(
    'the only worker killed: the primary stays up, starts another, and the socket keeps --socket-mode',
    async () => {
      const socket = join(tempDir(), 'app.sock');
      const serve = start([
        'serve',
        join(APPS, 'node-handler.mjs'),
        '--socket',
        socket,
        '--socket-mode',
        '0600',
        '--workers',
        '1',
      ]);
      await waitFor(
        () => serve.stderr().includes('listening on') || serve.child.exitCode !== null,
        30_000,
        'serve to listen',
      );
      const first = await oneRequest(socket);
      expect(first.kind).toBe('answered');
      const victim = (first as { pid: number }).pid;
      expect(workersOf(serve).has(victim)).toBe(true);
      process.kill(victim, 'SIGKILL');
      // Node closes the listening socket with its last worker; the next worker binds it anew.
      let replacement = 0;
      await waitFor(
        async () => {
          if (serve.child.exitCode !== null)
            throw new Error(`the primary exited (${serve.child.exitCode}):\n${serve.stderr()}`);
          const outcome = await oneRequest(socket);
          if (outcome.kind === 'answered') replacement = outcome.pid;
          return replacement !== 0;
        },
        20_000,
        'a new worker to answer',
      );
      expect(replacement).not.toBe(victim);
      // The primary sets the mode when it hears that the worker listens, a moment after the worker can answer.
      await waitFor(() => (statSync(socket).mode & 0o777) === 0o600, 5000, '--socket-mode on the new socket');
      serve.child.kill('SIGTERM');
      expect(await serve.exited).toBe(0);
    },
    60_000,
  );
});
