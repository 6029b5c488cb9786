// The server's limits, timeouts and both directions of backpressure, observed on the wire and on the server's
// own socket: createServer on 127.0.0.1 with the test peer playing the web server.
import type * as net from 'node:net';
import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { COALESCE_LIMIT } from '../../src/wire/record-writer';
import { describe, expect, it } from 'vitest';
import { createServer, type RequestListener, type Server } from '../../src/server/server';
import type { FastCGIIncomingMessage } from '../../src/server/http-message';
import type { ServerOptions } from '../../src/server/options';
import { ErrorCode, type FastCGIError } from '../../src/errors';
import { ProtocolStatus, RecordType } from '../../src/wire/constants';
import { deferred, within } from '../helpers/async';
import { TestPeer, buildRequest, parseCgiResponse } from '../helpers/fcgi-peer';
import { beginRequest, pair, record } from '../helpers/records';
import { listenForTest } from './harness';

// ---- Harness ------------------------------------------------------------------------------------------------

interface Harness {
  server: Server;
  /** Server-side sockets, in accept order. */
  sockets: net.Socket[];
  /** The first server-side socket, once accepted. */
  firstSocket: Promise<net.Socket>;
  /** Every clientError the server emitted, with the time it did. */
  clientErrors: Array<{ error: FastCGIError; at: number }>;
  connect(): Promise<TestPeer>;
}

/** Starts a server on 127.0.0.1 port 0 that records clientErrors; everything is closed when the test finishes. */
async function start(options: ServerOptions, handler?: RequestListener): Promise<Harness> {
  const server = createServer({ logger: { warn() {}, error() {} }, ...options }, handler);
  const sockets: net.Socket[] = [];
  const clientErrors: Harness['clientErrors'] = [];
  let accepted!: (socket: net.Socket) => void;
  const firstSocket = new Promise<net.Socket>((resolve) => (accepted = resolve));
  server.on('connection', (socket: net.Socket) => {
    sockets.push(socket);
    accepted(socket);
  });
  server.on('clientError', (error: FastCGIError) => clientErrors.push({ error, at: Date.now() }));
  const { connect } = await listenForTest(server);
  return {
    server,
    sockets,
    firstSocket,
    clientErrors,
    connect,
  };
}

function nextClientError(server: Server): Promise<FastCGIError> {
  return new Promise((resolve) => server.once('clientError', (error: FastCGIError) => resolve(error)));
}

/** Resolves the first time `socket.pause()` is called (the connection stops reading). */
function nextPause(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const original = socket.pause;
    socket.pause = function (this: net.Socket) {
      socket.pause = original;
      resolve();
      return original.call(this);
    };
  });
}

function pattern(length: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  let x = seed >>> 0;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

const GET = { REQUEST_METHOD: 'GET', REQUEST_URI: '/', SERVER_PROTOCOL: 'HTTP/1.1' };

// ---- Tests --------------------------------------------------------------------------------------------------

describe('Server params limits', () => {
  it('closes the connection with FCGI_ERR_PARAMS_TOO_LARGE past maxParamsBytes, and serves params at the limit', async () => {
    let calls = 0;
    const h = await start({ maxParamsBytes: 1024 }, (_req, res) => {
      calls++;
      res.end('ok');
    });
    const fits = Buffer.concat([pair('REQUEST_METHOD', 'GET'), pair('HTTP_X_PAD', 'p'.repeat(990))]);
    expect(fits.length).toBe(1024);
    const okPeer = await h.connect();
    await okPeer.send(
      Buffer.concat([
        beginRequest(1),
        record(RecordType.PARAMS, 1, fits),
        record(RecordType.PARAMS, 1),
        record(RecordType.STDIN, 1),
      ]),
    );
    expect(parseCgiResponse((await okPeer.waitForEnd(1)).stdout).body.toString()).toBe('ok');

    const peer = await h.connect();
    const reported = nextClientError(h.server);
    // One byte over, in two records: the limit counts the whole stream, not one record.
    const over = Buffer.concat([fits, pair('X', '')]);
    await peer.send(
      Buffer.concat([
        beginRequest(1),
        record(RecordType.PARAMS, 1, over.subarray(0, 600)),
        record(RecordType.PARAMS, 1, over.subarray(600)),
      ]),
    );
    const error = await within(reported, 2000, 'clientError');
    expect(error.code).toBe(ErrorCode.PARAMS_TOO_LARGE);
    expect(error.message).toContain('maxParamsBytes');
    await within(peer.closed, 2000, 'connection closed');
    expect(peer.records).toEqual([]);
    expect(calls).toBe(1);
  });

  it('closes the connection with FCGI_ERR_PARAMS_TOO_LARGE past maxParamsCount', async () => {
    let calls = 0;
    const h = await start({ maxParamsCount: 10 }, (_req, res) => {
      calls++;
      res.end('ok');
    });
    const params = (n: number): Array<[string, string]> =>
      Array.from({ length: n }, (_, i): [string, string] => [`HTTP_X_${i}`, 'v']);
    const okPeer = await h.connect();
    expect(parseCgiResponse((await okPeer.request({ params: params(10) })).stdout).body.toString()).toBe('ok');

    const peer = await h.connect();
    const reported = nextClientError(h.server);
    await peer.send(buildRequest({ params: params(11) }));
    const error = await within(reported, 2000, 'clientError');
    expect(error.code).toBe(ErrorCode.PARAMS_TOO_LARGE);
    expect(error.message).toContain('maxParamsCount');
    await within(peer.closed, 2000, 'connection closed');
    expect(peer.records).toEqual([]);
    expect(calls).toBe(1);
  });
});

describe('Server timeouts', () => {
  it('closes a connection whose PARAMS never end after paramsTimeout with FCGI_ERR_PARAMS_TIMEOUT', async () => {
    let calls = 0;
    const h = await start({ paramsTimeout: 200 }, () => void calls++);
    const peer = await h.connect();
    const reported = nextClientError(h.server);
    const sent = Date.now();
    await peer.send(
      Buffer.concat([beginRequest(1, 1, 1), record(RecordType.PARAMS, 1, pair('REQUEST_METHOD', 'GET'))]),
    );
    const error = await within(reported, 2000, 'params timeout');
    const elapsed = Date.now() - sent;
    expect(error.code).toBe(ErrorCode.PARAMS_TIMEOUT);
    expect(error.message).toContain('paramsTimeout');
    expect(elapsed).toBeGreaterThanOrEqual(190);
    await within(peer.closed, 1000, 'connection closed');
    expect(calls).toBe(0);
  });

  it('lets a request whose PARAMS complete in time run past paramsTimeout', async () => {
    const h = await start({ paramsTimeout: 150 }, async (_req, res) => {
      await delay(300);
      res.end('slow but fine');
    });
    const peer = await h.connect();
    const response = await peer.request({ keepConn: true, params: GET });
    expect(parseCgiResponse(response.stdout).body.toString()).toBe('slow but fine');
    expect(h.clientErrors).toEqual([]);
  });

  it('closes an idle KEEP_CONN connection after idleTimeout with FIN and FCGI_ERR_IDLE_TIMEOUT', async () => {
    const h = await start({ idleTimeout: 200 }, (_req, res) => res.end('ok'));
    const peer = await h.connect();
    await peer.request({ keepConn: true, params: GET });
    const done = Date.now();
    const closed = await within(peer.closed, 2000, 'idle close');
    expect(closed.how).toBe('fin');
    expect(Date.now() - done).toBeGreaterThanOrEqual(150);
    expect(h.clientErrors.map((e) => e.error.code)).toEqual([ErrorCode.IDLE_TIMEOUT]);
  });

  it('closes a connection that never sends anything after idleTimeout', async () => {
    const h = await start({ idleTimeout: 150 }, (_req, res) => res.end('ok'));
    const opened = Date.now();
    const peer = await h.connect();
    const closed = await within(peer.closed, 2000, 'idle close');
    expect(closed.how).toBe('fin');
    expect(Date.now() - opened).toBeGreaterThanOrEqual(100);
    expect(peer.records).toEqual([]);
    expect(h.clientErrors.map((e) => e.error.code)).toEqual([ErrorCode.IDLE_TIMEOUT]);
  });

  it('never closes for idleTimeout while a request is in flight: a slow handler still gets its response out', async () => {
    const h = await start({ idleTimeout: 100 }, async (_req, res) => {
      await delay(500); // five idle periods with nothing on the wire
      res.end('late but delivered');
    });
    const peer = await h.connect();
    const response = await peer.request({ keepConn: true, params: GET });
    expect(parseCgiResponse(response.stdout).body.toString()).toBe('late but delivered');
    expect(response.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
    expect(peer.endReceived).toBe(false);
    expect(h.clientErrors).toEqual([]);
    // Idle again now: the timeout applies once more.
    await within(peer.closed, 2000, 'idle close after the response');
    expect(h.clientErrors.map((e) => e.error.code)).toEqual([ErrorCode.IDLE_TIMEOUT]);
  });

  it('answers 503 after handlerTimeout when the handler sent nothing, and aborts its signal', async () => {
    const signalled = deferred<unknown>();
    const h = await start({ handlerTimeout: 150 }, (req) => {
      req.fastcgi.signal.addEventListener('abort', () => signalled.resolve(req.fastcgi.abortReason));
      // Never answers.
    });
    const peer = await h.connect();
    const started = Date.now();
    const response = await peer.request({ keepConn: true, params: GET });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    const cgi = parseCgiResponse(response.stdout);
    expect(cgi.status).toBe(503);
    expect(response.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
    expect(await signalled.promise).toBe('timeout');
    expect(peer.closedResult).toBeUndefined();
  });

  it('cuts off a started response after handlerTimeout with appStatus != 0', async () => {
    const h = await start({ handlerTimeout: 150 }, (_req, res) => {
      res.write('started');
    });
    const peer = await h.connect();
    const response = await peer.request({ keepConn: true, params: GET });
    expect(parseCgiResponse(response.stdout).body.toString()).toBe('started');
    expect(response.appStatus).not.toBe(0);
    expect(response.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
  });
});

describe('Server request body backpressure', () => {
  it('stops reading the socket while the handler does not read its body, and resumes when it does', async () => {
    const TOTAL = 8 * 1024 * 1024;
    const body = pattern(TOTAL, 42);
    const requestArrived = deferred<FastCGIIncomingMessage>();
    const result = deferred<{ length: number; hash: string }>();
    const h = await start({ inputHighWaterMark: 16 * 1024 }, (req, res) => {
      requestArrived.resolve(req);
      // The test decides when the body is read.
      void result.promise.then(({ length, hash }) => res.end(`${length} ${hash}`));
    });
    const peer = await h.connect();
    const socket = await h.firstSocket;
    const paused = nextPause(socket);
    const sending = peer.send(
      buildRequest({ params: { ...GET, REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(TOTAL) }, stdin: body }),
    );
    sending.catch(() => undefined);
    const req = await within(requestArrived.promise, 2000, 'request');
    await within(paused, 2000, 'server paused its socket');
    const atPause = socket.bytesRead;
    // A negative must be observed here: give the server time to (wrongly) keep reading; 150 ms is many reads.
    await delay(150);
    const later = socket.bytesRead;
    expect(later - atPause).toBeLessThan(128 * 1024);
    expect(later).toBeLessThan(TOTAL / 16);
    expect(socket.isPaused()).toBe(true);

    // Now the handler reads: the connection resumes and every byte arrives.
    const hash = createHash('sha256');
    let length = 0;
    for await (const chunk of req) {
      hash.update(chunk as Buffer);
      length += (chunk as Buffer).length;
    }
    result.resolve({ length, hash: hash.digest('hex') });
    await sending;
    const response = await peer.waitForEnd(1, 10_000);
    expect(parseCgiResponse(response.stdout).body.toString()).toBe(`${TOTAL} ${sha256(body)}`);
    expect(socket.bytesRead).toBeGreaterThan(TOTAL);
  });

  it('buffers about inputHighWaterMark of unread body before it stops reading', async () => {
    const TOTAL = 8 * 1024 * 1024;
    const HWM = 1024 * 1024;
    const arrived = deferred<FastCGIIncomingMessage>();
    const h = await start({ inputHighWaterMark: HWM }, (req, res) => {
      arrived.resolve(req);
      req.on('end', () => res.end('read'));
    });
    const peer = await h.connect();
    const socket = await h.firstSocket;
    const paused = nextPause(socket);
    const sending = peer.send(buildRequest({ params: { ...GET, REQUEST_METHOD: 'POST' }, stdin: pattern(TOTAL, 7) }));
    sending.catch(() => undefined);
    const req = await within(arrived.promise, 2000, 'request');
    await within(paused, 5000, 'server paused its socket');
    // The unread body (in the handler's stream, and waiting for it to ask) is what the option bounds.
    const held = req.readableLength + h.server.bufferedBytes;
    expect(held).toBeGreaterThanOrEqual(HWM);
    expect(held).toBeLessThan(HWM + 256 * 1024);
    req.resume();
    await sending;
    expect(parseCgiResponse((await peer.waitForEnd(1, 10_000)).stdout).body.toString()).toBe('read');
  });
});

describe('Server response backpressure', () => {
  it("makes res.write() return false past outputHighWaterMark while the peer does not read, then emits 'drain' once it does", async () => {
    const CHUNK = Buffer.alloc(16 * 1024, 0x61);
    const OUTPUT_HWM = 64 * 1024;
    const CONNECTION_HWM = 256 * 1024;
    const LIMIT = 64 * 1024 * 1024;
    const blocked = deferred<{ written: number; inProcess: number; bufferedAtFirstFalse: number }>();
    const drained = deferred();
    let peerPaused = true;
    let drainedWhilePaused = false;
    let serverSocket: net.Socket | undefined;
    const h = await start(
      { outputHighWaterMark: OUTPUT_HWM, connectionHighWaterMark: CONNECTION_HWM },
      async (req, res) => {
        res.setHeader('Content-Type', 'application/octet-stream');
        let written = 0;
        let bufferedAtFirstFalse = -1;
        // Write until the kernel's buffers are full too: a 'false' followed by a prompt 'drain' only means the
        // bytes reached the kernel, so keep going until no 'drain' comes for 50 ms.
        for (;;) {
          const accepted = res.write(CHUNK);
          written += CHUNK.length;
          if (accepted) {
            if (written > LIMIT) break;
            continue;
          }
          if (bufferedAtFirstFalse < 0) bufferedAtFirstFalse = req.fastcgi.writableLength;
          const drain = new Promise<boolean>((resolve) => res.once('drain', () => resolve(true)));
          if (await Promise.race([drain, delay(50).then(() => false)])) continue;
          void drain.then(() => {
            if (peerPaused) drainedWhilePaused = true;
            drained.resolve();
          });
          break;
        }
        blocked.resolve({
          written,
          inProcess: req.fastcgi.writableLength + serverSocket!.writableLength,
          bufferedAtFirstFalse,
        });
        await drained.promise;
        res.end();
      },
    );
    h.server.on('connection', (socket: net.Socket) => (serverSocket = socket));
    const peer = await h.connect();
    peer.socket.pause();
    const ended = peer.request({ params: GET, timeoutMs: 20_000 });
    ended.catch(() => undefined); // awaited below; a failed assertion before that must not leave it unhandled
    const { written, inProcess, bufferedAtFirstFalse } = await within(
      blocked.promise,
      15_000,
      'res.write() stayed false',
    );
    expect(written).toBeLessThan(LIMIT);
    // write() said false only with outputHighWaterMark bytes buffered for the request...
    expect(bufferedAtFirstFalse).toBeGreaterThanOrEqual(OUTPUT_HWM);
    // ...and what the process holds stays bounded by the two high-water marks, whatever the response size: the
    // request stream may take one chunk past its mark, and the socket one coalesced flush (up to
    // COALESCE_LIMIT of queued records, headers included) past the connection's.
    expect(inProcess).toBeLessThanOrEqual(OUTPUT_HWM + CONNECTION_HWM + 2 * CHUNK.length + COALESCE_LIMIT + 1024);
    // A negative: no 'drain' while nobody reads. 100 ms is long enough for a wrong one to show.
    await delay(100);
    expect(drainedWhilePaused).toBe(false);
    peerPaused = false;
    peer.socket.resume();
    await within(drained.promise, 10_000, "'drain' after the peer resumed");
    const response = await ended;
    expect(drainedWhilePaused).toBe(false);
    const cgi = parseCgiResponse(response.stdout);
    expect(cgi.body.length).toBe(written);
    expect(response.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
    for (const r of response.records) expect(r.contentLength).toBeLessThanOrEqual(65535);
  });
});

describe('Every stall ends', () => {
  it('closes a connection that trickles bytes but completes no BEGIN_REQUEST after beginTimeout, though bytes keep coming', async () => {
    const h = await start({ beginTimeout: 300, idleTimeout: 60_000 }, (_req, res) => res.end('ok'));
    const peer = await h.connect();
    const begin = beginRequest(1);
    const opened = Date.now();
    const trickle = (async () => {
      for (let i = 0; i < begin.length - 1 && h.clientErrors.length === 0; i++) {
        await peer.send(begin.subarray(i, i + 1)).catch(() => undefined);
        await delay(40);
      }
    })();
    const closed = await within(peer.closed, 3000, 'close after beginTimeout');
    await trickle;
    expect(closed).toBeDefined();
    expect(h.clientErrors.map((e) => e.error.code)).toEqual([ErrorCode.BEGIN_TIMEOUT]);
    expect(h.clientErrors[0]!.at - opened).toBeGreaterThanOrEqual(290);
    expect(h.clientErrors[0]!.at - opened).toBeLessThan(1500);
  });

  it('closes a kept connection that trickles part of its next record after idleTimeout', async () => {
    const h = await start({ idleTimeout: 300 }, (_req, res) => res.end('ok'));
    const peer = await h.connect();
    await peer.request({ keepConn: true, params: GET });
    const served = Date.now();
    const next = beginRequest(2, 1, 1);
    void (async () => {
      for (let i = 0; i < next.length - 1 && h.clientErrors.length === 0; i++) {
        await peer.send(next.subarray(i, i + 1)).catch(() => undefined);
        await delay(100);
      }
    })();
    // The bytes (one every 100 ms for 1.5 s) do not keep it open.
    await within(peer.closed, 1000, 'close after idleTimeout');
    expect(Date.now() - served).toBeGreaterThanOrEqual(290);
    expect(h.clientErrors.map((e) => e.error.code)).toEqual([ErrorCode.IDLE_TIMEOUT]);
  });

  it('closes a connection whose body trickles slower than minBodyRate after bodyTimeout', async () => {
    const h = await start({ bodyTimeout: 400, minBodyRate: 500 }, (req, res) => {
      req.resume();
      req.on('end', () => res.end('read'));
    });
    const peer = await h.connect();
    await peer.send(buildRequest({ params: { ...GET, REQUEST_METHOD: 'POST' }, noStdinEnd: true }));
    const started = Date.now();
    void (async () => {
      while (h.clientErrors.length === 0 && Date.now() - started < 5000) {
        await peer.send(record(RecordType.STDIN, 1, 'x')).catch(() => undefined);
        await delay(50);
      }
    })();
    await within(peer.closed, 3000, 'close after bodyTimeout');
    expect(h.clientErrors.map((e) => e.error.code)).toEqual([ErrorCode.BODY_TIMEOUT]);
    expect(h.clientErrors[0]!.error.message).toMatch(/minBodyRate/);
  });

  it('does not count the time it stops reading a body (the handler is not reading) against bodyTimeout', async () => {
    const TOTAL = 2 * 1024 * 1024;
    const h = await start({ bodyTimeout: 300, inputHighWaterMark: 16 * 1024 }, async (req, res) => {
      await delay(1000); // far longer than bodyTimeout: the server stops reading meanwhile
      let length = 0;
      for await (const chunk of req) length += (chunk as Buffer).length;
      res.end(String(length));
    });
    const peer = await h.connect();
    const response = await peer.request({
      params: { ...GET, REQUEST_METHOD: 'POST' },
      stdin: pattern(TOTAL, 3),
      timeoutMs: 10_000,
    });
    expect(parseCgiResponse(response.stdout).body.toString()).toBe(String(TOTAL));
    expect(h.clientErrors).toEqual([]);
  });

  it('at maxConnections closes the oldest idle connection to let a new one in, and refuses only when all are busy', async () => {
    const logger = {
      messages: [] as string[],
      warn(m: string) {
        this.messages.push(m);
      },
      error(m: string) {
        this.messages.push(m);
      },
    };
    const hold: Array<() => void> = [];
    const h = await start({ maxConnections: 4, logger }, (req, res) => {
      if (req.url === '/hold') hold.push(() => res.end('held'));
      else res.end('ok');
    });
    const silent = await Promise.all([1, 2, 3, 4].map(() => h.connect()));
    await until(() => h.sockets.length === 4);
    const fifth = await h.connect();
    expect(parseCgiResponse((await fifth.request({ params: GET })).stdout).body.toString()).toBe('ok');
    await within(silent[0]!.closed, 2000, 'the oldest idle connection closed');
    expect(logger.messages.some((m) => /make room/.test(m))).toBe(true);
    // Now every connection holds a request in flight: a new one is refused, with a reason.
    const busy = await Promise.all([1, 2, 3, 4].map(() => h.connect()));
    const inFlight = busy.map((p) => p.request({ params: { ...GET, REQUEST_URI: '/hold' }, timeoutMs: 10_000 }));
    await until(() => hold.length === 4);
    const refused = await h.connect();
    await within(refused.closed, 2000, 'refused');
    expect(h.clientErrors.map((e) => e.error.code)).toContain(ErrorCode.CONNECTION_LIMIT);
    for (const release of hold) release();
    for (const response of await Promise.all(inFlight))
      expect(parseCgiResponse(response.stdout).body.toString()).toBe('held');
  });
});

describe('making room at maxConnections', () => {
  it('never closes a connection whose response is still on its way to the web server', async () => {
    const BIG = Buffer.alloc(4 * 1024 * 1024, 0x62);
    // A connection high-water mark above the response: the request ends at once, its bytes queued behind it.
    const h = await start({ maxConnections: 2, connectionHighWaterMark: 8 * 1024 * 1024 }, (req, res) =>
      res.end(req.url === '/big' ? BIG : 'ok'),
    );
    const reader = await h.connect();
    reader.socket.pause();
    const big = reader.request({ params: { ...GET, REQUEST_URI: '/big' }, timeoutMs: 10_000 });
    big.catch(() => undefined); // awaited below
    // The handler is done (nothing in flight on the connection), but most of the 4 MiB still waits in its socket.
    await until(() => (h.sockets[0]?.writableLength ?? 0) > 0);
    await delay(50);
    const silent = await h.connect();
    await until(() => h.sockets.length === 2);
    const third = await h.connect();
    expect(parseCgiResponse((await third.request({ params: GET })).stdout).body.toString()).toBe('ok');
    await within(silent.closed, 2000, 'the idle connection closed to make room');
    reader.socket.resume();
    const response = await big;
    expect(parseCgiResponse(response.stdout).body.length).toBe(BIG.length);
  });
});

describe('FCGI_MAX_REQS is what the server enforces', () => {
  it('serves as many requests in flight on one connection as it announces, and refuses one more with OVERLOADED', async () => {
    const hold: Array<() => void> = [];
    const h = await start({ maxRequestsPerConnection: 5 }, (_req, res) => hold.push(() => res.end('ok')));
    const peer = await h.connect();
    const announced = Number((await peer.getValues(['FCGI_MAX_REQS'])).get('FCGI_MAX_REQS'));
    expect(announced).toBe(5);
    const requests = Array.from({ length: announced + 1 }, (_, i) =>
      peer.request({ requestId: i + 1, keepConn: true, params: GET }),
    );
    const extra = await requests[announced]!;
    expect(extra.protocolStatus).toBe(ProtocolStatus.OVERLOADED);
    await until(() => hold.length === announced);
    for (const release of hold) release();
    for (const response of await Promise.all(requests.slice(0, announced)))
      expect(response.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
  });
});

async function until(check: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${check.toString()}`);
    await delay(10);
  }
}

describe('Requests whose handler waits (output backed up) or never reads', () => {
  it('keeps the body of a request whose handler waited for a backed-up connection to drain', async () => {
    const h = await start({ connectionHighWaterMark: 16 * 1024 }, async (req, res) => {
      if (req.url === '/big') return res.end(Buffer.alloc(8 * 1024 * 1024, 0x62));
      let body = '';
      for await (const chunk of req) body += (chunk as Buffer).toString();
      res.end(`echo:${body}`);
    });
    const peer = await h.connect();
    peer.socket.pause(); // reads nothing: /big fills the output, the POST's handler is deferred
    const big = peer.waitForEnd(1, 10_000);
    const post = peer.waitForEnd(2, 10_000);
    // One write: the POST's params and body arrive while /big's 8 MiB wait for a peer that reads nothing.
    await peer.send(
      Buffer.concat([
        buildRequest({ requestId: 1, keepConn: true, params: { ...GET, REQUEST_URI: '/big' } }),
        buildRequest({
          requestId: 2,
          keepConn: true,
          params: { ...GET, REQUEST_METHOD: 'POST', REQUEST_URI: '/post' },
          stdin: 'hello deferred body',
        }),
      ]),
    );
    await delay(300);
    peer.socket.resume();
    expect(parseCgiResponse((await big).stdout).body.length).toBe(8 * 1024 * 1024);
    expect(parseCgiResponse((await post).stdout).body.toString()).toBe('echo:hello deferred body');
  });

  it('survives an abort of a FILTER request whose DATA stream nobody reads, and of a deferred request with part of its body', async () => {
    const h = await start({ connectionHighWaterMark: 16 * 1024 }, (req, res) => {
      if (req.url === '/big') res.end(Buffer.alloc(1024 * 1024, 0x62));
      // Otherwise: hold, never touching req or req.data.
    });
    const filter = await h.connect();
    await filter.send(
      Buffer.concat([
        beginRequest(1, 3, 1),
        record(RecordType.PARAMS, 1, pair('REQUEST_URI', '/hold')),
        record(RecordType.PARAMS, 1),
        record(RecordType.STDIN, 1),
        record(RecordType.DATA, 1, 'partial'),
      ]),
    );
    await delay(50);
    await filter.send(record(RecordType.ABORT_REQUEST, 1));
    expect((await filter.waitForEnd(1)).protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
    const deferred = await h.connect();
    deferred.socket.pause();
    await deferred.send([
      buildRequest({ requestId: 1, keepConn: true, params: { ...GET, REQUEST_URI: '/big' } }),
      buildRequest({
        requestId: 2,
        keepConn: true,
        params: { ...GET, REQUEST_METHOD: 'POST', REQUEST_URI: '/post' },
        stdin: 'part',
        noStdinEnd: true,
      }),
    ]);
    await delay(100);
    deferred.destroy();
    await delay(100);
    const after = await h.connect();
    expect(
      parseCgiResponse((await after.request({ params: { ...GET, REQUEST_URI: '/big' } })).stdout).body.length,
    ).toBe(1024 * 1024);
  });
});

describe('A connection we ended', () => {
  it('is closed when the web server closes its side, even though reading had stopped for an unread body and a large answer', async () => {
    const h = await start({}, (_req, res) => res.end(Buffer.alloc(8 * 1024 * 1024, 0x62))); // never reads the body
    const peer = await h.connect();
    const response = await peer.request({
      params: { ...GET, REQUEST_METHOD: 'POST', REQUEST_URI: '/big' },
      stdin: Buffer.alloc(200_000, 0x65),
      timeoutMs: 10_000,
    });
    expect(parseCgiResponse(response.stdout).body.length).toBe(8 * 1024 * 1024);
    peer.end(); // our FIN: the server must see it and let the connection go
    await until(() => h.server.connectionCount === 0, 3000);
  });
});
