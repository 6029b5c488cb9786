// The gateway as node:http's handler (and Express's), in front of the engine's server, a scripted backend and
// php-fpm: params reach the backend, uploads are buffered (memory, then temp file, then 413), responses stream
// back with their headers, and failures become 502 / 504 / 503 with the reason logged.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type Server as HttpServer,
} from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import express from 'express';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createGateway, type Gateway, type GatewayOptions } from '../../src/gateway/gateway';
import { createServer } from '../../src/server/server';
import { RecordType } from '../../src/wire/constants';
import { encodeStream } from '../../src/wire/records';
import type { FastCGIIncomingMessage, FastCGIServerResponse } from '../../src/server/http-message';
import { waitFor } from '../client/helpers';
import { PhpFpm, PHP_FIXTURES, phpFpmBinary } from '../client/php-fpm-harness';
import { ScriptedBackend } from '../client/scripted-backend';

function logger() {
  const warnings: string[] = [];
  const errors: string[] = [];
  return { warnings, errors, warn: (m: string) => warnings.push(m), error: (m: string) => errors.push(m) };
}

async function tempDir(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcgi-gw-'));
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** An engine server on a unix socket; its handler sees what the gateway sent. */
async function engine(handler: (req: FastCGIIncomingMessage, res: FastCGIServerResponse) => unknown): Promise<string> {
  const socketPath = path.join(await tempDir(), 'app.sock');
  const server = createServer({ logger: { warn() {}, error() {} } }, handler);
  server.listen(socketPath);
  await once(server, 'listening');
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return socketPath;
}

/** node:http on 127.0.0.1:0 with the gateway as its handler. */
async function front(options: GatewayOptions): Promise<{ url: string; gateway: Gateway; http: HttpServer }> {
  const gateway = createGateway(options);
  const http = createHttpServer(gateway);
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  onTestFinished(async () => {
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
    gateway.client.destroy();
  });
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, gateway, http };
}

/** An Express app on 127.0.0.1:0, closed with its gateway when the test finishes; resolves to its base URL. */
async function listenExpress(app: express.Express, gateway: Gateway): Promise<string> {
  const http = app.listen(0, '127.0.0.1');
  await once(http, 'listening');
  onTestFinished(async () => {
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
    await gateway.close();
  });
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
}

interface Reply {
  status: number;
  statusText: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: Buffer;
}

/** One HTTP request with node:http (fetch would hide hop-by-hop details and Set-Cookie order). */
function send(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: Buffer | string | Buffer[] } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          statusText: res.statusMessage!,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: Buffer.concat(chunks),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    if (Array.isArray(options.body)) {
      // Chunked: no Content-Length.
      for (const piece of options.body) req.write(piece);
      req.end();
    } else req.end(options.body);
  });
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('gateway in front of the engine server', () => {
  it('forwards method, path, query and headers as CGI params and streams the response back', async () => {
    const address = await engine((req, res) => {
      const p = req.cgiParams;
      res.setHeader('Set-Cookie', ['a=1', 'b=2']);
      res.setHeader('Content-Type', 'application/json');
      res.end(
        JSON.stringify({
          method: p.REQUEST_METHOD,
          uri: p.REQUEST_URI,
          script: p.SCRIPT_FILENAME,
          pathInfo: p.PATH_INFO,
          query: p.QUERY_STRING,
          agent: p.HTTP_X_AGENT,
          proxy: p.HTTP_PROXY ?? null,
        }),
      );
    });
    const { url } = await front({ upstream: address, documentRoot: '/srv/app', logger: logger() });
    const reply = await send(`${url}/index.php/a/b?x=1`, { headers: { 'X-Agent': 'test', Proxy: 'http://evil' } });
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body.toString())).toEqual({
      method: 'GET',
      uri: '/index.php/a/b?x=1',
      script: '/srv/app/index.php',
      pathInfo: '/a/b',
      query: 'x=1',
      agent: 'test',
      proxy: null,
    });
    expect(reply.headers['set-cookie']).toEqual(['a=1', 'b=2']);
  });

  it('buffers uploads in memory, then in a temp file, and refuses them past maxBytes with 413', async () => {
    const address = await engine(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks);
      res.end(JSON.stringify({ length: req.cgiParams.CONTENT_LENGTH, sha: sha256(body) }));
    });
    const tmp = await tempDir();
    const log = logger();
    const { url } = await front({
      upstream: address,
      documentRoot: '/srv',
      bufferRequests: { memory: 1024, maxBytes: 300_000, tmpDir: tmp },
      logger: log,
    });
    const small = Buffer.alloc(500, 1);
    const large = Buffer.alloc(200_000, 2);
    expect(JSON.parse((await send(`${url}/up.php`, { method: 'POST', body: small })).body.toString())).toEqual({
      length: '500',
      sha: sha256(small),
    });
    expect(JSON.parse((await send(`${url}/up.php`, { method: 'POST', body: large })).body.toString())).toEqual({
      length: '200000',
      sha: sha256(large),
    });
    // Chunked upload (no Content-Length): the gateway measures it, so CONTENT_LENGTH is exact.
    const pieces = [Buffer.alloc(70_000, 3), Buffer.alloc(30_000, 4)];
    expect(JSON.parse((await send(`${url}/up.php`, { method: 'POST', body: pieces })).body.toString())).toEqual({
      length: '100000',
      sha: sha256(Buffer.concat(pieces)),
    });
    const refused = await send(`${url}/up.php`, { method: 'POST', body: Buffer.alloc(400_000) });
    expect(refused.status).toBe(413);
    expect(log.errors.some((e) => e.startsWith('413 for POST /up.php') && e.includes('FCGI_ERR_BODY_TOO_LARGE'))).toBe(
      true,
    );
    // Temp files are unlinked as soon as they are open.
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('streams uploads with a declared length when buffering is off', async () => {
    let sawLength = '';
    const address = await engine(async (req, res) => {
      sawLength = req.cgiParams.CONTENT_LENGTH ?? '';
      let n = 0;
      for await (const chunk of req) n += (chunk as Buffer).length;
      res.end(String(n));
    });
    const { url } = await front({ upstream: address, documentRoot: '/srv', bufferRequests: false, logger: logger() });
    expect((await send(`${url}/s.php`, { method: 'PUT', body: Buffer.alloc(1_000_000) })).body.toString()).toBe(
      '1000000',
    );
    expect(sawLength).toBe('1000000');
  });

  it('logs STDERR from the backend as warnings', async () => {
    const address = await engine((req, res) => {
      req.fastcgi.stderr.write('something odd\n');
      res.end('ok');
    });
    const log = logger();
    const { url } = await front({ upstream: address, documentRoot: '/srv', logger: log });
    expect((await send(`${url}/w.php`)).body.toString()).toBe('ok');
    await waitFor(() => log.warnings.length > 0, 2000, 'stderr logged');
    // The request it belongs to rides along: method, URI and the upstream it went to.
    expect(log.warnings[0]).toBe(
      `stderr from /srv/w.php: something odd [method=GET uri=/w.php upstream=unix:${address}]`,
    );
  });

  it('answers 502 when the backend refuses the connection, logging why', async () => {
    const log = logger();
    const { url } = await front({
      upstream: { address: path.join(await tempDir(), 'none.sock'), connectRetryWindow: 0 },
      documentRoot: '/srv',
      logger: log,
    });
    const reply = await send(`${url}/x.php`);
    expect(reply.status).toBe(502);
    expect(reply.body.toString()).toBe('Bad Gateway\n');
    expect(log.errors).toHaveLength(1);
    expect(log.errors[0]).toMatch(
      /^502 for GET \/x\.php: cannot connect to the FastCGI backend at unix:.*none\.sock: ENOENT \[FCGI_ERR_CONNECT\]$/,
    );
  });

  it('answers 504 when the backend does not answer in time', async () => {
    const address = await engine(() => {});
    const log = logger();
    const { url } = await front({ upstream: address, documentRoot: '/srv', timeouts: { request: 100 }, logger: log });
    const reply = await send(`${url}/slow.php`);
    expect(reply.status).toBe(504);
    expect(log.errors[0]).toMatch(/^504 for GET \/slow\.php: .*\[FCGI_ERR_REQUEST_TIMEOUT\]$/);
  });

  it('aborts the backend request when the HTTP client goes away', async () => {
    let aborted = false;
    const address = await engine((req) => {
      req.fastcgi.signal.addEventListener('abort', () => (aborted = true));
    });
    const { url } = await front({ upstream: address, documentRoot: '/srv', logger: logger() });
    const req = httpRequest(`${url}/hang.php`, { agent: false });
    req.on('error', () => {});
    req.end();
    await delay(100);
    req.destroy();
    await waitFor(() => aborted, 2000, 'backend request aborted');
  });

  it('works as Express middleware under a mount path', async () => {
    const address = await engine((req, res) =>
      res.end(`${req.cgiParams.SCRIPT_NAME} ${req.cgiParams.SCRIPT_FILENAME} ${req.cgiParams.REQUEST_URI}`),
    );
    const gateway = createGateway({ upstream: address, documentRoot: '/srv/php', logger: logger() });
    const app = express();
    app.use('/php', gateway);
    const reply = await send(`${await listenExpress(app, gateway)}/php/app.php?x=1`);
    expect(reply.body.toString()).toBe('/php/app.php /srv/php/app.php /php/app.php?x=1');
  });
});

describe('gateway inside Express with middleware that sets headers first', () => {
  async function expressFront(address: string, log = logger()): Promise<string> {
    const gateway = createGateway({
      upstream: address,
      documentRoot: '/srv',
      logger: log,
      bufferRequests: { maxBytes: 300_000 },
    });
    const app = express(); // sets X-Powered-By on every response
    app.use((_req, res, next) => {
      res.setHeader('X-Frame-Options', 'DENY'); // as helmet does
      res.setHeader('Vary', 'Origin'); // as cors does
      next();
    });
    app.use(gateway);
    return listenExpress(app, gateway);
  }

  it('keeps every Set-Cookie (and every other repeated header) the backend sends', async () => {
    const address = await engine((_req, res) => {
      res.setHeader('Set-Cookie', ['session=abc; HttpOnly', 'csrf=xyz', 'lang=de']);
      res.setHeader('Link', ['</a.css>; rel=preload', '</b.js>; rel=preload']);
      res.setHeader('X-Powered-By', 'PHP/8.2');
      res.end('ok');
    });
    const reply = await send(`${await expressFront(address)}/login.php`);
    expect(reply.status).toBe(200);
    expect(reply.headers['set-cookie']).toEqual(['session=abc; HttpOnly', 'csrf=xyz', 'lang=de']);
    expect(
      reply.rawHeaders.filter((_v, i) => i % 2 === 0 && reply.rawHeaders[i]!.toLowerCase() === 'link'),
    ).toHaveLength(2);
    expect(reply.headers['x-frame-options']).toBe('DENY');
    expect(reply.headers['x-powered-by']).toBe('PHP/8.2');
  });

  it('refuses an upload over maxBytes from its Content-Length, before reading it, and closes the connection', async () => {
    let backendCalls = 0;
    const address = await engine((_req, res) => {
      backendCalls++;
      res.end('ok');
    });
    const log = logger();
    const base = new URL(await expressFront(address, log));
    const socket = (await import('node:net')).connect(Number(base.port), base.hostname);
    await once(socket, 'connect');
    onTestFinished(() => {
      socket.destroy();
    });
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    const ended = once(socket, 'end');
    // Headers and the first 1000 of 400,000 bytes; the rest is never sent.
    socket.write(
      `POST /up.php HTTP/1.1\r\nHost: test\r\nContent-Length: 400000\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
    socket.write(Buffer.alloc(1000, 1));
    await Promise.race([
      ended,
      delay(3000).then(() => Promise.reject(new Error('the gateway did not close the connection'))),
    ]);
    const text = Buffer.concat(received).toString('latin1');
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(text.toLowerCase()).toContain('connection: close');
    expect(backendCalls).toBe(0);
    expect(log.errors.some((e) => e.startsWith('413 for POST /up.php') && e.includes('400000'))).toBe(true);
  });
});

describe('gateway in front of a misbehaving backend', () => {
  it('answers 502 for a malformed header block and for a malformed record, and drops hop-by-hop headers from the app', async () => {
    let n = 0;
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        const which = n++;
        if (which === 0) connection.respond(request.requestId, 'HTTP/1.1 200 OK\r\n\r\n');
        else if (which === 1) connection.raw(Buffer.from('HTTP/1.1 200 OK\r\n\r\n'));
        else
          connection.respond(
            request.requestId,
            'Status: 201 Made\r\nTransfer-Encoding: gzip\r\nConnection: close\r\nX-Kept: 1\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
          );
      },
    });
    const log = logger();
    const { url } = await front({
      upstream: { address: backend.path, multiplex: false },
      documentRoot: '/srv',
      logger: log,
    });
    expect((await send(`${url}/a.php`)).status).toBe(502);
    expect(log.errors[0]).toMatch(/\[FCGI_ERR_CGI_HEADER_MALFORMED\]$/);
    expect((await send(`${url}/b.php`)).status).toBe(502);
    expect(log.errors[1]).toMatch(/invalid record version 72.*\[FCGI_ERR_BAD_VERSION\]$/);
    const reply = await send(`${url}/c.php`, { headers: { Connection: 'keep-alive' } });
    expect(reply.status).toBe(201);
    expect(reply.statusText).toBe('Made');
    expect(reply.headers['x-kept']).toBe('1');
    // node:http framed the response itself and kept the connection: the app's hop-by-hop headers were dropped.
    expect(reply.headers['transfer-encoding']).toBe('chunked');
    expect(reply.headers.connection).toBe('keep-alive');
    // The app's chunk framing is the body: node:http frames the response itself.
    expect(reply.body.toString()).toBe('3\r\nabc\r\n0\r\n\r\n');
  });

  it('writes a response that arrived whole in one go, and streams one still arriving: same bytes either way', async () => {
    const body = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        const head = 'Content-Type: application/octet-stream\r\n\r\n';
        const which = request.params.SCRIPT_NAME;
        if (which === '/whole.php')
          return connection.respond(request.requestId, Buffer.concat([Buffer.from(head), body]));
        if (which === '/empty.php')
          return connection.respond(request.requestId, 'Status: 204 No Content\r\n\r\n', { noTerminator: true });
        // Headers and a first piece now, the rest later: the gateway must stream.
        connection.stdout(request.requestId, Buffer.concat([Buffer.from(head), body.subarray(0, 1000)]));
        setTimeout(() => connection.respond(request.requestId, body.subarray(1000)), 50);
      },
    });
    const { url } = await front({
      upstream: { address: backend.path, multiplex: false },
      documentRoot: '/srv',
      logger: logger(),
    });
    for (const path of ['/whole.php', '/later.php', '/whole.php']) {
      const reply = await send(`${url}${path}`);
      expect(reply.status).toBe(200);
      expect(reply.body.equals(body)).toBe(true);
    }
    const empty = await send(`${url}/empty.php`);
    expect(empty.status).toBe(204);
    expect(empty.body.length).toBe(0);
  });
  it('streams the body an interceptResponse looked at and declined', async () => {
    const body = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        connection.stdout(
          request.requestId,
          Buffer.concat([Buffer.from('Content-Type: x/y\r\n\r\n'), body.subarray(0, 1000)]),
        );
        setTimeout(() => connection.respond(request.requestId, body.subarray(1000)), 20);
      },
    });
    let ended = false;
    const log = logger();
    const { url } = await front({
      upstream: { address: backend.path, multiplex: false },
      documentRoot: '/srv',
      logger: log,
      interceptResponse: (response) => {
        response.body.once('end', () => (ended = true));
        return false;
      },
    });
    const reply = await send(`${url}/seen.php`);
    expect(reply.status).toBe(200);
    expect(reply.body.equals(body)).toBe(true);
    expect(ended).toBe(true);
    expect(log.errors).toEqual([]);
  });

  it('cuts the HTTP response off and logs why when the backend goes away in the middle of a body', async () => {
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        connection.stdout(request.requestId, 'Content-Length: 100000\r\n\r\n');
        // Later than the head, so the body is streaming when the connection dies.
        setTimeout(() => {
          connection.stdout(request.requestId, Buffer.alloc(1000, 0x62));
          setTimeout(() => connection.socket.destroy(), 20);
        }, 20);
      },
    });
    const log = logger();
    const { url } = await front({
      upstream: { address: backend.path, multiplex: false },
      documentRoot: '/srv',
      logger: log,
    });
    const outcome = await new Promise<{ status: number; bytes: number; aborted: boolean }>((resolve) => {
      const req = httpRequest(`${url}/dies.php`, { agent: false }, (res) => {
        let bytes = 0;
        res.on('data', (chunk: Buffer) => (bytes += chunk.length));
        res.on('error', () => {});
        res.on('close', () => resolve({ status: res.statusCode!, bytes, aborted: !res.complete }));
      });
      req.on('error', () => {});
      req.end();
    });
    expect(outcome).toEqual({ status: 200, bytes: 1000, aborted: true });
    expect(log.errors).toHaveLength(1);
    expect(log.errors[0]).toMatch(/^GET \/dies\.php: response cut off after the headers: .*\[FCGI_ERR_/);
  });

  it('holds the backend while the HTTP client does not read, then delivers every byte once it does', async () => {
    // 64 MiB from the backend, written as fast as its socket takes it; the HTTP client reads nothing for a
    // while. The gateway must stop reading the backend (not buffer the body in res): what the backend gets
    // out meanwhile is bounded by socket buffers and the client's highWaterMark, far below the body.
    const total = 64 * 1024 * 1024;
    const piece = Buffer.alloc(60 * 1024, 0x61);
    let written = 0;
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        connection.stdout(request.requestId, `Content-Length: ${total}\r\n\r\n`);
        const pump = (): void => {
          while (written < total) {
            const size = Math.min(piece.length, total - written);
            written += size;
            const more = connection.socket.write(
              encodeStream(RecordType.STDOUT, request.requestId, piece.subarray(0, size)),
            );
            if (!more) return void connection.socket.once('drain', pump);
          }
          connection.end(request.requestId);
        };
        pump();
      },
    });
    const { url } = await front({
      upstream: { address: backend.path, multiplex: false },
      documentRoot: '/srv',
      logger: logger(),
    });
    const socket = connect({ port: Number(new URL(url).port), host: '127.0.0.1' });
    onTestFinished(() => {
      socket.destroy();
    });
    socket.pause();
    socket.write('GET /big.php HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n');
    await waitFor(() => written > 0);
    await delay(400);
    const heldAt = written;
    expect(heldAt).toBeLessThan(total / 4);
    let received = 0;
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.resume();
    await once(socket, 'end');
    expect(written).toBe(total);
    // The head, then every body byte.
    expect(received).toBeGreaterThan(total);
    expect(received).toBeLessThan(total + 1024);
  });
});

describe('gateway in front of php-fpm (php8.2-fpm)', () => {
  it('serves GET and POST, PATH_INFO, cookies and statuses from PHP scripts', { timeout: 20_000 }, async (context) => {
    const php = new PhpFpm(phpFpmBinary(context), { maxChildren: 2 });
    onTestFinished(() => php.dispose());
    await php.start();
    const log = logger();
    const { url } = await front({
      upstream: { address: php.socketPath, poolSize: 2 },
      documentRoot: PHP_FIXTURES,
      logger: log,
    });
    const hello = await send(`${url}/hello.php?who=me`);
    expect(hello.status).toBe(200);
    expect(hello.body.toString()).toBe('hello GET who=me /hello.php\n');
    const body = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
    const echo = await send(`${url}/echo.php`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body,
    });
    expect(echo.headers['x-input-sha256']).toBe(sha256(body));
    expect(echo.body.equals(body)).toBe(true);
    const params = JSON.parse(
      (await send(`${url}/params.php/extra/path?q=1`, { headers: { Cookie: 'k=v' } })).body.toString(),
    ) as { server: Record<string, string> };
    expect(params.server).toMatchObject({
      SCRIPT_NAME: '/params.php',
      PATH_INFO: '/extra/path',
      QUERY_STRING: 'q=1',
      HTTP_COOKIE: 'k=v',
      REQUEST_URI: '/params.php/extra/path?q=1',
    });
    expect(params.server.HTTP_PROXY).toBeUndefined();
    const missing = await send(`${url}/status.php`);
    expect(missing.status).toBe(404);
    expect(missing.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    const stderr = await send(`${url}/stderr.php`);
    expect(stderr.body.toString()).toBe('body after stderr\n');
    await waitFor(
      () => log.warnings.some((w) => w.includes('PHP message: first message to stderr')),
      2000,
      'php stderr logged',
    );
    // A script that does not exist: php-fpm answers 404 "File not found." and logs "Primary script unknown".
    const absent = await send(`${url}/absent.php`);
    expect(absent.status).toBe(404);
  });
});
