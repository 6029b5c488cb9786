// The client against the engine's own server (which multiplexes): many requests over few connections, aborts,
// the Filter and Authorizer roles, STDERR, binary bodies both ways, a slow reader with bounded memory,
// timeouts, and a backend restart under load.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createServer, type Server } from '../../src/server/server';
import type { FastCGIIncomingMessage, FastCGIServerResponse } from '../../src/server/http-message';
import type { ServerOptions } from '../../src/server/options';
import { rejectionOf, testClient, waitFor } from './helpers';

const quiet = { warn() {}, error() {} };

interface Engine {
  server: Server;
  path: string;
  /** Connections the server accepted. */
  accepted(): number;
}

async function listen(server: Server, socketPath: string): Promise<void> {
  server.listen(socketPath);
  await once(server, 'listening');
}

async function startEngine(
  handler: (req: FastCGIIncomingMessage, res: FastCGIServerResponse) => unknown,
  options: ServerOptions = {},
): Promise<Engine> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcgi-engine-'));
  const socketPath = path.join(dir, 'engine.sock');
  const server = createServer({ logger: quiet, ...options }, handler);
  let accepted = 0;
  server.on('connection', () => accepted++);
  await listen(server, socketPath);
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { server, path: socketPath, accepted: () => accepted };
}

function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

function pattern(length: number, seed = 0): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 131 + seed) & 0xff;
  return bytes;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('client against the engine server', () => {
  it('carries 1000 concurrent requests over 4 multiplexed connections', async () => {
    let concurrent = 0;
    let maxConcurrent = 0;
    const engine = await startEngine(
      (req, res) => {
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        // Answer a turn later so requests really overlap on the connections.
        setImmediate(() => {
          concurrent--;
          res.setHeader('X-Id', req.cgiParams.N!);
          res.end(`n=${req.cgiParams.N}`);
        });
      },
      { maxRequestsPerConnection: 256 },
    );
    const client = testClient({ address: engine.path, poolSize: 4, multiplex: true, maxRequestsPerConnection: 250 });
    const responses = await Promise.all(
      Array.from({ length: 1000 }, async (_, n) => {
        const response = await client.request({ params: { N: String(n), REQUEST_METHOD: 'GET' } });
        return { header: response.headers['x-id'], body: await response.text() };
      }),
    );
    responses.forEach((r, n) => {
      expect(r.header).toBe(String(n));
      expect(r.body).toBe(`n=${n}`);
    });
    expect(engine.accepted()).toBe(4);
    expect(client.stats.opened).toBe(4);
    expect(maxConcurrent).toBeGreaterThan(4);
  });

  it('connects over TCP on 127.0.0.1, in every address spelling', async () => {
    const server = createServer({ logger: quiet }, (req, res) => res.end(`tcp ${req.cgiParams.N}`));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    onTestFinished(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const port = (server.address() as { port: number }).port;
    for (const address of [`127.0.0.1:${port}`, `tcp://127.0.0.1:${port}`, { host: '127.0.0.1', port }, { port }]) {
      const client = testClient({ address });
      expect(await (await client.request({ params: { N: JSON.stringify(address) } })).text()).toBe(
        `tcp ${JSON.stringify(address)}`,
      );
    }
  });

  it("detects multiplexing with multiplex: 'auto' (GET_VALUES answers FCGI_MPXS_CONNS=1)", async () => {
    const engine = await startEngine((_req, res) => setTimeout(() => res.end('ok'), 5));
    const client = testClient({ address: engine.path, poolSize: 2 });
    await (await client.request({})).text();
    await waitFor(() => client.stats.multiplexing, 2000, 'multiplexing detected');
    await Promise.all(Array.from({ length: 100 }, async () => (await client.request({})).text()));
    // Two pooled connections and the probe's.
    expect(engine.accepted()).toBeLessThanOrEqual(3);
  });

  it('aborts a multiplexed request with ABORT_REQUEST: the handler sees it, the other requests finish', async () => {
    let abortedHandlers = 0;
    const engine = await startEngine((req, res) => {
      if (req.cgiParams.SLOW === '1') {
        req.fastcgi.signal.addEventListener('abort', () => abortedHandlers++);
        return; // never answers
      }
      setTimeout(() => res.end('done'), 30);
    });
    const client = testClient({ address: engine.path, poolSize: 1, multiplex: true });
    const controller = new AbortController();
    const slow = client.request({ params: { SLOW: '1' }, signal: controller.signal });
    const others = Array.from({ length: 5 }, () => client.request({}));
    await waitFor(() => client.stats.inFlight === 6);
    controller.abort();
    expect((await rejectionOf(slow)).code).toBe('FCGI_ERR_REQUEST_ABORTED');
    for (const response of await Promise.all(others)) expect(await response.text()).toBe('done');
    await waitFor(() => abortedHandlers === 1, 2000, 'handler abort');
    expect(engine.accepted()).toBe(1);
    expect(client.stats.inFlight).toBe(0);
  });

  it('aborts by destroying the response body mid-stream', async () => {
    let closed = false;
    const engine = await startEngine((req, res) => {
      req.fastcgi.signal.addEventListener('abort', () => (closed = true));
      const timer = setInterval(() => res.write(Buffer.alloc(1024)), 5);
      res.on('close', () => clearInterval(timer));
    });
    const client = testClient({ address: engine.path, multiplex: false });
    const response = await client.request({});
    await once(response.body, 'data');
    response.body.destroy();
    await waitFor(() => closed, 2000, 'server saw the abort');
    await expect(response.completed).rejects.toMatchObject({ code: 'FCGI_ERR_REQUEST_ABORTED' });
  });

  it('plays the Filter role: STDIN, then the DATA stream, with FCGI_DATA_LENGTH and FCGI_DATA_LAST_MOD', async () => {
    const engine = await startEngine((_req, res) => res.end('not a filter'));
    engine.server.on('filter', async (req: FastCGIIncomingMessage, res: FastCGIServerResponse) => {
      const stdin = await readAll(req);
      const data = await readAll(req.data);
      res.setHeader('Content-Type', 'application/json');
      res.end(
        JSON.stringify({
          stdin: stdin.toString(),
          data: sha256(data),
          length: req.cgiParams.FCGI_DATA_LENGTH,
          modified: req.cgiParams.FCGI_DATA_LAST_MOD,
        }),
      );
    });
    const client = testClient({ address: engine.path, multiplex: false });
    const data = pattern(200_000);
    const response = await client.request({
      role: 'filter',
      body: 'options',
      data: Readable.from([data.subarray(0, 70_000), data.subarray(70_000)]),
      dataLastModified: new Date(1_700_000_000_000),
    });
    expect(JSON.parse(await response.text())).toEqual({
      stdin: 'options',
      data: sha256(data),
      length: '200000',
      modified: '1700000000',
    });
  });

  it('plays the Authorizer role: 200 with Variable-* grants, other statuses deny', async () => {
    const engine = await startEngine((_req, res) => res.end('not an authorizer'));
    engine.server.on('authorize', (req: FastCGIIncomingMessage, res: FastCGIServerResponse) => {
      expect(req.cgiParams.CONTENT_LENGTH).toBeUndefined();
      if (req.headers.authorization === 'Bearer good') {
        res.setVariable('REMOTE_USER', 'alice');
        res.allow();
      } else res.deny();
    });
    const client = testClient({ address: engine.path, multiplex: false });
    const granted = await client.request({ role: 'authorizer', params: { HTTP_AUTHORIZATION: 'Bearer good' } });
    expect(granted.status).toBe(200);
    expect(granted.variables).toEqual({ REMOTE_USER: 'alice' });
    await granted.text();
    const denied = await client.request({ role: 'authorizer', params: { HTTP_AUTHORIZATION: 'Bearer bad' } });
    expect(denied.status).toBe(403);
    expect(denied.variables).toEqual({});
    expect((await rejectionOf(client.request({ role: 'authorizer', body: 'x' }))).code).toBe(
      'FCGI_ERR_INVALID_ARGUMENT',
    );
  });

  it('gets UNKNOWN_ROLE for a role the server does not know', async () => {
    const engine = await startEngine((_req, res) => res.end());
    const client = testClient({ address: engine.path, multiplex: false });
    const error = await rejectionOf(client.request({ role: 7 }));
    expect(error.code).toBe('FCGI_ERR_UNKNOWN_ROLE');
  });

  it('sends and receives 10 MB of binary data with exact bytes, and STDERR beside it', async () => {
    const engine = await startEngine(async (req, res) => {
      const body = await readAll(req);
      req.fastcgi.stderr.write(`got ${body.length} bytes\n`);
      res.setHeader('Content-Type', 'application/octet-stream');
      res.end(body);
    });
    const client = testClient({ address: engine.path, multiplex: false });
    const body = pattern(10 * 1024 * 1024, 3);
    const response = await client.request({ params: { REQUEST_METHOD: 'POST' }, body });
    const echoed = await response.buffer();
    expect(echoed.length).toBe(body.length);
    expect(echoed.equals(body)).toBe(true);
    expect((await response.completed).stderr).toBe(`got ${body.length} bytes\n`);
  });

  /** A server writing `total` bytes in 64 KiB pieces as fast as its connection takes them; `produced()` so far. */
  async function producer(total: number): Promise<{ path: string; produced: () => number }> {
    let produced = 0;
    const engine = await startEngine(async (_req, res) => {
      const chunk = Buffer.alloc(64 * 1024, 7);
      while (produced < total) {
        produced += chunk.length;
        if (!res.write(chunk)) await once(res, 'drain');
      }
      res.end();
    });
    return { path: engine.path, produced: () => produced };
  }

  it('holds the server back while the body reader is slow: memory stays bounded', async () => {
    const total = 64 * 1024 * 1024;
    const server = await producer(total);
    const client = testClient({ address: server.path, multiplex: false, highWaterMark: 64 * 1024 });
    const response = await client.request({});
    let consumed = 0;
    let maxAhead = 0;
    let maxBuffered = 0;
    for await (const chunk of response.body) {
      consumed += (chunk as Buffer).length;
      maxAhead = Math.max(maxAhead, server.produced() - consumed);
      maxBuffered = Math.max(maxBuffered, response.body.readableLength);
      // A slow reader for the first 8 MB, then full speed.
      if (consumed < 8 * 1024 * 1024) await delay(1);
    }
    expect(consumed).toBe(total);
    // Server output queue + both socket buffers + the body's buffer: far below what was sent.
    expect(maxAhead).toBeLessThan(4 * 1024 * 1024);
    expect(maxBuffered).toBeLessThanOrEqual(2 * 64 * 1024);
  });

  it('holds the server back while nobody has asked for the body yet, then delivers all of it', async () => {
    const total = 16 * 1024 * 1024;
    const server = await producer(total);
    const client = testClient({ address: server.path, multiplex: false, highWaterMark: 64 * 1024 });
    const response = await client.request({});
    // The body stream does not exist yet: the bytes wait in the request, and past highWaterMark the connection
    // stops reading, so the server stalls far short of the total.
    await delay(300);
    const stalledAt = server.produced();
    expect(stalledAt).toBeLessThan(4 * 1024 * 1024);
    await delay(200);
    expect(server.produced()).toBe(stalledAt);
    let consumed = 0;
    for await (const chunk of response.body) consumed += (chunk as Buffer).length;
    expect(consumed).toBe(total);
  });

  it('times a silent handler out with FCGI_ERR_REQUEST_TIMEOUT and the server sees the request aborted', async () => {
    let aborted = 0;
    const engine = await startEngine((req) => {
      req.fastcgi.signal.addEventListener('abort', () => aborted++);
    });
    for (const multiplex of [false, true]) {
      const client = testClient({ address: engine.path, multiplex, requestTimeout: 100 });
      const error = await rejectionOf(client.request({}));
      expect(error.code).toBe('FCGI_ERR_REQUEST_TIMEOUT');
    }
    // Closing (unmultiplexed) and ABORT_REQUEST (multiplexed) both reach the handler.
    await waitFor(() => aborted === 2, 2000, 'both handlers aborted');
  });

  it('survives a backend restart under load: only requests in flight fail, the pool recovers by itself', async () => {
    const handler = (_req: FastCGIIncomingMessage, res: FastCGIServerResponse) => setTimeout(() => res.end('ok'), 2);
    const engine = await startEngine(handler);
    const client = testClient({ address: engine.path, poolSize: 4, multiplex: false, connectRetryWindow: 3000 });
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const inFlightAtRestart: number[] = [];
    const workers = Array.from({ length: 8 }, async () => {
      while (!stop) {
        try {
          const response = await client.request({});
          if ((await response.text()) === 'ok') ok++;
        } catch (error) {
          failures.push((error as { code: string }).code);
        }
      }
    });
    await waitFor(() => ok >= 200, 10_000, 'load');
    // Restart: drop every connection, stop listening, come back on the same path 100 ms later.
    inFlightAtRestart.push(client.stats.inFlight);
    engine.server.closeAllConnections();
    await new Promise<void>((resolve) => engine.server.close(() => resolve()));
    const okBefore = ok;
    await delay(100);
    const restarted = createServer({ logger: quiet }, handler);
    onTestFinished(async () => {
      restarted.closeAllConnections();
      await new Promise<void>((resolve) => restarted.close(() => resolve()));
    });
    await listen(restarted, engine.path);
    await waitFor(() => ok >= okBefore + 200, 10_000, 'load after the restart');
    stop = true;
    await Promise.all(workers);
    expect(failures.length).toBeLessThanOrEqual(inFlightAtRestart[0]!);
    for (const code of failures) expect(code).toBe('FCGI_ERR_BACKEND_CLOSED');
  });
});
