// Memory is bounded by the limits, not by how a peer cuts its records, and a peer that does not read cannot
// make output pile up. Each attack runs against a default server in its own process with a 256 MiB heap
// (test/fixtures/apps/abuse-app.ts), measured by what that process reports after a GC, while a legitimate
// request on another connection must still be answered.
import { describe, expect, it, onTestFinished } from 'vitest';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { encodeBeginRequest, encodeRecord } from '../../src/wire/records';
import { Flag, RecordType } from '../../src/wire/constants';
import { TestPeer, buildRequest, parseCgiResponse } from '../helpers/fcgi-peer';

const MiB = 1024 * 1024;

interface Memory {
  rss: number;
  heapUsed: number;
  arrayBuffers: number;
  bufferedBytes: number;
  connections: number;
}

interface App {
  path: string;
  /** clientError codes printed so far. */
  errors: string[];
  memory(): Promise<Memory>;
  /** A legitimate request on a new connection; resolves to the body. */
  ok(): Promise<string>;
  exited(): boolean;
}

async function startApp(options: Record<string, unknown> = {}): Promise<App> {
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-abuse-'));
  const path = join(dir, 'app.sock');
  const child = spawn(
    process.execPath,
    [
      '--expose-gc',
      '--max-old-space-size=256',
      '--import',
      'tsx',
      join(__dirname, '../fixtures/apps/abuse-app.ts'),
      path,
      JSON.stringify(options),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let exited = false;
  child.once('exit', () => (exited = true));
  onTestFinished(async () => {
    if (!exited) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const errors: string[] = [];
  const lines = createInterface({ input: child.stdout! });
  const listening = new Promise<void>((resolve) =>
    lines.on('line', (line) => {
      if (line === 'listening') resolve();
      else if (line.startsWith('clientError ')) errors.push(line.slice(12));
    }),
  );
  await listening;
  const get = async (uri: string): Promise<string> => {
    const peer = await TestPeer.connect(path);
    try {
      const response = await peer.request({ params: { REQUEST_METHOD: 'GET', REQUEST_URI: uri }, timeoutMs: 20_000 });
      return parseCgiResponse(response.stdout).body.toString();
    } finally {
      peer.destroy();
    }
  };
  return {
    path,
    errors,
    memory: async () => JSON.parse(await get('/memory')) as Memory,
    ok: () => get('/ok'),
    exited: () => exited,
  };
}

/** Waits until `check()` holds; fails with what it waited for after `ms`. */
async function until(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${check.toString()}`);
    await delay(20);
  }
}

/** What the process holds in JS objects and buffers. */
const held = (m: Memory): number => m.heapUsed + m.arrayBuffers;

/** A raw connection that reads nothing unless told to. */
async function rawConnection(path: string): Promise<Socket> {
  const socket = connect(path);
  await once(socket, 'connect');
  socket.on('error', () => undefined);
  socket.setMaxListeners(0);
  onTestFinished(() => {
    socket.destroy();
  });
  return socket;
}

/** Writes everything, waiting for 'drain' where needed; resolves false if the socket closed first. */
async function writeAll(socket: Socket, chunks: Buffer[]): Promise<boolean> {
  for (const chunk of chunks) {
    if (socket.destroyed) return false;
    if (!socket.write(chunk)) {
      const drained = await new Promise<boolean>((resolve) => {
        const done = (value: boolean) => () => {
          socket.off('drain', onDrain);
          socket.off('close', onClose);
          resolve(value);
        };
        const onDrain = done(true);
        const onClose = done(false);
        socket.once('drain', onDrain);
        socket.once('close', onClose);
      });
      if (!drained) return false;
    }
  }
  return true;
}

/** `bytes` of `type` content as 1-byte records (each padded to 8 bytes, as a well-behaved peer pads). */
function oneByteRecords(type: number, requestId: number, content: Buffer): Buffer[] {
  const RECORD = 16;
  const out: Buffer[] = [];
  const PER_CHUNK = 64 * 1024;
  for (let start = 0; start < content.length; start += PER_CHUNK) {
    const n = Math.min(PER_CHUNK, content.length - start);
    const chunk = Buffer.alloc(n * RECORD);
    for (let i = 0; i < n; i++) {
      const o = i * RECORD;
      chunk[o] = 1;
      chunk[o + 1] = type;
      chunk[o + 2] = requestId >> 8;
      chunk[o + 3] = requestId & 0xff;
      chunk[o + 5] = 1;
      chunk[o + 6] = 7;
      chunk[o + 8] = content[start + i]!;
    }
    out.push(chunk);
  }
  return out;
}

/** A params block of exactly `bytes` bytes: one pair X=… with a 4-byte value length. */
function paramsBlock(bytes: number): Buffer {
  const valueLength = bytes - 6;
  const block = Buffer.alloc(bytes, 0x61);
  block[0] = 1;
  block.writeUInt32BE((valueLength | 0x80000000) >>> 0, 1);
  block[5] = 0x58;
  return block;
}

/** A GET_VALUES round trip on `socket`: once answered, the server has decoded everything sent before it. */
async function sync(socket: Socket): Promise<void> {
  const answered = new Promise<void>((resolve, reject) => {
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      seen = Buffer.concat([seen, chunk]);
      if (seen.includes(Buffer.from('FCGI_MPXS_CONNS'))) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('connection closed before the GET_VALUES answer')));
  });
  socket.write(encodeRecord(RecordType.GET_VALUES, 0, Buffer.from([15, 0, ...Buffer.from('FCGI_MPXS_CONNS')])));
  await answered;
}

describe('memory under abuse (default limits, 256 MiB heap)', () => {
  it('PARAMS cut into 1-byte records hold at most 2x maxParamsBytes per request, given back when the connection closes', async () => {
    const app = await startApp();
    const before = await app.memory();
    // One request of 1,000,000 params bytes as 1-byte records (16 MB on the wire), never ended.
    const socket = await rawConnection(app.path);
    await writeAll(socket, [
      encodeBeginRequest(1, 1, Flag.KEEP_CONN),
      ...oneByteRecords(RecordType.PARAMS, 1, paramsBlock(1_000_000)),
    ]);
    await sync(socket);
    const one = await app.memory();
    const growth = held(one) - held(before);
    console.log(
      `one request's params in 1-byte records: +${(growth / MiB).toFixed(1)} MiB held, ${one.bufferedBytes} bytes charged`,
    );
    expect(growth).toBeLessThan(2 * MiB + MiB);
    expect(one.bufferedBytes).toBeGreaterThanOrEqual(1_000_000);
    expect(one.bufferedBytes).toBeLessThanOrEqual(2 * MiB);
    // Two more on the same connection: each holds its own 2x at most, and all of it goes when it closes.
    await writeAll(
      socket,
      [2, 3].flatMap((id) => [
        encodeBeginRequest(id, 1, Flag.KEEP_CONN),
        ...oneByteRecords(RecordType.PARAMS, id, paramsBlock(1_000_000)),
      ]),
    );
    await sync(socket);
    const three = await app.memory();
    expect(three.bufferedBytes).toBeLessThanOrEqual(3 * 2 * MiB);
    expect(held(three) - held(before)).toBeLessThan(3 * 2 * MiB + MiB);
    expect(await app.ok()).toBe('ok');
    socket.destroy();
    await delay(100);
    // Only the /memory request's own params are left.
    expect((await app.memory()).bufferedBytes).toBeLessThan(4096);
    expect(app.exited()).toBe(false);
  }, 60_000);

  it('STDIN cut into 1-byte records holds at most about 2x its bytes while the handler does not read', async () => {
    const app = await startApp();
    const before = await app.memory();
    const CONNECTIONS = 20;
    const BODY = 60_000; // under inputHighWaterMark (64 KiB): the server keeps reading, so it all arrives
    const sockets = await Promise.all(Array.from({ length: CONNECTIONS }, () => rawConnection(app.path)));
    for (const socket of sockets) {
      const head = buildRequest({
        params: { REQUEST_METHOD: 'POST', REQUEST_URI: '/hold', CONTENT_LENGTH: String(BODY) },
        noStdinEnd: true,
      });
      await writeAll(socket, [head, ...oneByteRecords(RecordType.STDIN, 1, Buffer.alloc(BODY, 0x63))]);
    }
    await Promise.all(sockets.map(sync));
    const after = await app.memory();
    const growth = held(after) - held(before);
    console.log(`${CONNECTIONS} bodies of ${BODY} bytes in 1-byte records: +${(growth / MiB).toFixed(1)} MiB held`);
    expect(growth).toBeLessThan(CONNECTIONS * 2 * BODY + 4 * MiB);
    expect(await app.ok()).toBe('ok');
  }, 60_000);

  it('params of many requests on one connection stop at the connection budget; many connections at the server budget', async () => {
    const app = await startApp({ maxBufferBytes: 24 * MiB });
    // 128 requests x 1 MiB of params in ordinary records on one connection, none ended.
    const socket = await rawConnection(app.path);
    const block = paramsBlock(MiB - 64);
    const requests = Array.from({ length: 128 }, (_, i) =>
      Buffer.concat([
        encodeBeginRequest(i + 1, 1, Flag.KEEP_CONN),
        encodeRecord(RecordType.PARAMS, i + 1, block.subarray(0, 60_000)),
        ...chunksOf(block.subarray(60_000), i + 1),
      ]),
    );
    await writeAll(socket, requests);
    await until(() => app.errors.includes('FCGI_ERR_BUFFER_LIMIT'), 10_000);
    // Six connections of 6 MiB each (under their own budget): together over the server's 24 MiB.
    const sockets = await Promise.all(Array.from({ length: 6 }, () => rawConnection(app.path)));
    await Promise.all(sockets.map((s) => writeAll(s, requests.slice(0, 6))));
    await delay(200);
    const m = await app.memory();
    console.log(
      `server budget: ${(m.bufferedBytes / MiB).toFixed(1)} MiB charged, ${m.connections} connections, errors ${app.errors.join(' ')}`,
    );
    expect(m.bufferedBytes).toBeLessThanOrEqual(24 * MiB);
    expect(app.errors.filter((e) => e === 'FCGI_ERR_BUFFER_LIMIT').length).toBeGreaterThanOrEqual(2);
    expect(await app.ok()).toBe('ok');
  }, 60_000);

  it('a peer that never reads: control answers and pipelined responses stop at the output limit, then sendTimeout closes it', async () => {
    const app = await startApp({ sendTimeout: 1500 });
    const before = await app.memory();
    // 128 pipelined requests for a 1 MiB response each, multiplexed on one connection that reads nothing.
    const socket = await rawConnection(app.path);
    socket.pause();
    const requests = Array.from({ length: 128 }, (_, i) =>
      buildRequest({ requestId: i + 1, keepConn: true, params: { REQUEST_METHOD: 'GET', REQUEST_URI: '/big' } }),
    );
    // And GET_VALUES, 8 MB of queries: each answer is queued for a peer that reads nothing.
    const query = encodeRecord(RecordType.GET_VALUES, 0, Buffer.from([15, 0, ...Buffer.from('FCGI_MPXS_CONNS')]));
    const queries = Array.from({ length: 64 }, () => Buffer.concat(Array.from({ length: 4096 }, () => query)));
    void writeAll(socket, [...requests, ...queries]);
    await delay(800);
    const during = await app.memory();
    const growth = held(during) - held(before);
    console.log(`peer not reading: +${(growth / MiB).toFixed(1)} MiB held`);
    expect(growth).toBeLessThan(16 * MiB);
    await until(() => app.errors.includes('FCGI_ERR_SEND_TIMEOUT'), 8000);
    expect(await app.ok()).toBe('ok');
  }, 60_000);
});

function chunksOf(content: Buffer, requestId: number): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < content.length; o += 65_528)
    out.push(encodeRecord(RecordType.PARAMS, requestId, content.subarray(o, Math.min(content.length, o + 65_528))));
  return out;
}
