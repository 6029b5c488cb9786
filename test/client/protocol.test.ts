// The client on the wire, against a scripted backend that records what it receives and answers with exact
// (sometimes broken) bytes: record order and framing, CONTENT_LENGTH, pair limits, END_REQUEST handling,
// protocol statuses, malformed input, aborts, ids, queueing, connect failures and every timeout.
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BackendError, ClientTimeoutError, ConnectError } from '../../src/client/errors';
import { LimitError, ProtocolError, RequestAbortedError } from '../../src/errors';
import { RecordType } from '../../src/wire/constants';
import { encodeRecord, encodeStream, encodeEndRequest } from '../../src/wire/records';
import { within } from '../helpers/async';
import { rejectionOf, testClient, unacceptingPort, waitFor } from './helpers';
import { ScriptedBackend, type ScriptedRequest } from './scripted-backend';

const OK = 'Content-Type: text/plain\r\n\r\n';

describe('client requests on the wire', () => {
  it('sends BEGIN_REQUEST with KEEP_CONN, PARAMS, the empty PARAMS, STDIN and the empty STDIN, in that order', async () => {
    const seen: ScriptedRequest[] = [];
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        seen.push(request);
        connection.respond(request.requestId, `${OK}ok`);
      },
    });
    const client = testClient({ address: backend.path, multiplex: false });
    const response = await client.request({ params: { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '999' }, body: 'hello' });
    expect(await response.text()).toBe('ok');
    const types = backend.connections[0]!.records.map((r) => `${r.type}:${r.contentLength === 0 ? 'end' : 'data'}`);
    expect(types).toEqual(['1:data', '4:data', '4:end', '5:data', '5:end']);
    expect(seen[0]!.keepConn).toBe(true);
    expect(seen[0]!.role).toBe(1);
    // The caller's CONTENT_LENGTH is replaced by the measured one, and appears once.
    expect(seen[0]!.pairs.filter(([name]) => name === 'CONTENT_LENGTH')).toEqual([['CONTENT_LENGTH', '5']]);
    expect(seen[0]!.stdin.toString()).toBe('hello');
  });

  it('sends no CONTENT_LENGTH without a body, and CONTENT_LENGTH 0 for an empty one', async () => {
    const seen: ScriptedRequest[] = [];
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        seen.push(request);
        connection.respond(request.requestId, OK);
      },
    });
    const client = testClient({ address: backend.path, multiplex: false });
    await (await client.request({ params: { A: '1' } })).text();
    await (await client.request({ params: { A: '1' }, body: Buffer.alloc(0) })).text();
    expect(seen[0]!.params.CONTENT_LENGTH).toBeUndefined();
    expect(seen[1]!.params.CONTENT_LENGTH).toBe('0');
  });

  it('splits large params into several PARAMS records at pair boundaries, never inside a pair', async () => {
    let received: ScriptedRequest | null = null;
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        received = request;
        connection.respond(request.requestId, OK);
      },
    });
    const client = testClient({ address: backend.path, multiplex: false });
    const params: Record<string, string> = {};
    for (let i = 0; i < 10; i++) params[`P${i}`] = String(i).repeat(20_000);
    await (await client.request({ params })).text();
    expect(received!.params).toMatchObject(params);
    const paramRecords = backend.connections[0]!.records.filter(
      (r) => r.type === RecordType.PARAMS && r.contentLength > 0,
    );
    expect(paramRecords.length).toBeGreaterThan(3);
    for (const record of paramRecords) expect(record.contentLength).toBeLessThanOrEqual(65535);
    // Each record holds whole pairs: 3 pairs of 20007 bytes (1 + 4 + 2 + 20000) fit one 65535-byte record.
    expect(paramRecords.map((r) => r.contentLength)).toEqual([60021, 60021, 60021, 20007]);
  });

  it('sends a pair of exactly 65535 bytes (lengths included) and refuses one byte more with FCGI_ERR_PAIR_TOO_LARGE', async () => {
    let received: ScriptedRequest | null = null;
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        received = request;
        connection.respond(request.requestId, OK);
      },
    });
    const client = testClient({ address: backend.path, multiplex: false });
    // name 3 bytes (1-byte length) + value (4-byte length) + 5 = 65535.
    const value = 'v'.repeat(65535 - 3 - 1 - 4);
    await (await client.request({ params: { BIG: value, SMALL: 'xy' } })).text();
    expect(received!.params.BIG).toBe(value);
    // php-fpm drops a record whose content and padding exceed 65535 bytes: the full record goes unpadded,
    // the others stay padded to 8.
    const params = backend.connections[0]!.records.filter((r) => r.type === RecordType.PARAMS && r.contentLength > 0);
    expect(params.map((r) => [r.contentLength, r.paddingLength])).toEqual([
      [65535, 0],
      [9, 7],
    ]);
    const error = await rejectionOf(client.request({ params: { BIG: `${value}v` } }));
    expect(error).toBeInstanceOf(LimitError);
    expect(error.code).toBe('FCGI_ERR_PAIR_TOO_LARGE');
    expect((error as LimitError).value).toBe(65536);
    expect(error.message).toMatch(/BIG takes 65536 bytes/);
    expect(backend.connections[0]!.records.filter((r) => r.type === RecordType.BEGIN_REQUEST)).toHaveLength(1);
  });

  it('ends the body at END_REQUEST when the backend sends no empty STDOUT record (php-fpm)', async () => {
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        connection.respond(request.requestId, `${OK}no terminator`, { noTerminator: true, appStatus: 7 });
      },
    });
    const client = testClient({ address: backend.path, multiplex: false });
    const response = await client.request({});
    expect(await response.text()).toBe('no terminator');
    await expect(response.completed).resolves.toEqual({ appStatus: 7, protocolStatus: 0, stderr: '' });
    expect(response.appStatus).toBe(7);
  });

  it('reads a response delivered one byte per write', async () => {
    const backend = await ScriptedBackend.start({
      async request(request, connection) {
        const bytes = Buffer.concat([
          encodeStream(RecordType.STDERR, request.requestId, Buffer.from('warn\n')),
          encodeStream(
            RecordType.STDOUT,
            request.requestId,
            Buffer.from(`Status: 201 Made\r\nX-A: 1\r\n\r\n\x00\x01\x02`, 'latin1'),
            { end: true },
          ),
          encodeEndRequest(request.requestId, 0),
        ]);
        for (const byte of bytes) {
          connection.raw(Buffer.from([byte]));
          await delay(0);
        }
      },
    });
    const client = testClient({ address: backend.path, multiplex: false });
    const response = await client.request({});
    expect(response.status).toBe(201);
    expect(response.statusText).toBe('Made');
    expect([...(await response.buffer())]).toEqual([0, 1, 2]);
    expect((await response.completed).stderr).toBe('warn\n');
  });

  it('collects STDERR up to maxStderrBytes and passes every piece to onStderr', async () => {
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        connection.stderr(request.requestId, 'a'.repeat(100));
        connection.stderr(request.requestId, 'b'.repeat(100));
        connection.respond(request.requestId, `${OK}body`);
      },
    });
    const client = testClient({ address: backend.path, multiplex: false, maxStderrBytes: 150 });
    const pieces: string[] = [];
    const response = await client.request({ onStderr: (chunk) => pieces.push(chunk.toString()) });
    expect(await response.text()).toBe('body');
    expect(pieces.join('')).toBe('a'.repeat(100) + 'b'.repeat(100));
    expect(response.stderr).toBe('a'.repeat(100) + 'b'.repeat(50));
  });

  it('turns OVERLOADED, CANT_MPX_CONN and UNKNOWN_ROLE into BackendErrors with their own codes', async () => {
    const statuses = [2, 1, 3, 9];
    let next = 0;
    const backend = await ScriptedBackend.start({
      begin(requestId, connection) {
        connection.end(requestId, 0, statuses[next++]!);
      },
    });
    const client = testClient({ address: backend.path, multiplex: false });
    const codes: string[] = [];
    for (let i = 0; i < statuses.length; i++) {
      const error = await rejectionOf(client.request({}));
      expect(error).toBeInstanceOf(BackendError);
      expect((error as BackendError).protocolStatus).toBe(statuses[i]);
      codes.push(error.code!);
    }
    expect(codes).toEqual([
      'FCGI_ERR_OVERLOADED',
      'FCGI_ERR_CANT_MPX_CONN',
      'FCGI_ERR_UNKNOWN_ROLE',
      'FCGI_ERR_UNKNOWN_PROTOCOL_STATUS',
    ]);
  });

  it('fails the request with FCGI_ERR_BACKEND_CLOSED when the backend closes before END_REQUEST, before or after the headers', async () => {
    let mode = 0;
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        if (mode++ === 0) connection.stdout(request.requestId, 'Content-Type: te');
        else connection.stdout(request.requestId, `${OK}partial body`);
        setTimeout(() => connection.socket.end(), 20);
      },
    });
    const client = testClient({ address: backend.path, multiplex: false });
    const early = await rejectionOf(client.request({}));
    expect(early.code).toBe('FCGI_ERR_BACKEND_CLOSED');
    expect(early.message).toMatch(/no complete response header block/);
    const response = await client.request({});
    const late = await rejectionOf(response.text());
    expect(late.code).toBe('FCGI_ERR_BACKEND_CLOSED');
    expect(late.message).toMatch(/after \d+ bytes of response/);
    await expect(response.completed).rejects.toBe(late);
  });

  it('a body held back at highWaterMark whose end arrived keeps reading for a later END_REQUEST', async () => {
    // Headers, 4000 body bytes and the STDOUT terminator in one write, END_REQUEST 50 ms later; the body's
    // highWaterMark is 1024, so the connection stopped reading before the terminator was handled.
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        connection.stdout(request.requestId, Buffer.concat([Buffer.from(OK), Buffer.alloc(4000, 5)]), true);
        setTimeout(() => connection.end(request.requestId), 50);
      },
    });
    const client = testClient({
      address: backend.path,
      multiplex: false,
      highWaterMark: 1024,
      requestTimeout: 2000,
      bodyTimeout: 2000,
    });
    for (const read of ['buffer', 'stream'] as const) {
      const response = await client.request({});
      await new Promise((r) => setTimeout(r, 20));
      if (read === 'buffer') expect((await response.buffer()).length).toBe(4000);
      else {
        let n = 0;
        for await (const chunk of response.body) n += (chunk as Buffer).length;
        expect(n).toBe(4000);
      }
      expect((await within(response.completed, 1000, `${read}: END_REQUEST read`)).appStatus).toBe(0);
    }
    expect(client.stats.inFlight).toBe(0);
  });

  it('a body that failed before anyone asked for it is a stream that errors with the failure', async () => {
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        connection.stdout(request.requestId, `${OK}part of a body`);
        setTimeout(() => connection.socket.end(), 20);
      },
    });
    const client = testClient({ address: backend.path, multiplex: false });
    const response = await client.request({});
    await expect(response.completed).rejects.toMatchObject({ code: 'FCGI_ERR_BACKEND_CLOSED' });
    const error = await rejectionOf(response.text());
    expect(error.code).toBe('FCGI_ERR_BACKEND_CLOSED');
  });

  it('fails in-flight requests with a ProtocolError on a malformed record, and the next request gets a new connection', async () => {
    let count = 0;
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        if (count++ === 0) connection.raw(Buffer.from([2, 6, 0, 1, 0, 0, 0, 0]));
        else connection.respond(request.requestId, `${OK}fine`);
      },
    });
    const client = testClient({ address: backend.path, multiplex: false });
    const error = await rejectionOf(client.request({}));
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error.code).toBe('FCGI_ERR_BAD_VERSION');
    expect(await (await client.request({})).text()).toBe('fine');
    expect(backend.connections).toHaveLength(2);
  });

  it('rejects an END_REQUEST shorter than 8 bytes with FCGI_ERR_BAD_END_REQUEST', async () => {
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        connection.stdout(request.requestId, OK);
        connection.raw(encodeRecord(RecordType.END_REQUEST, request.requestId, Buffer.alloc(3)));
      },
    });
    const client = testClient({ address: backend.path, multiplex: false });
    const response = await client.request({});
    const error = await rejectionOf(response.text());
    expect(error.code).toBe('FCGI_ERR_BAD_END_REQUEST');
  });

  it('rejects a malformed CGI header block and stops the request on the backend', async () => {
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        connection.stdout(request.requestId, 'HTTP/1.1 200 OK\r\n\r\n');
      },
    });
    const client = testClient({ address: backend.path, multiplex: false });
    const error = await rejectionOf(client.request({}));
    expect(error.code).toBe('FCGI_ERR_CGI_HEADER_MALFORMED');
    // Not multiplexed: the request is stopped by closing its connection.
    await once(backend.connections[0]!.socket, 'close');
  });

  it('ignores records for ids that are not in flight (FastCGI 1.0 §3.3)', async () => {
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        connection.stdout(9, 'Status: 500 Wrong\r\n\r\n', true);
        connection.end(9);
        connection.respond(request.requestId, `${OK}right`);
      },
    });
    const client = testClient({ address: backend.path, multiplex: false });
    const response = await client.request({});
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('right');
  });
});

describe('client request bodies', () => {
  function echoBackend() {
    return ScriptedBackend.start({
      request(request, connection) {
        connection.respond(
          request.requestId,
          Buffer.concat([Buffer.from(`X-Length: ${request.params.CONTENT_LENGTH}\r\n\r\n`), request.stdin]),
        );
      },
    });
  }

  it('reads a stream of unknown length first, so CONTENT_LENGTH is exact', async () => {
    const backend = await echoBackend();
    const client = testClient({ address: backend.path, multiplex: false });
    async function* parts() {
      yield Buffer.from([0, 1]);
      yield 'é';
      yield new Uint8Array([255]);
    }
    const response = await client.request({ body: parts() });
    expect(response.headers['x-length']).toBe('5');
    expect([...(await response.buffer())]).toEqual([0, 1, 0xc3, 0xa9, 255]);
  });

  it('refuses an unknown-length body past bufferUnknownLength (FCGI_ERR_BODY_TOO_LARGE), and any with false', async () => {
    const backend = await echoBackend();
    const capped = testClient({ address: backend.path, multiplex: false, bufferUnknownLength: 10 });
    const error = await rejectionOf(capped.request({ body: Readable.from([Buffer.alloc(6), Buffer.alloc(6)]) }));
    expect(error).toBeInstanceOf(LimitError);
    expect(error.code).toBe('FCGI_ERR_BODY_TOO_LARGE');
    const strict = testClient({ address: backend.path, multiplex: false, bufferUnknownLength: false });
    expect((await rejectionOf(strict.request({ body: Readable.from([Buffer.alloc(1)]) }))).code).toBe(
      'FCGI_ERR_BODY_TOO_LARGE',
    );
    // With a declared length the stream goes out as it is read.
    const response = await strict.request({
      body: Readable.from([Buffer.from('ab'), Buffer.from('c')]),
      contentLength: 3,
    });
    expect(await response.text()).toBe('abc');
    expect(backend.connections).toHaveLength(1);
  });

  it('fails with FCGI_ERR_BODY_LENGTH_MISMATCH when a stream is shorter or longer than declared', async () => {
    const backend = await echoBackend();
    const client = testClient({ address: backend.path, multiplex: false });
    const short = await rejectionOf(client.request({ body: Readable.from([Buffer.from('ab')]), contentLength: 3 }));
    expect(short.code).toBe('FCGI_ERR_BODY_LENGTH_MISMATCH');
    const long = await rejectionOf(client.request({ body: Readable.from([Buffer.from('abcd')]), contentLength: 3 }));
    expect(long.code).toBe('FCGI_ERR_BODY_LENGTH_MISMATCH');
    expect(await (await client.request({ body: 'ok' })).text()).toBe('ok');
  });

  it('fails with FCGI_ERR_BODY_SOURCE when the body stream errors', async () => {
    const backend = await echoBackend();
    const client = testClient({ address: backend.path, multiplex: false });
    const failing = new Readable({
      read() {
        this.destroy(new Error('disk gone'));
      },
    });
    const error = await rejectionOf(client.request({ body: failing, contentLength: 10 }));
    expect(error.code).toBe('FCGI_ERR_BODY_SOURCE');
    expect((error.cause as Error).message).toBe('disk gone');
  });
});

describe('client pool', () => {
  it('reuses one connection and request id 1 for sequential requests', async () => {
    const ids: number[] = [];
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        ids.push(request.requestId);
        connection.respond(request.requestId, OK);
      },
    });
    const client = testClient({ address: backend.path, multiplex: false });
    for (let i = 0; i < 20; i++) await (await client.request({})).text();
    expect(backend.connections).toHaveLength(1);
    expect(new Set(ids)).toEqual(new Set([1]));
    expect(client.stats.opened).toBe(1);
  });

  it('queues past the pool, fails past queueLimit with FCGI_ERR_QUEUE_FULL, then drains the queue', async () => {
    const held: Array<() => void> = [];
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        held.push(() => connection.respond(request.requestId, OK));
      },
    });
    const client = testClient({ address: backend.path, multiplex: false, poolSize: 2, queueLimit: 3 });
    const accepted = Array.from({ length: 5 }, () => client.request({}));
    const refused = await rejectionOf(client.request({}));
    expect(refused).toBeInstanceOf(LimitError);
    expect(refused.code).toBe('FCGI_ERR_QUEUE_FULL');
    expect(refused.message).toMatch(/3 requests already wait .* \(queueLimit 3\)/);
    await waitFor(() => held.length === 2, 5000, 'two requests at the backend');
    expect(client.stats).toMatchObject({ connections: 2, queued: 3, inFlight: 2 });
    while (held.length > 0 || client.stats.inFlight > 0) {
      held.shift()?.();
      await delay(5);
    }
    const responses = await Promise.all(accepted);
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(backend.connections).toHaveLength(2);
  });

  it('drops a queued request on abort, and stops an in-flight one by closing its connection', async () => {
    const backend = await ScriptedBackend.start({ request() {} });
    const client = testClient({ address: backend.path, multiplex: false, poolSize: 1 });
    const first = new AbortController();
    const second = new AbortController();
    const inFlight = client.request({ signal: first.signal });
    const queued = client.request({ signal: second.signal });
    await waitFor(() => client.stats.inFlight === 1 && client.stats.queued === 1);
    second.abort();
    const queuedError = await rejectionOf(queued);
    expect(queuedError).toBeInstanceOf(RequestAbortedError);
    expect(client.stats.queued).toBe(0);
    first.abort(new Error('user left'));
    const error = await rejectionOf(inFlight);
    expect(error.code).toBe('FCGI_ERR_REQUEST_ABORTED');
    expect(error.message).toMatch(/user left/);
    await once(backend.connections[0]!.socket, 'close');
  });

  it('rejects at once when the signal is already aborted', async () => {
    const backend = await ScriptedBackend.start({ request() {} });
    const client = testClient({ address: backend.path });
    const error = await rejectionOf(client.request({ signal: AbortSignal.abort() }));
    expect(error.code).toBe('FCGI_ERR_REQUEST_ABORTED');
    expect(client.stats.opened).toBe(0);
  });

  it('multiplexes when forced: ids 1..n at once, ABORT_REQUEST on abort, ids reused after END_REQUEST', async () => {
    const open = new Map<number, () => void>();
    const aborted: number[] = [];
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        open.set(request.requestId, () => connection.respond(request.requestId, `${OK}${request.requestId}`));
      },
      abort(requestId, connection) {
        aborted.push(requestId);
        open.delete(requestId);
        connection.end(requestId);
      },
    });
    const client = testClient({ address: backend.path, multiplex: true, poolSize: 1 });
    const controller = new AbortController();
    const requests = [client.request({}), client.request({ signal: controller.signal }), client.request({})];
    await waitFor(() => open.size === 3);
    expect([...open.keys()].sort()).toEqual([1, 2, 3]);
    controller.abort();
    await rejectionOf(requests[1]!);
    await waitFor(() => aborted.length === 1);
    expect(aborted).toEqual([2]);
    for (const respond of open.values()) respond();
    open.clear();
    expect(await (await requests[0]!).text()).toBe('1');
    expect(await (await requests[2]!).text()).toBe('3');
    // Ids come back: two at once take 1 and 2 (or 3) again, never 4.
    const again = [client.request({}), client.request({})];
    await waitFor(() => open.size === 2);
    expect(Math.max(...open.keys())).toBeLessThanOrEqual(3);
    for (const respond of open.values()) respond();
    await Promise.all(again);
    expect(backend.connections).toHaveLength(1);
  });

  it('probes with GET_VALUES and multiplexes when the backend says FCGI_MPXS_CONNS=1', async () => {
    const backend = await ScriptedBackend.start({
      getValues(connection) {
        connection.raw(
          encodeRecord(
            RecordType.GET_VALUES_RESULT,
            0,
            Buffer.from('\x0f\x01FCGI_MPXS_CONNS1\x0e\x02FCGI_MAX_CONNS10', 'latin1'),
          ),
        );
      },
      request(request, connection) {
        setTimeout(() => connection.respond(request.requestId, OK), 20);
      },
    });
    const client = testClient({ address: backend.path, poolSize: 2 });
    await (await client.request({})).text();
    await waitFor(() => client.stats.multiplexing, 2000, 'multiplexing');
    await Promise.all(Array.from({ length: 20 }, async () => (await client.request({})).text()));
    // The probe's connection plus at most the two pooled ones.
    expect(backend.connections.length).toBeLessThanOrEqual(3);
    expect(backend.connections.some((c) => c.records.some((r) => r.requestId > 1))).toBe(true);
  });

  it('never waits for a GET_VALUES answer: a backend that stays silent (fcgiwrap) is served at once', async () => {
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        connection.respond(request.requestId, OK);
      },
    });
    const client = testClient({ address: backend.path, probeTimeout: 3000 });
    const started = Date.now();
    await (await client.request({})).text();
    await (await client.request({})).text();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(client.stats.multiplexing).toBe(false);
    await waitFor(() => backend.connections.some((c) => c.records.some((r) => r.type === RecordType.GET_VALUES)));
  });

  it('closes the connection after END_REQUEST without KEEP_CONN, even when the backend only half-closes (pitfall 9)', async () => {
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        expect(request.keepConn).toBe(false);
        connection.respond(request.requestId, OK);
        // php-fpm: shutdown(SHUT_WR), then wait for the client's EOF.
        connection.socket.end();
      },
    });
    backend.server.on('connection', () => {});
    const client = testClient({ address: backend.path, keepConn: false, poolSize: 1 });
    for (let i = 0; i < 3; i++) await (await client.request({})).text();
    expect(backend.connections).toHaveLength(3);
    await Promise.all(backend.connections.map((c) => (c.socket.destroyed ? null : once(c.socket, 'close'))));
  });

  it('closes idle connections after idleTimeout, with a FIN', async () => {
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        connection.respond(request.requestId, OK);
      },
    });
    const client = testClient({ address: backend.path, multiplex: false, idleTimeout: 100 });
    await (await client.request({})).text();
    const socket = backend.connections[0]!.socket;
    await once(socket, 'end');
    await waitFor(() => client.stats.connections === 0, 3000, 'connection closed');
  });

  it('replaces a connection the backend closed while idle, with no request failing', async () => {
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        connection.respond(request.requestId, OK);
        // php-fpm's 5-second close of a silent connection, or pm.max_requests: the backend leaves while idle.
        setTimeout(() => connection.socket.end(), 10);
      },
    });
    const client = testClient({ address: backend.path, multiplex: false, idleTimeout: 60_000 });
    for (let i = 0; i < 5; i++) {
      await (await client.request({})).text();
      await waitFor(() => client.stats.connections === 0, 3000, 'backend close noticed');
    }
    expect(backend.connections).toHaveLength(5);
  });

  describe('a kept connection closed by the backend while a request was on its way (retryStaleConnection)', () => {
    // The race: the backend retires an idle kept connection (php-fpm pm.max_requests, a worker draining on
    // reload) just as the client sends the next request on it. The backend here closes the connection on
    // receiving its second request, unanswered, which is what the client sees when the race is lost.
    async function racingBackend(closeHow: 'end' | 'destroy' | 'reset' = 'end'): Promise<ScriptedBackend> {
      const served = new Map<unknown, number>();
      return ScriptedBackend.start(
        {
          request(request, connection) {
            const n = (served.get(connection) ?? 0) + 1;
            served.set(connection, n);
            if (n === 1)
              return connection.respond(
                request.requestId,
                `${OK}${request.params.REQUEST_METHOD} ${request.stdin.toString()}`,
              );
            if (closeHow === 'end') connection.socket.end();
            else if (closeHow === 'reset') connection.socket.resetAndDestroy();
            else connection.socket.destroy();
          },
        },
        { tcp: closeHow === 'reset' },
      );
    }

    it.each(['end', 'destroy', 'reset'] as const)(
      'sends an idempotent request again on a new connection (backend %s)',
      async (how) => {
        const backend = await racingBackend(how);
        const client = testClient({ address: backend.path, multiplex: false, poolSize: 1, idleTimeout: 60_000 });
        expect(await (await client.request({ params: { REQUEST_METHOD: 'GET' } })).text()).toBe('GET ');
        const second = await client.request({ params: { REQUEST_METHOD: 'PUT' }, body: 'again' });
        expect(await second.text()).toBe('PUT again');
        expect(backend.connections).toHaveLength(2);
        expect(client.stats.replayed).toBe(1);
      },
    );

    it('fails a POST, a streamed body, a request with no REQUEST_METHOD, and any request when turned off', async () => {
      const cases: { options: Parameters<ReturnType<typeof testClient>['request']>[0]; retry?: boolean }[] = [
        { options: { params: { REQUEST_METHOD: 'POST' }, body: 'x' } },
        { options: { params: { REQUEST_METHOD: 'PUT' }, body: Readable.from([Buffer.from('x')]), contentLength: 1 } },
        { options: {} },
        { options: { params: { REQUEST_METHOD: 'GET' } }, retry: false },
      ];
      for (const { options, retry } of cases) {
        const backend = await racingBackend();
        const client = testClient({
          address: backend.path,
          multiplex: false,
          poolSize: 1,
          idleTimeout: 60_000,
          retryStaleConnection: retry,
        });
        await (await client.request({ params: { REQUEST_METHOD: 'GET' } })).text();
        const error = await rejectionOf(client.request(options));
        expect(error.code).toBe('FCGI_ERR_BACKEND_CLOSED');
        expect(client.stats.replayed).toBe(0);
        expect(backend.connections).toHaveLength(1);
      }
    });

    it('never replays a request on a connection it opened for it, nor one whose response had begun', async () => {
      // First request on a fresh connection: the close is about this request, not a stale connection.
      const closer = await ScriptedBackend.start({ request: (_request, connection) => connection.socket.end() });
      const fresh = testClient({ address: closer.path, multiplex: false, poolSize: 1 });
      expect((await rejectionOf(fresh.request({ params: { REQUEST_METHOD: 'GET' } }))).code).toBe(
        'FCGI_ERR_BACKEND_CLOSED',
      );
      expect(closer.connections).toHaveLength(1);
      // A reused connection that answered part of the headers before closing.
      let n = 0;
      const partial = await ScriptedBackend.start({
        request(request, connection) {
          if (n++ === 0) return connection.respond(request.requestId, OK);
          connection.stdout(request.requestId, 'Content-Ty');
          setTimeout(() => connection.socket.end(), 10);
        },
      });
      const client = testClient({ address: partial.path, multiplex: false, poolSize: 1, idleTimeout: 60_000 });
      await (await client.request({ params: { REQUEST_METHOD: 'GET' } })).text();
      expect((await rejectionOf(client.request({ params: { REQUEST_METHOD: 'GET' } }))).code).toBe(
        'FCGI_ERR_BACKEND_CLOSED',
      );
      expect(client.stats.replayed).toBe(0);
    });

    it('replays a request whose params come from a generator (read once), ahead of the queue limit after a reset', async () => {
      const backend = await racingBackend('reset');
      const client = testClient({
        address: backend.path,
        multiplex: false,
        poolSize: 1,
        queueLimit: 0,
        idleTimeout: 60_000,
      });
      await (await client.request({ params: { REQUEST_METHOD: 'GET' } })).text();
      function* params(): Generator<[string, string]> {
        yield ['REQUEST_METHOD', 'GET'];
        yield ['X', 'y'];
      }
      expect(await (await client.request({ params: params() })).text()).toBe('GET ');
      expect(client.stats.replayed).toBe(1);
    });

    it('replays a request once: one that brings down every connection it is sent on fails after two attempts', async () => {
      let attempts = 0;
      const backend = await ScriptedBackend.start({
        request(request, connection) {
          if (request.params.POISON !== undefined) {
            attempts++;
            return void connection.socket.destroy();
          }
          connection.respond(request.requestId, `${OK}ok`);
        },
      });
      const client = testClient({ address: backend.path, multiplex: false, poolSize: 4, idleTimeout: 60_000 });
      // Four warm kept connections, every one of them a candidate for a replay.
      await Promise.all(
        [1, 2, 3, 4].map(async () => (await client.request({ params: { REQUEST_METHOD: 'GET' } })).text()),
      );
      await Promise.all(
        [1, 2, 3, 4].map(async () => (await client.request({ params: { REQUEST_METHOD: 'GET' } })).text()),
      );
      const error = await rejectionOf(client.request({ params: { REQUEST_METHOD: 'GET', POISON: '1' } }));
      expect(error.code).toBe('FCGI_ERR_BACKEND_CLOSED');
      expect(attempts).toBe(2);
      expect(client.stats.replayed).toBe(1);
    });

    it('replays every request of a multiplexed connection that closed unanswered', async () => {
      let first = true;
      const backend = await ScriptedBackend.start({
        request(request, connection) {
          if (connection !== backend.connections[0])
            return connection.respond(request.requestId, `${OK}${request.params.N}`);
          if (first) {
            first = false;
            return connection.respond(request.requestId, `${OK}first`);
          }
          connection.socket.end();
        },
      });
      const client = testClient({ address: backend.path, multiplex: true, poolSize: 1, idleTimeout: 60_000 });
      expect(await (await client.request({ params: { REQUEST_METHOD: 'GET' } })).text()).toBe('first');
      const replies = await Promise.all(
        [1, 2, 3].map(async (n) => (await client.request({ params: { REQUEST_METHOD: 'GET', N: String(n) } })).text()),
      );
      expect(replies).toEqual(['1', '2', '3']);
      expect(client.stats.replayed).toBe(3);
      expect(backend.connections).toHaveLength(2);
    });
  });
});

describe('client connect failures and timeouts', () => {
  it('fails with ConnectError (FCGI_ERR_CONNECT) when nothing listens, after the retry window', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcgi-none-'));
    onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
    const client = testClient({ address: path.join(dir, 'missing.sock'), connectRetryWindow: 200 });
    const started = Date.now();
    const error = await rejectionOf(client.request({}));
    expect(error).toBeInstanceOf(ConnectError);
    expect(error.code).toBe('FCGI_ERR_CONNECT');
    expect((error.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect(error.message).toContain('missing.sock');
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    // Still unreachable past the window: the next request fails after one attempt.
    const again = Date.now();
    expect((await rejectionOf(client.request({}))).code).toBe('FCGI_ERR_CONNECT');
    expect(Date.now() - again).toBeLessThan(150);
  });

  it('fails at once with connectRetryWindow 0 (ECONNREFUSED on a dead unix socket)', async () => {
    const backend = await ScriptedBackend.start({});
    await new Promise<void>((resolve) => backend.server.close(() => resolve()));
    fs.closeSync(fs.openSync(backend.path, 'w')); // a plain file where the socket was: ECONNREFUSED
    const client = testClient({ address: `unix:${backend.path}`, connectRetryWindow: 0 });
    const error = await rejectionOf(client.request({}));
    expect(error.code).toBe('FCGI_ERR_CONNECT');
    expect((error.cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
  });

  it('gives up connecting after connectTimeout (FCGI_ERR_CONNECT_TIMEOUT)', async () => {
    const port = await unacceptingPort();
    const client = testClient({ address: `127.0.0.1:${port}`, connectTimeout: 200, connectRetryWindow: 0 });
    const started = Date.now();
    const error = await rejectionOf(client.request({}));
    expect(error).toBeInstanceOf(ClientTimeoutError);
    expect(error.code).toBe('FCGI_ERR_CONNECT_TIMEOUT');
    expect((error as ClientTimeoutError).timer).toBe('connect');
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('fails a request whose headers do not arrive within requestTimeout, and closes its connection', async () => {
    const backend = await ScriptedBackend.start({ request() {} });
    const client = testClient({ address: backend.path, multiplex: false, requestTimeout: 150 });
    const error = await rejectionOf(client.request({}));
    expect(error).toBeInstanceOf(ClientTimeoutError);
    expect(error.code).toBe('FCGI_ERR_REQUEST_TIMEOUT');
    expect(error.message).toMatch(/waiting for the response header block/);
    await once(backend.connections[0]!.socket, 'close');
  });

  it('counts queueing time in requestTimeout', async () => {
    const backend = await ScriptedBackend.start({ request() {} });
    const client = testClient({ address: backend.path, multiplex: false, poolSize: 1, requestTimeout: 1000 });
    void client.request({}).catch(() => {});
    const error = await rejectionOf(client.request({ requestTimeout: 100 }));
    expect(error.code).toBe('FCGI_ERR_REQUEST_TIMEOUT');
    expect(error.message).toMatch(/while waiting for a connection/);
    expect(client.stats.queued).toBe(0);
  });

  it("starts a body's bodyTimeout when its header block arrives, whether or not it equals requestTimeout", async () => {
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        // The header block after 150 ms, then nothing: the body stalls.
        setTimeout(() => connection.stdout(request.requestId, `${OK}start`), 150);
      },
    });
    // Alike, different, and with no requestTimeout at all: the body's clock is its own in each case.
    for (const [requestTimeout, bodyTimeout] of [
      [300, 300],
      [300, 400],
      [0, 300],
    ] as const) {
      const client = testClient({ address: backend.path, multiplex: false, requestTimeout, bodyTimeout });
      const started = performance.now();
      const response = await client.request({});
      const error = await rejectionOf(response.text());
      const elapsed = performance.now() - started;
      expect(error.code).toBe('FCGI_ERR_BODY_TIMEOUT');
      // The body's clock started at the header block (150 ms in), not with the request.
      expect(elapsed).toBeGreaterThanOrEqual(150 + bodyTimeout - 15);
      await client.close();
    }
    // No bodyTimeout: a stalled body is not failed by the request's timer either.
    const patient = testClient({ address: backend.path, multiplex: false, requestTimeout: 300, bodyTimeout: 0 });
    const response = await patient.request({});
    const outcome = await Promise.race([
      response.text().then(
        () => 'ended',
        () => 'failed',
      ),
      delay(700).then(() => 'waiting'),
    ]);
    expect(outcome).toBe('waiting');
    patient.destroy();
  });

  it('fails a body that stalls for bodyTimeout, but not a body its reader holds back', async () => {
    let mode = 0;
    const backend = await ScriptedBackend.start({
      request(request, connection) {
        if (mode++ === 0) {
          connection.stdout(request.requestId, `${OK}start`);
          return; // stalls
        }
        connection.respond(request.requestId, Buffer.concat([Buffer.from(OK), Buffer.alloc(1024 * 1024, 1)]));
      },
    });
    const client = testClient({ address: backend.path, multiplex: false, bodyTimeout: 150, highWaterMark: 1024 });
    const stalled = await client.request({});
    const error = await rejectionOf(stalled.text());
    expect(error.code).toBe('FCGI_ERR_BODY_TIMEOUT');
    expect((error as ClientTimeoutError).timer).toBe('body');
    const slow = await client.request({});
    await delay(400); // nobody reads: the client holds the backend back, which is not a stall
    expect((await slow.buffer()).length).toBe(1024 * 1024);
  });
});
