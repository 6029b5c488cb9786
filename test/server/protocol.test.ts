// The server's protocol engine on the wire: createServer on 127.0.0.1 with the test peer playing the web server,
// every assertion made on the records the server sends (FastCGI 1.0, and the rules of protocol.md §1 and §6).
import type * as net from 'node:net';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { createServer, type RequestListener, type Server } from '../../src/server/server';
import type { FastCGIIncomingMessage, FastCGIServerResponse } from '../../src/server/http-message';
import type { ServerOptions } from '../../src/server/options';
import { ErrorCode, type FastCGIError } from '../../src/errors';
import { Flag, MAX_CONTENT_LENGTH, ProtocolStatus, RecordType, Role } from '../../src/wire/constants';
import { encodeBeginRequest, encodeStream } from '../../src/wire/records';
import { encodeParams } from '../../src/wire/pairs';
import { deferred, within } from '../helpers/async';
import { TestPeer, buildRequest, parseCgiResponse, type PeerRecord, type PeerResponse } from '../helpers/fcgi-peer';
import { beginRequest, pair, record, splitAt } from '../helpers/records';
import { listenForTest } from './harness';

// ---- Harness ------------------------------------------------------------------------------------------------

interface LogEntry {
  level: 'warn' | 'error';
  message: string;
}

interface Harness {
  server: Server;
  port: number;
  /** Messages the server logged. */
  logs: LogEntry[];
  /** Server-side sockets, in accept order. */
  sockets: net.Socket[];
  /** The length of every read each server-side socket made. */
  reads: Map<net.Socket, number[]>;
  /** The server-side socket of a peer's connection, once accepted. */
  serverSocketOf(peer: TestPeer): Promise<net.Socket>;
  /** Opens a peer connection, destroyed when the test finishes. */
  connect(): Promise<TestPeer>;
}

/** Starts a server on 127.0.0.1 port 0 with a capturing logger; everything is closed when the test finishes. */
async function start(options: ServerOptions = {}, handler?: RequestListener): Promise<Harness> {
  const logs: LogEntry[] = [];
  const server = createServer(
    {
      logger: {
        warn: (message) => logs.push({ level: 'warn', message }),
        error: (message) => logs.push({ level: 'error', message }),
      },
      ...options,
    },
    handler,
  );
  const sockets: net.Socket[] = [];
  const reads = new Map<net.Socket, number[]>();
  server.on('connection', (socket: net.Socket) => {
    sockets.push(socket);
    const lengths: number[] = [];
    reads.set(socket, lengths);
    socket.on('data', (chunk: Buffer) => lengths.push(chunk.length));
  });
  const { port, connect } = await listenForTest(server);
  return {
    server,
    port,
    logs,
    sockets,
    reads,
    serverSocketOf(peer) {
      const port = peer.socket.localPort;
      const find = (): net.Socket | undefined => sockets.find((s) => s.remotePort === port);
      const found = find();
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve) => {
        const onConnection = (): void => {
          const socket = find();
          if (socket === undefined) return;
          server.off('connection', onConnection);
          resolve(socket);
        };
        server.on('connection', onConnection);
      });
    },
    connect,
  };
}

async function readAll(stream: AsyncIterable<Buffer | string>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

/** Resolves with the next clientError the server emits. */
function nextClientError(server: Server): Promise<{ error: FastCGIError; socket: net.Socket }> {
  return new Promise((resolve) =>
    server.once('clientError', (error: FastCGIError, socket: net.Socket) => resolve({ error, socket })),
  );
}

const GET = { REQUEST_METHOD: 'GET', REQUEST_URI: '/', SERVER_PROTOCOL: 'HTTP/1.1' };

function types(records: PeerRecord[]): string[] {
  return records.map((r) => `${r.type}:${r.requestId}:${r.contentLength === 0 ? 'empty' : 'data'}`);
}

/** Asserts the records of `response` are non-empty STDOUT/STDERR, then the empty STDOUT, then END_REQUEST. */
function expectWellFramed(response: PeerResponse): void {
  const records = response.records;
  const end = records[records.length - 1]!;
  expect(end.type).toBe(RecordType.END_REQUEST);
  expect(end.contentLength).toBe(8);
  const emptyStdout = records.findIndex((r) => r.type === RecordType.STDOUT && r.contentLength === 0);
  expect(emptyStdout).toBeGreaterThanOrEqual(0);
  for (const [i, r] of records.slice(0, -1).entries()) {
    expect(r.contentLength).toBeLessThanOrEqual(MAX_CONTENT_LENGTH);
    if (r.type === RecordType.STDOUT) {
      // Exactly one empty STDOUT, and no STDOUT data after it.
      if (i !== emptyStdout) expect(r.contentLength, `STDOUT #${i}`).toBeGreaterThan(0);
      if (i > emptyStdout) throw new Error(`STDOUT record after the empty STDOUT: ${types(records).join(' ')}`);
    } else {
      expect(r.type, `record #${i} of ${types(records).join(' ')}`).toBe(RecordType.STDERR);
    }
  }
}

// ---- Tests --------------------------------------------------------------------------------------------------

describe('Server responder requests', () => {
  it('sends a Status header block and the body on STDOUT, the empty STDOUT, END_REQUEST(0, REQUEST_COMPLETE), then FIN without KEEP_CONN', async () => {
    // Large enough to need several STDOUT records: none may exceed 65535 content bytes.
    const body = Buffer.alloc(200_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
    const h = await start({}, (_req, res) => {
      res.setHeader('Content-Type', 'application/octet-stream');
      res.end(body);
    });
    const peer = await h.connect();
    const response = await peer.request({ params: GET });

    expect(response.stdout.toString('latin1').startsWith('Status: 200 OK\r\n')).toBe(true);
    const cgi = parseCgiResponse(response.stdout);
    expect(cgi.status).toBe(200);
    expect(cgi.header('Content-Type')).toBe('application/octet-stream');
    expect(cgi.header('Content-Length')).toBe(String(body.length));
    expect(cgi.body.equals(body)).toBe(true);
    expect(response.appStatus).toBe(0);
    expect(response.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
    expect(response.stdoutEnded).toBe(true);
    expect(
      response.records.filter((r) => r.type === RecordType.STDOUT && r.contentLength > 0).length,
    ).toBeGreaterThanOrEqual(4);
    expectWellFramed(response);
    for (const r of peer.records) {
      expect(r.requestId).toBe(1);
      // padRecords (default): every record padded to 8 bytes with zeros (FastCGI 1.0 §3.3 recommends it),
      // except where content + padding would pass 65535 (php-fpm drops such records).
      if (r.contentLength <= 65528) expect((r.contentLength + r.paddingLength) % 8).toBe(0);
      expect(r.contentLength + r.paddingLength).toBeLessThanOrEqual(65535);
      expect(r.padding.every((b) => b === 0)).toBe(true);
    }

    // FastCGI 1.0 §5.1: without KEEP_CONN the application closes after END_REQUEST, with FIN (never RST).
    const closed = await within(peer.closed, 2000, 'FIN after END_REQUEST');
    expect(closed.how).toBe('fin');
    expect(closed.unparsed.length).toBe(0);
    expect(peer.records[peer.records.length - 1]!.type).toBe(RecordType.END_REQUEST);
  });

  it('closes with FIN, not RST, when a response without KEEP_CONN ends before the body was read', async () => {
    const h = await start({}, (_req, res) => res.end('early'));
    const peer = await h.connect();
    const body = Buffer.alloc(1024 * 1024, 0x62);
    const response = await peer.request({ params: { ...GET, REQUEST_METHOD: 'POST' }, stdin: body });
    expect(parseCgiResponse(response.stdout).body.toString()).toBe('early');
    const closed = await within(peer.closed, 2000, 'close after END_REQUEST');
    expect(closed.how).toBe('fin');
  });

  it('serves 100 sequential KEEP_CONN requests with request id 1 on one connection and keeps it open', async () => {
    const seen: number[] = [];
    const h = await start({}, (req, res) => {
      seen.push(req.fastcgi.requestId);
      res.end(`n=${req.url}`);
    });
    const peer = await h.connect();
    for (let i = 0; i < 100; i++) {
      const response = await peer.request({ requestId: 1, keepConn: true, params: { ...GET, REQUEST_URI: `/${i}` } });
      expect(response.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
      expect(response.appStatus).toBe(0);
      expect(parseCgiResponse(response.stdout).body.toString()).toBe(`n=/${i}`);
      expectWellFramed(response);
    }
    expect(seen).toEqual(new Array(100).fill(1));
    // The connection still answers (a GET_VALUES round trip) and never sent FIN.
    const values = await peer.getValues(['FCGI_MPXS_CONNS']);
    expect(values.get('FCGI_MPXS_CONNS')).toBe('1');
    expect(peer.endReceived).toBe(false);
    expect(peer.closedResult).toBeUndefined();
    expect(h.sockets.length).toBe(1);
    expect(h.server.connectionCount).toBe(1);
  });

  it('gives identical responses whether a request arrives whole, in 1-byte reads, or split at any offset', async () => {
    const h = await start({}, async (req, res) => {
      const body = await readAll(req);
      res.setHeader('Content-Type', 'application/json');
      res.end(
        JSON.stringify({ method: req.method, url: req.url, x: req.headers['x-trace'], body: body.toString('latin1') }),
      );
    });
    const options = {
      params: { REQUEST_METHOD: 'POST', REQUEST_URI: '/split?q=1', CONTENT_LENGTH: '11', HTTP_X_TRACE: 'é\x01z' },
      stdin: 'hello world',
    };
    const bytes = buildRequest(options);
    const exchange = async (split: 'none' | 'bytes' | number[]): Promise<PeerResponse> => {
      const peer = await h.connect();
      const socket = await h.serverSocketOf(peer);
      const cuts =
        split === 'none' ? [] : split === 'bytes' ? Array.from({ length: bytes.length - 1 }, (_, i) => i + 1) : split;
      // With both ends in one process, writes can pile up before the server reads: send each piece only
      // once the server has read the previous one, so every piece is a read of its own.
      for (const piece of splitAt(bytes, cuts)) {
        const read = once(socket, 'data');
        await peer.send(piece);
        await read;
      }
      const response = await peer.waitForEnd(1);
      expect((await within(peer.closed, 2000, 'close')).how).toBe('fin');
      expect(h.reads.get(socket), `reads for split ${JSON.stringify(split)}`).toHaveLength(cuts.length + 1);
      return response;
    };
    const reference = await exchange('none');
    expect(JSON.parse(parseCgiResponse(reference.stdout).body.toString())).toEqual({
      method: 'POST',
      url: '/split?q=1',
      x: 'é\x01z',
      body: 'hello world',
    });
    const same = (response: PeerResponse, how: string): void => {
      expect(response.stdout.equals(reference.stdout), how).toBe(true);
      expect([response.appStatus, response.protocolStatus, response.stdoutEnded], how).toEqual([0, 0, true]);
    };
    same(await exchange('bytes'), '1-byte reads');
    // One connection per cut point, a few at a time.
    const offsets = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
    for (let i = 0; i < offsets.length; i += 8) {
      const batch = offsets.slice(i, i + 8);
      const responses = await Promise.all(batch.map((offset) => exchange([offset])));
      responses.forEach((response, j) => same(response, `split at ${batch[j]}`));
    }
  });

  it('sends a small response (header block, body, empty STDOUT, END_REQUEST) in one socket write', async () => {
    const h = await start({}, (_req, res) => res.end('hi'));
    // Count the server's socket writes: the peer's chunks alone cannot tell one write from three sent in one tick.
    const writes: number[] = [];
    h.server.on('connection', (socket: net.Socket) => {
      const write = socket.write;
      socket.write = function (this: net.Socket, ...args: unknown[]) {
        writes.push((args[0] as Uint8Array).length);
        return (write as (...a: unknown[]) => boolean).apply(this, args);
      } as typeof socket.write;
    });
    const peer = await h.connect();
    const response = await peer.request({ keepConn: true, params: GET });
    expect(parseCgiResponse(response.stdout).body.toString()).toBe('hi');
    expect(types(peer.records)).toEqual([
      `${RecordType.STDOUT}:1:data`,
      `${RecordType.STDOUT}:1:empty`,
      `${RecordType.END_REQUEST}:1:data`,
    ]);
    expect(peer.receivedChunks.length).toBe(1);
    expect(peer.receivedChunks[0]!.length).toBe(peer.bytesReceived);
    expect(writes).toEqual([peer.bytesReceived]);
  });
});

describe('Server multiplexing', () => {
  it('runs 1000 concurrent requests over one connection with interleaved STDIN, each echoing its own body', async () => {
    const N = 1000;
    let inFlight = 0;
    let maxInFlight = 0;
    const h = await start({ maxRequestsPerConnection: N }, (req, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      res.on('finish', () => inFlight--);
      req.pipe(res);
    });
    const peer = await h.connect();
    const ids = Array.from({ length: N }, (_, i) => i + 1);
    const pieces = (id: number): Buffer[] =>
      [0, 1, 2].map((k) => Buffer.from(`<${id}.${k}:${'x'.repeat((id * 13 + k) % 50)}>`));
    // All requests open first, then the bodies round-robin: every STDIN record sits between other ids' records.
    await peer.send(
      Buffer.concat(
        ids.map((id) =>
          Buffer.concat([
            encodeBeginRequest(id, Role.RESPONDER, Flag.KEEP_CONN),
            encodeParams(id, Object.entries({ ...GET, REQUEST_METHOD: 'POST', REQUEST_URI: `/echo/${id}` })),
          ]),
        ),
      ),
    );
    for (let k = 0; k < 3; k++) {
      await peer.send(Buffer.concat(ids.map((id) => encodeStream(RecordType.STDIN, id, pieces(id)[k]!))));
    }
    await peer.send(Buffer.concat(ids.map((id) => encodeStream(RecordType.STDIN, id, Buffer.alloc(0), { end: true }))));
    const responses = await Promise.all(ids.map((id) => peer.waitForEnd(id, 10_000)));
    for (const [i, response] of responses.entries()) {
      const id = i + 1;
      expect(response.requestId).toBe(id);
      expect(response.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
      expect(response.appStatus).toBe(0);
      expect(parseCgiResponse(response.stdout).body.toString()).toBe(Buffer.concat(pieces(id)).toString());
      expectWellFramed(response);
    }
    expect(maxInFlight).toBe(N);
    expect(h.sockets.length).toBe(1);
    expect(peer.closedResult).toBeUndefined();
  });

  it('refuses a second BEGIN_REQUEST with END_REQUEST(CANT_MPX_CONN) when multiplex is off, and the first request still completes', async () => {
    const started = deferred();
    const release = deferred();
    let calls = 0;
    const h = await start({ multiplex: false }, async (req, res) => {
      calls++;
      if (req.url === '/hold') {
        started.resolve();
        await release.promise;
      }
      res.end(`done ${req.url}`);
    });
    const peer = await h.connect();
    const first = peer.request({ requestId: 1, keepConn: true, params: { ...GET, REQUEST_URI: '/hold' } });
    await started.promise;
    const refused = await peer.request({
      requestId: 2,
      keepConn: true,
      params: { ...GET, REQUEST_URI: '/second' },
      stdin: 'ignored',
    });
    expect(refused.protocolStatus).toBe(ProtocolStatus.CANT_MPX_CONN);
    expect(refused.appStatus).toBe(0);
    expect(types(refused.records)).toEqual([`${RecordType.END_REQUEST}:2:data`]);
    expect(calls).toBe(1);
    release.resolve();
    const done = await first;
    expect(done.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
    expect(parseCgiResponse(done.stdout).body.toString()).toBe('done /hold');
    // With the first request over, the connection takes the next one (id 2 is free again).
    const next = await peer.request({ requestId: 2, keepConn: true, params: { ...GET, REQUEST_URI: '/next' } });
    expect(parseCgiResponse(next.stdout).body.toString()).toBe('done /next');
    expect(calls).toBe(2);
  });

  it('answers END_REQUEST(OVERLOADED) past maxRequestsPerConnection and serves the requests already admitted', async () => {
    const release = deferred();
    let started = 0;
    const twoStarted = deferred();
    const h = await start({ maxRequestsPerConnection: 2 }, async (req, res) => {
      if (++started === 2) twoStarted.resolve();
      await release.promise;
      res.end(`ok ${req.fastcgi.requestId}`);
    });
    const peer = await h.connect();
    const admitted = [1, 2].map((id) => peer.request({ requestId: id, keepConn: true, params: GET }));
    await twoStarted.promise;
    const overloaded = await peer.request({ requestId: 3, keepConn: true, params: GET });
    expect(overloaded.protocolStatus).toBe(ProtocolStatus.OVERLOADED);
    expect(types(overloaded.records)).toEqual([`${RecordType.END_REQUEST}:3:data`]);
    expect(started).toBe(2);
    release.resolve();
    const [one, two] = await Promise.all(admitted);
    expect(parseCgiResponse(one!.stdout).body.toString()).toBe('ok 1');
    expect(parseCgiResponse(two!.stdout).body.toString()).toBe('ok 2');
    expect(one!.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
  });
});

describe('Server roles', () => {
  it('answers an unknown role with END_REQUEST(UNKNOWN_ROLE) and no STDOUT, and keeps serving', async () => {
    let calls = 0;
    const h = await start({}, (_req, res) => {
      calls++;
      res.end('ok');
    });
    const peer = await h.connect();
    const refused = await peer.request({ role: 9, keepConn: true, params: GET });
    expect(refused.protocolStatus).toBe(ProtocolStatus.UNKNOWN_ROLE);
    expect(refused.protocolStatus).toBe(3);
    expect(types(refused.records)).toEqual([`${RecordType.END_REQUEST}:1:data`]);
    expect(calls).toBe(0);
    const ok = await peer.request({ keepConn: true, params: GET });
    expect(parseCgiResponse(ok.stdout).body.toString()).toBe('ok');
  });

  it("emits 'authorize' for AUTHORIZER requests: setVariable gives Variable-NAME headers, allow() 200, deny() 403", async () => {
    const h = await start();
    let requests = 0;
    h.server.on('request', (_req: FastCGIIncomingMessage, res: FastCGIServerResponse) => {
      requests++;
      res.end();
    });
    h.server.on('authorize', (req: FastCGIIncomingMessage, res: FastCGIServerResponse) => {
      expect(req.fastcgi.role).toBe(Role.AUTHORIZER);
      if (req.headers.authorization === 'Basic good') {
        res.setVariable('USER', 'x');
        res.allow();
      } else {
        res.deny();
      }
    });
    const peer = await h.connect();
    const allowed = await peer.request({
      role: Role.AUTHORIZER,
      keepConn: true,
      params: { ...GET, HTTP_AUTHORIZATION: 'Basic good' },
    });
    const granted = parseCgiResponse(allowed.stdout);
    expect(granted.status).toBe(200);
    expect(granted.headers).toContainEqual(['Variable-USER', 'x']);
    expect(allowed.stdout.toString('latin1')).toContain('\r\nVariable-USER: x\r\n');
    const denied = await peer.request({
      role: Role.AUTHORIZER,
      keepConn: true,
      params: { ...GET, HTTP_AUTHORIZATION: 'Basic bad' },
    });
    expect(parseCgiResponse(denied.stdout).status).toBe(403);
    expect(denied.stdout.toString('latin1').startsWith('Status: 403 Forbidden\r\n')).toBe(true);
    expect(requests).toBe(0);
  });

  it("emits AUTHORIZER requests as 'request' when nobody listens to 'authorize'", async () => {
    const h = await start({}, (req, res) => {
      (res as FastCGIServerResponse).setVariable('ROLE', String(req.fastcgi.role));
      (res as FastCGIServerResponse).allow();
    });
    const peer = await h.connect();
    const response = await peer.request({ role: Role.AUTHORIZER, params: GET });
    const cgi = parseCgiResponse(response.stdout);
    expect(cgi.status).toBe(200);
    expect(cgi.header('Variable-ROLE')).toBe('2');
  });

  it("emits 'filter' for FILTER requests: req.data yields the DATA bytes and FCGI_DATA_* params are in req.cgiParams", async () => {
    const data = Buffer.alloc(100_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
    const h = await start();
    let requests = 0;
    h.server.on('request', (_req: FastCGIIncomingMessage, res: FastCGIServerResponse) => {
      requests++;
      res.end();
    });
    h.server.on('filter', async (req: FastCGIIncomingMessage, res: FastCGIServerResponse) => {
      // FastCGI 1.0 §6.4: STDIN first, then the DATA stream.
      const stdin = await readAll(req);
      const filtered = await readAll(req.data);
      res.end(
        JSON.stringify({
          role: req.fastcgi.role,
          stdin: stdin.toString(),
          dataLength: filtered.length,
          dataHash: createHash('sha256').update(filtered).digest('hex'),
          lastMod: req.cgiParams.FCGI_DATA_LAST_MOD,
          length: req.cgiParams.FCGI_DATA_LENGTH,
        }),
      );
    });
    const peer = await h.connect();
    const response = await peer.request({
      role: Role.FILTER,
      params: { ...GET, FCGI_DATA_LAST_MOD: '1700000000', FCGI_DATA_LENGTH: String(data.length) },
      stdin: 'in',
      data,
    });
    expect(response.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
    expect(JSON.parse(parseCgiResponse(response.stdout).body.toString())).toEqual({
      role: Role.FILTER,
      stdin: 'in',
      dataLength: data.length,
      dataHash: createHash('sha256').update(data).digest('hex'),
      lastMod: '1700000000',
      length: String(data.length),
    });
    expect(requests).toBe(0);
  });
});

describe('Server management records', () => {
  it('answers GET_VALUES from its configuration and omits unknown names', async () => {
    const mpx = await start({ maxConnections: 7, maxRequestsPerConnection: 3 });
    const peer = await mpx.connect();
    const values = await peer.getValues(['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS', 'FCGI_NO_SUCH_VALUE']);
    // FCGI_MAX_REQS is what one connection takes: multiplexing peers (HAProxy) read it per connection.
    expect(Object.fromEntries(values)).toEqual({ FCGI_MAX_CONNS: '7', FCGI_MAX_REQS: '3', FCGI_MPXS_CONNS: '1' });
    const result = peer.records.find((r) => r.type === RecordType.GET_VALUES_RESULT)!;
    expect(result.requestId).toBe(0);

    const single = await start({ maxConnections: 5, multiplex: false });
    const peer2 = await single.connect();
    const values2 = await peer2.getValues(['FCGI_MPXS_CONNS', 'FCGI_MAX_REQS', 'FCGI_MAX_CONNS', 'UNKNOWN']);
    expect(Object.fromEntries(values2)).toEqual({ FCGI_MAX_CONNS: '5', FCGI_MAX_REQS: '5', FCGI_MPXS_CONNS: '0' });
  });

  it('answers every known name of a GET_VALUES query with many names', async () => {
    const h = await start({ maxConnections: 9 });
    const peer = await h.connect();
    const names = [...Array.from({ length: 100 }, (_, i) => `X_UNKNOWN_${i}`), 'FCGI_MPXS_CONNS', 'FCGI_MAX_CONNS'];
    const values = await peer.getValues(names);
    expect(Object.fromEntries(values)).toEqual({ FCGI_MPXS_CONNS: '1', FCGI_MAX_CONNS: '9' });
  });

  it('treats names of Object.prototype members as unknown names, and answers valueMap entries', async () => {
    const h = await start({ valueMap: { X_CUSTOM: 'yes', FCGI_MAX_CONNS: 3 } });
    const peer = await h.connect();
    const values = await peer.getValues([
      'toString',
      'constructor',
      '__proto__',
      'hasOwnProperty',
      'X_CUSTOM',
      'FCGI_MAX_CONNS',
    ]);
    expect(Object.fromEntries(values)).toEqual({ X_CUSTOM: 'yes', FCGI_MAX_CONNS: '3' });
  });

  it('answers an unknown management type with UNKNOWN_TYPE, ignores unknown types with an id and records for inactive ids, and keeps serving', async () => {
    const errors: FastCGIError[] = [];
    const h = await start({}, (_req, res) => res.end('alive'));
    h.server.on('clientError', (error: FastCGIError) => errors.push(error));
    const peer = await h.connect();
    await peer.send([record(12, 0), record(200, 0, 'abcdefgh')]);
    await peer.getValues(['FCGI_MPXS_CONNS']); // replies come in order: this one follows the UNKNOWN_TYPEs
    expect(peer.unknownTypeReplies).toEqual([12, 200]);
    const replies = peer.records.filter((r) => r.type === RecordType.UNKNOWN_TYPE);
    expect(replies.map((r) => [r.requestId, r.content.toString('hex')])).toEqual([
      [0, '0c00000000000000'],
      [0, 'c800000000000000'],
    ]);

    const before = peer.records.length;
    await peer.send([
      record(12, 1, 'x'), // unknown type with an id: ignored
      record(200, 3),
      record(RecordType.STDIN, 7, 'never begun'), // inactive id: ignored (FastCGI 1.0 §3.3)
      record(RecordType.STDIN, 7),
      record(RecordType.PARAMS, 8, pair('A', 'b')),
      record(RecordType.DATA, 9, 'data'),
      record(RecordType.ABORT_REQUEST, 10),
    ]);
    const response = await peer.request({ keepConn: true, params: GET });
    expect(parseCgiResponse(response.stdout).body.toString()).toBe('alive');
    expect(types(peer.records.slice(before))).toEqual([
      `${RecordType.STDOUT}:1:data`,
      `${RecordType.STDOUT}:1:empty`,
      `${RecordType.END_REQUEST}:1:data`,
    ]);
    expect(peer.unknownTypeReplies).toEqual([12, 200]);
    expect(errors).toEqual([]);
    expect(peer.closedResult).toBeUndefined();
  });
});

describe('Server ABORT_REQUEST', () => {
  it('aborts the handler (signal, abort event), ends the request at once, drops later output and leaves other requests running', async () => {
    const started = new Map([
      ['/victim', deferred()],
      ['/other', deferred()],
    ]);
    const releaseOther = deferred();
    const seen = deferred<{ reason: unknown; aborted: boolean; code: unknown }>();
    const lateWritten = deferred<boolean>();
    const h = await start({}, async (req, res) => {
      started.get(req.url!)!.resolve();
      if (req.url === '/victim') {
        const signal = req.fastcgi.signal;
        req.fastcgi.once('abort', (reason: unknown) => {
          seen.resolve({ reason, aborted: signal.aborted, code: (signal.reason as FastCGIError | undefined)?.code });
          // Output after the abort must not reach the wire.
          res.write('late');
          res.end('later');
          req.fastcgi.stderr.write('late stderr');
          lateWritten.resolve(true);
        });
        return;
      }
      await releaseOther.promise;
      res.end('other done');
    });
    const peer = await h.connect();
    const victimEnd = peer.request({ requestId: 1, keepConn: true, params: { ...GET, REQUEST_URI: '/victim' } });
    const otherEnd = peer.request({ requestId: 2, keepConn: true, params: { ...GET, REQUEST_URI: '/other' } });
    await Promise.all([...started.values()].map((d) => d.promise));

    await peer.abort(1);
    const ended = await within(victimEnd, 1000, 'END_REQUEST after ABORT_REQUEST');
    expect(ended.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
    expect(ended.appStatus).toBe(0);
    expect(ended.records[ended.records.length - 1]!.type).toBe(RecordType.END_REQUEST);
    expect(await seen.promise).toEqual({ reason: 'abort-request', aborted: true, code: ErrorCode.REQUEST_ABORTED });
    await lateWritten.promise;
    const endIndex = peer.records.findIndex((r) => r.type === RecordType.END_REQUEST && r.requestId === 1);

    releaseOther.resolve();
    const other = await otherEnd;
    expect(parseCgiResponse(other.stdout).body.toString()).toBe('other done');
    expect(other.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
    // Nothing for id 1 after its END_REQUEST, though the handler wrote after the abort.
    expect(peer.records.slice(endIndex + 1).filter((r) => r.requestId === 1)).toEqual([]);
    // The connection goes on.
    const after = await peer.request({ requestId: 1, keepConn: true, params: { ...GET, REQUEST_URI: '/other' } });
    expect(parseCgiResponse(after.stdout).body.toString()).toBe('other done');
  });

  it('ends a request aborted before its params end without calling the handler', async () => {
    let calls = 0;
    const h = await start({}, (_req, res) => {
      calls++;
      res.end('ok');
    });
    const peer = await h.connect();
    await peer.send(
      Buffer.concat([beginRequest(1, 1, 1), record(RecordType.PARAMS, 1, pair('REQUEST_METHOD', 'GET'))]),
    );
    await peer.abort(1);
    const ended = await within(peer.waitForEnd(1), 1000, 'END_REQUEST after ABORT_REQUEST');
    expect(ended.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
    expect(ended.stdout.length).toBe(0);
    // The rest of the aborted request's PARAMS is ignored; the id is free for the next request.
    await peer.send(record(RecordType.PARAMS, 1));
    const next = await peer.request({ keepConn: true, params: GET });
    expect(parseCgiResponse(next.stdout).body.toString()).toBe('ok');
    expect(calls).toBe(1);
  });

  it('terminates a STDERR stream the handler had started before END_REQUEST', async () => {
    const started = deferred();
    const h = await start({}, (req, res) => {
      res.stderr.write('before the abort');
      res.write('partial');
      req.fastcgi.once('abort', () => undefined);
      started.resolve();
    });
    const peer = await h.connect();
    const ended = peer.request({ keepConn: true, params: GET });
    await started.promise;
    await peer.abort(1);
    const response = await within(ended, 1000, 'END_REQUEST after ABORT_REQUEST');
    expect(response.stderr.toString()).toBe('before the abort');
    // FastCGI 1.0 §6.1: a stream ends with its empty record; STDERR, once started, too.
    expect(response.stderrEnded).toBe(true);
    expect(response.stdoutEnded).toBe(true);
    expectWellFramed(response);
  });
});

describe('Server peer disconnects', () => {
  it.each([
    { how: 'FIN (destroy)', close: (peer: TestPeer) => peer.destroy() },
    { how: 'RST (resetAndDestroy)', close: (peer: TestPeer) => void peer.socket.resetAndDestroy() },
  ])(
    'aborts a request whose peer closes with $how mid-response; later writes raise no EPIPE or ECONNRESET',
    async ({ close }) => {
      const aborted = deferred<{ reason: unknown; code: unknown }>();
      const closed = deferred();
      const loopDone = deferred<{ writes: number; afterAbort: number; thrown: unknown }>();
      const firstWrite = deferred();
      const serverErrors: unknown[] = [];
      const h = await start({}, (req, res) => {
        if (req.url !== '/stream') return void res.end('plain');
        const signal = req.fastcgi.signal;
        signal.addEventListener('abort', () =>
          aborted.resolve({ reason: req.fastcgi.abortReason, code: (signal.reason as FastCGIError).code }),
        );
        res.on('close', () => closed.resolve());
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        // Writes slowly, as a streaming handler would, and (careless) goes on writing for a while after the abort.
        void (async () => {
          let writes = 0;
          let afterAbort = 0;
          let thrown: unknown;
          try {
            while (writes < 500 && afterAbort < 20) {
              if (signal.aborted) afterAbort++;
              res.write(`tick ${writes++}\n`);
              if (writes === 1) firstWrite.resolve();
              await delay(2);
            }
          } catch (error) {
            thrown = error;
          }
          loopDone.resolve({ writes, afterAbort, thrown });
        })();
      });
      h.server.on('error', (error) => serverErrors.push(error));
      h.server.on('clientError', (error) => serverErrors.push(error));
      const peer = await h.connect();
      await peer.send(buildRequest({ params: { ...GET, REQUEST_URI: '/stream' } }));
      await firstWrite.promise;
      close(peer);
      expect(await within(aborted.promise, 2000, 'abort signal')).toEqual({
        reason: 'connection-closed',
        code: ErrorCode.REQUEST_ABORTED,
      });
      await within(closed.promise, 2000, "res 'close'");
      const loop = await within(loopDone.promise, 2000, 'handler loop');
      expect(loop.thrown).toBeUndefined();
      expect(loop.afterAbort).toBe(20);
      expect(serverErrors).toEqual([]);
      expect(h.server.connectionCount).toBe(0);
      // The server is fine: a new connection is served.
      const again = await (await h.connect()).request({ params: GET });
      expect(parseCgiResponse(again.stdout).body.toString()).toBe('plain');
    },
  );

  it('aborts a request still waiting for its body when the peer closes the connection; the body read fails', async () => {
    const started = deferred();
    const aborted = deferred<unknown>();
    const bodyRead = deferred<unknown>();
    const closed = deferred();
    const h = await start({}, (req, res) => {
      req.fastcgi.signal.addEventListener('abort', () => aborted.resolve(req.fastcgi.abortReason));
      res.on('close', () => closed.resolve());
      readAll(req).then(
        (body) => bodyRead.resolve(`completed with ${body.length} bytes`),
        (error: FastCGIError) => bodyRead.resolve(error.code),
      );
      started.resolve();
    });
    const peer = await h.connect();
    await peer.send(
      buildRequest({ params: { ...GET, REQUEST_METHOD: 'POST' }, stdin: 'partial body', noStdinEnd: true }),
    );
    await within(started.promise, 2000, 'handler called');
    peer.end();
    expect(await within(aborted.promise, 2000, 'abort signal')).toBe('connection-closed');
    await within(closed.promise, 2000, "res 'close'");
    expect(await within(bodyRead.promise, 2000, 'body read settled')).toBe(ErrorCode.REQUEST_ABORTED);
  });
});

describe('Server malformed input', () => {
  // Each case: bytes that break one connection, and the error code the server must report for it.
  const cases: Array<{ name: string; code: string; bytes: () => Buffer[]; message?: RegExp }> = [
    {
      name: 'an HTTP request on the FastCGI socket (bad version)',
      code: ErrorCode.BAD_VERSION,
      bytes: () => [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
      message: /HTTP/,
    },
    {
      name: 'STDIN before the end of PARAMS',
      code: ErrorCode.STDIN_BEFORE_PARAMS_END,
      bytes: () => [
        beginRequest(1, 1, 1),
        record(RecordType.PARAMS, 1, pair('REQUEST_METHOD', 'POST')),
        record(RecordType.STDIN, 1, 'body'),
      ],
    },
    {
      name: 'a second BEGIN_REQUEST for an active id',
      code: ErrorCode.DUPLICATE_REQUEST_ID,
      bytes: () => [
        buildRequest({ requestId: 1, keepConn: true, params: { ...GET, REQUEST_URI: '/hold' } }),
        beginRequest(1, 1, 1),
      ],
    },
    {
      name: 'a pair whose length runs past the end of PARAMS',
      code: ErrorCode.PAIR_DATA_TRUNCATED,
      bytes: () => [
        beginRequest(1, 1, 0),
        record(RecordType.PARAMS, 1, Buffer.from([10, 5, 0x41, 0x42, 0x43])),
        record(RecordType.PARAMS, 1),
      ],
    },
  ];

  it.each(cases)('closes only the connection that sent $name, reporting $code', async ({ code, bytes, message }) => {
    const holding: FastCGIServerResponse[] = [];
    const h = await start({}, (req, res) => {
      if (req.url === '/hold') holding.push(res as FastCGIServerResponse);
      else res.end(`served ${req.url}`);
    });
    const errors: FastCGIError[] = [];
    h.server.on('clientError', (error: FastCGIError) => errors.push(error));
    const good = await h.connect();
    const before = await good.request({ keepConn: true, params: { ...GET, REQUEST_URI: '/before' } });
    expect(parseCgiResponse(before.stdout).body.toString()).toBe('served /before');

    const bad = await h.connect();
    const reported = nextClientError(h.server);
    await bad.send(bytes());
    const { error, socket } = await within(reported, 2000, `clientError ${code}`);
    expect(error.code).toBe(code);
    if (message !== undefined) expect(error.message).toMatch(message);
    expect(socket).toBe(h.sockets[1]);
    const closed = await within(bad.closed, 2000, 'bad connection closed');
    expect(closed.error).toBeUndefined(); // the server sent nothing unparseable before closing
    expect(bad.protocolError).toBeUndefined();
    expect(bad.records.filter((r) => r.type === RecordType.END_REQUEST)).toEqual([]);

    const after = await good.request({ keepConn: true, params: { ...GET, REQUEST_URI: '/after' } });
    expect(parseCgiResponse(after.stdout).body.toString()).toBe('served /after');
    expect(good.closedResult).toBeUndefined();
    expect(errors.map((e) => e.code)).toEqual([code]);
  });

  it("logs the reason with its code when nobody listens to 'clientError'", async () => {
    const h = await start();
    const peer = await h.connect();
    await peer.send(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    await within(peer.closed, 2000, 'connection closed');
    expect(h.logs).toHaveLength(1);
    expect(h.logs[0]!.level).toBe('warn');
    expect(h.logs[0]!.message).toContain('[FCGI_ERR_BAD_VERSION]');
    expect(h.logs[0]!.message).toMatch(/HTTP/);
  });
});

describe('Server params', () => {
  it('reassembles pairs straddling PARAMS records, cut inside lengths, names and values', async () => {
    const h = await start({}, (req, res) => res.end(JSON.stringify(req.cgiParams)));
    const long = 'L'.repeat(300) + 'end';
    const block = Buffer.concat([
      pair('REQUEST_METHOD', 'GET'),
      pair('HTTP_X_LONG', long),
      pair('REQUEST_URI', '/straddle'),
    ]);
    const longAt = pair('REQUEST_METHOD', 'GET').length;
    // Cut inside the 4-byte value length, inside the name, inside the value, and at every 7th byte.
    const cutSets = [
      [longAt + 3],
      [longAt + 7],
      [longAt + 5 + 11 + 150],
      Array.from({ length: Math.floor(block.length / 7) }, (_, i) => (i + 1) * 7),
    ];
    for (const cuts of cutSets) {
      const points = [0, ...cuts.filter((c) => c > 0 && c < block.length), block.length];
      const records: Buffer[] = [beginRequest(1, 1, 0)];
      for (let i = 0; i + 1 < points.length; i++)
        records.push(record(RecordType.PARAMS, 1, block.subarray(points[i], points[i + 1]), i % 3));
      records.push(record(RecordType.PARAMS, 1), record(RecordType.STDIN, 1));
      const peer = await h.connect();
      await peer.send(Buffer.concat(records));
      const response = await peer.waitForEnd(1);
      expect(JSON.parse(parseCgiResponse(response.stdout).body.toString()), `cuts ${cuts.join(',')}`).toEqual({
        REQUEST_METHOD: 'GET',
        HTTP_X_LONG: long,
        REQUEST_URI: '/straddle',
      });
    }
  });

  it('hands params with control bytes and UTF-8 to the handler byte for byte', async () => {
    const value = Buffer.concat([Buffer.from([0x01, 0x00, 0x7f, 0xff]), Buffer.from('café 😀', 'utf8')]);
    const h = await start({}, (req, res) => {
      const raw = req.fastcgi.rawParams;
      let bytes = '';
      for (let i = 0; i < raw.size; i++)
        if (raw.nameAt(i) === 'HTTP_X_BIN') bytes = raw.valueBytesAt(i).toString('hex');
      res.end(
        JSON.stringify({
          bytes,
          latin1: Buffer.from(req.cgiParams.HTTP_X_BIN!, 'latin1').toString('hex'),
          header: Buffer.from(req.headers['x-bin'] as string, 'latin1').toString('hex'),
          uri: Buffer.from(req.cgiParams.REQUEST_URI!, 'latin1').toString('hex'),
        }),
      );
    });
    const peer = await h.connect();
    const uri = Buffer.from('/é/\x01', 'utf8');
    const response = await peer.request({
      params: [
        ['REQUEST_METHOD', 'GET'],
        ['REQUEST_URI', uri],
        ['HTTP_X_BIN', value],
      ],
    });
    expect(JSON.parse(parseCgiResponse(response.stdout).body.toString())).toEqual({
      bytes: value.toString('hex'),
      latin1: value.toString('hex'),
      header: value.toString('hex'),
      uri: uri.toString('hex'),
    });
  });
});

describe('Server STDERR and stream order', () => {
  it('sends STDERR records and the empty STDERR before END_REQUEST, and nothing of a request after its END_REQUEST', async () => {
    const h = await start({ maxRequestsPerConnection: 8 }, (req, res) => {
      res.stderr.write('oops');
      res.write('part;');
      res.stderr.write(`:${req.url}`);
      res.end('end');
      res.on('finish', () => {
        // Too late: the request is over.
        setImmediate(() => {
          req.fastcgi.stderr.write('late');
          res.stderr.write('late');
        });
      });
    });
    const peer = await h.connect();
    const responses = await Promise.all(
      [1, 2, 3].map((id) => peer.request({ requestId: id, keepConn: true, params: { ...GET, REQUEST_URI: `/${id}` } })),
    );
    // A later request on the same connection flushes anything the late writes may have queued.
    await peer.request({ requestId: 4, keepConn: true, params: GET });
    for (const [i, response] of responses.entries()) {
      const id = i + 1;
      expect(response.stderr.toString()).toBe(`oops:/${id}`);
      expect(response.stderrEnded).toBe(true);
      expect(parseCgiResponse(response.stdout).body.toString()).toBe('part;end');
      expectWellFramed(response);
      const stderrRecords = response.records.filter((r) => r.type === RecordType.STDERR);
      expect(stderrRecords[stderrRecords.length - 1]!.contentLength).toBe(0);
      expect(stderrRecords.filter((r) => r.contentLength === 0)).toHaveLength(1);
      // Nothing for this id after its END_REQUEST anywhere on the connection.
      const endAt = peer.records.findIndex((r) => r.type === RecordType.END_REQUEST && r.requestId === id);
      expect(peer.records.slice(endAt + 1).filter((r) => r.requestId === id)).toEqual([]);
    }
  });

  it('sends no STDERR records when the handler writes none', async () => {
    const h = await start({}, (_req, res) => res.end('clean'));
    const peer = await h.connect();
    const response = await peer.request({ params: GET });
    expect(response.records.filter((r) => r.type === RecordType.STDERR)).toEqual([]);
  });
});

describe('Server handler failures', () => {
  it('answers 500 with the stack on STDERR for sync throws and rejections, cuts off a started response with appStatus != 0, and keeps serving', async () => {
    const h = await start({}, async (req, res) => {
      switch (req.url) {
        case '/sync':
          throw new Error('boom-sync');
        case '/async':
          await delay(1);
          throw new Error('boom-async');
        case '/late':
          res.write('partial');
          throw new Error('boom-late');
        default:
          res.end('fine');
      }
    });
    const peer = await h.connect();
    const get = (url: string): Promise<PeerResponse> =>
      peer.request({ keepConn: true, params: { ...GET, REQUEST_URI: url } });

    for (const kind of ['sync', 'async']) {
      const errorsBefore = h.logs.filter((l) => l.level === 'error').length;
      const response = await get(`/${kind}`);
      const cgi = parseCgiResponse(response.stdout);
      expect(cgi.status).toBe(500);
      expect(cgi.body.toString()).toBe('Internal Server Error\n');
      expect(cgi.body.toString()).not.toContain(`boom-${kind}`);
      expect(response.stderr.toString()).toContain(`Error: boom-${kind}`);
      expect(response.stderr.toString()).toMatch(/\n\s+at /);
      expect(response.stderrEnded).toBe(true);
      expectWellFramed(response);
      const errors = h.logs.filter((l) => l.level === 'error');
      expect(errors.length).toBe(errorsBefore + 1);
      expect(errors[errors.length - 1]!.message).toContain(`boom-${kind}`);
      expect((await get('/ok')).stdout.toString()).toContain('fine');
    }

    const late = await get('/late');
    expect(late.appStatus).not.toBe(0);
    expect(late.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
    expect(parseCgiResponse(late.stdout).body.toString()).toBe('partial');
    expect(late.stderr.toString()).toContain('Error: boom-late');
    expect(late.stderrEnded).toBe(true);
    expect(h.logs.some((l) => l.level === 'error' && l.message.includes('boom-late'))).toBe(true);

    const ok = await get('/ok');
    expect(parseCgiResponse(ok.stdout).body.toString()).toBe('fine');
    expect(ok.appStatus).toBe(0);
    expect(peer.closedResult).toBeUndefined();
  });
});
