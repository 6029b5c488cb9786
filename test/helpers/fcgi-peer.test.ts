// Proves the FastCGI test peer against hand-written fake app servers that speak raw bytes over node:net.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setImmediate as nextTurn, setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { encodeEndRequest, encodeGetValuesResult, encodeStream, encodeUnknownType } from '../../src/wire/records';
import { ProtocolStatus, RecordType, Role } from '../../src/wire/constants';
import { TestPeer, buildRequest, parseCgiResponse, randomCuts } from './fcgi-peer';
import { beginRequest, pair, record } from './records';

// The fake's own parser: plain header arithmetic, independent of the scanner the peer uses.
interface RawRecord {
  version: number;
  type: number;
  requestId: number;
  content: Buffer;
  paddingLength: number;
}

function parseRaw(bytes: Buffer): { records: RawRecord[]; rest: Buffer } {
  const records: RawRecord[] = [];
  let at = 0;
  while (bytes.length - at >= 8) {
    const contentLength = bytes.readUInt16BE(at + 4);
    const paddingLength = bytes[at + 6]!;
    if (bytes.length - at - 8 < contentLength + paddingLength) break;
    records.push({
      version: bytes[at]!,
      type: bytes[at + 1]!,
      requestId: bytes.readUInt16BE(at + 2),
      content: bytes.subarray(at + 8, at + 8 + contentLength),
      paddingLength,
    });
    at += 8 + contentLength + paddingLength;
  }
  return { records, rest: bytes.subarray(at) };
}

/** Names of a pairs block with 1-byte lengths only (all the fake needs). */
function rawPairNames(block: Buffer): string[] {
  const names: string[] = [];
  let at = 0;
  while (at < block.length) {
    const n = block[at]!;
    const v = block[at + 1]!;
    names.push(block.toString('latin1', at + 2, at + 2 + n));
    at += 2 + n + v;
  }
  return names;
}

interface FakeConn {
  socket: net.Socket;
  chunks: Buffer[];
  bytes(): Buffer;
  /** Resolves when the peer's FIN arrives. */
  peerEnded: Promise<void>;
}

type Where = { kind: 'tcp' } | { kind: 'unix' };

interface Fake {
  address: string | { port: number; host: string };
  conns: FakeConn[];
}

let socketCounter = 0;

/** Starts a fake app server; `onData` runs after every chunk with everything received so far. Cleaned up per test. */
async function fake(
  onData: (conn: FakeConn) => void,
  where: Where = { kind: 'tcp' },
  onConnect?: (conn: FakeConn) => void,
): Promise<Fake> {
  const conns: FakeConn[] = [];
  // Half-open so a fake can still answer after the peer's end().
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    let ended!: () => void;
    const conn: FakeConn = {
      socket,
      chunks: [],
      bytes: () => Buffer.concat(conn.chunks),
      peerEnded: new Promise<void>((resolve) => (ended = resolve)),
    };
    socket.on('end', () => ended());
    conns.push(conn);
    socket.on('data', (chunk: Buffer) => {
      conn.chunks.push(chunk);
      onData(conn);
    });
    onConnect?.(conn);
  });
  const unixPath = path.join(os.tmpdir(), `fcgi-peer-${process.pid}-${++socketCounter}.sock`);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (where.kind === 'unix') server.listen(unixPath, resolve);
    else server.listen(0, '127.0.0.1', resolve);
  });
  onTestFinished(async () => {
    for (const conn of conns) conn.socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (where.kind === 'unix') fs.rmSync(unixPath, { force: true });
  });
  const address =
    where.kind === 'unix' ? unixPath : { port: (server.address() as net.AddressInfo).port, host: '127.0.0.1' };
  return { address, conns };
}

async function connect(f: Fake): Promise<TestPeer> {
  const peer = await TestPeer.connect(f.address);
  onTestFinished(() => peer.destroy());
  return peer;
}

const CGI_HEAD = 'Status: 201 Created\r\nContent-Type: text/plain\r\n\r\n';

/**
 * A responder fake: for every request whose STDIN stream has ended, answers with stdout = CGI head + stdin,
 * stderr = the raw PARAMS content, and END_REQUEST with appStatus 0xfffffffe (to prove it is read unsigned).
 */
function responder(conn: FakeConn): void {
  const state = conn as FakeConn & { answered?: number };
  const { records } = parseRaw(conn.bytes());
  const ends = records.filter((r) => r.type === RecordType.STDIN && r.content.length === 0);
  while ((state.answered ?? 0) < ends.length) {
    const end = ends[state.answered ?? 0]!;
    state.answered = (state.answered ?? 0) + 1;
    const id = end.requestId;
    const upTo = records.indexOf(end);
    // A reused id: only the records since this request's own BEGIN_REQUEST.
    let from = upTo;
    while (from > 0 && !(records[from]!.type === RecordType.BEGIN_REQUEST && records[from]!.requestId === id)) from--;
    const mine = records.slice(from, upTo + 1).filter((r) => r.requestId === id);
    const stdin = Buffer.concat(mine.filter((r) => r.type === RecordType.STDIN).map((r) => r.content));
    const params = Buffer.concat(mine.filter((r) => r.type === RecordType.PARAMS).map((r) => r.content));
    conn.socket.write(
      Buffer.concat([
        encodeStream(RecordType.STDOUT, id, Buffer.concat([Buffer.from(CGI_HEAD), stdin]), { end: true }),
        encodeStream(RecordType.STDERR, id, params, { end: true }),
        encodeEndRequest(id, 0xfffffffe, ProtocolStatus.REQUEST_COMPLETE),
      ]),
    );
  }
}

describe('buildRequest', () => {
  it('defaults to a RESPONDER request 1 with empty PARAMS and STDIN streams', () => {
    expect(buildRequest().equals(Buffer.concat([beginRequest(1, 1, 0), record(4, 1), record(5, 1)]))).toBe(true);
  });

  it('builds padded PARAMS and STDIN records and the KEEP_CONN flag', () => {
    const bytes = buildRequest({ requestId: 3, keepConn: true, params: { A: '1', BB: '22' }, stdin: 'hi' });
    const pairs = Buffer.concat([pair('A', '1'), pair('BB', '22')]); // 10 bytes: 6 padding
    const expected = Buffer.concat([
      beginRequest(3, 1, 1),
      record(4, 3, pairs, 6),
      record(4, 3),
      record(5, 3, 'hi', 6),
      record(5, 3),
    ]);
    expect(bytes.toString('hex')).toBe(expected.toString('hex'));
  });

  it('leaves records unpadded with pad: false and keeps Buffer param values as bytes', () => {
    const bytes = buildRequest({ pad: false, params: [['V', Buffer.from([0xff, 0x00])]], stdin: 'abc' });
    const expected = Buffer.concat([
      beginRequest(1),
      record(4, 1, pair('V', Buffer.from([0xff, 0x00]))),
      record(4, 1),
      record(5, 1, 'abc'),
      record(5, 1),
    ]);
    expect(bytes.toString('hex')).toBe(expected.toString('hex'));
  });

  it('makes each stdin Buffer its own records, split at 65535, then the terminator unless noStdinEnd', () => {
    const big = Buffer.alloc(70000, 0x61);
    const stdin = (bytes: Buffer) =>
      parseRaw(bytes)
        .records.filter((r) => r.type === RecordType.STDIN)
        .map((r) => r.content.length);
    expect(stdin(buildRequest({ stdin: [Buffer.from('abc'), Buffer.alloc(0), big] }))).toEqual([3, 65535, 4465, 0]);
    expect(stdin(buildRequest({ stdin: [Buffer.from('abc'), big], noStdinEnd: true }))).toEqual([3, 65535, 4465]);
    expect(stdin(buildRequest({ noStdinEnd: true }))).toEqual([]);
  });

  it('adds a DATA stream after STDIN for data and for the FILTER role only', () => {
    const types = (bytes: Buffer) => parseRaw(bytes).records.map((r) => `${r.type}:${r.content.toString()}`);
    expect(types(buildRequest({ role: Role.FILTER, data: 'xyz', stdin: 'in' }))).toEqual([
      '1:\u0000\u0003\u0000\u0000\u0000\u0000\u0000\u0000',
      '4:',
      '5:in',
      '5:',
      '8:xyz',
      '8:',
    ]);
    expect(types(buildRequest({ role: Role.FILTER })).slice(-2)).toEqual(['5:', '8:']);
    expect(types(buildRequest({})).some((t) => t.startsWith('8:'))).toBe(false);
  });
});

describe('randomCuts', () => {
  it('is reproducible per seed, differs across seeds, and stays inside the bytes', () => {
    const a = randomCuts(1000, 7);
    expect(randomCuts(1000, 7)).toEqual(a);
    expect(randomCuts(1000, 8)).not.toEqual(a);
    expect(a.length).toBeGreaterThan(0);
    expect(a.every((c, i) => c >= 1 && c < 1000 && (i === 0 || c > a[i - 1]!))).toBe(true);
    expect(randomCuts(1, 7)).toEqual([]);
  });
});

describe.each([{ kind: 'tcp' } as const, { kind: 'unix' } as const])('over $kind', (where) => {
  it('sends a request and collects stdout, stderr, statuses and records', async () => {
    const f = await fake(responder, where);
    const peer = await connect(f);
    const response = await peer.request({ requestId: 9, params: { SCRIPT_NAME: '/x' }, stdin: 'body!' });
    expect(response.requestId).toBe(9);
    expect(response.stdout.toString()).toBe(`${CGI_HEAD}body!`);
    expect(response.stderr.equals(pair('SCRIPT_NAME', '/x'))).toBe(true);
    expect(response.appStatus).toBe(0xfffffffe);
    expect(response.protocolStatus).toBe(ProtocolStatus.REQUEST_COMPLETE);
    expect(response.stdoutEnded).toBe(true);
    expect(response.stderrEnded).toBe(true);
    expect(response.records.map((r) => [r.type, r.contentLength])).toEqual([
      [RecordType.STDOUT, CGI_HEAD.length + 5],
      [RecordType.STDOUT, 0],
      [RecordType.STDERR, pair('SCRIPT_NAME', '/x').length],
      [RecordType.STDERR, 0],
      [RecordType.END_REQUEST, 8],
    ]);
    // encodeStream pads to 8: the peer keeps padding lengths and bytes as sent.
    expect(response.records[0]!.paddingLength).toBe((8 - ((CGI_HEAD.length + 5) % 8)) % 8);
    expect(response.records[0]!.padding.length).toBe(response.records[0]!.paddingLength);
    expect(peer.records).toEqual(response.records);
    expect(parseCgiResponse(response.stdout)).toMatchObject({ status: 201, reason: 'Created' });
  });
});

describe('send', () => {
  const request = buildRequest({ params: { QUERY_STRING: 'a=1&b=2', REQUEST_METHOD: 'POST' }, stdin: 'x'.repeat(300) });

  async function deliver(
    send: (peer: TestPeer) => Promise<void>,
  ): Promise<{ bytes: Buffer; reads: number; chunks: Buffer[]; peer: TestPeer }> {
    const f = await fake(() => undefined);
    const peer = await connect(f);
    // Bytes sent before the fake accepts, or before its first poll after accepting, arrive as one read.
    await vi.waitFor(() => expect(f.conns).toHaveLength(1));
    await delay(20);
    await send(peer);
    await vi.waitFor(() => expect(f.conns[0]!.bytes().length).toBe(request.length));
    return { bytes: f.conns[0]!.bytes(), reads: f.conns[0]!.chunks.length, chunks: f.conns[0]!.chunks, peer };
  }

  it("'bytes' delivers the identical bytes as separate reads", async () => {
    const { bytes, reads, peer } = await deliver((p) => p.send(request, { split: 'bytes' }));
    expect(bytes.equals(request)).toBe(true);
    // Nagle off and a loop turn between writes: an in-process server that is reading sees every byte alone.
    expect(reads).toBe(request.length);
    expect(peer.lastCuts).toHaveLength(request.length - 1);
    expect(peer.bytesSent).toBe(request.length);
  });

  it("'random' delivers the identical bytes, cut where randomCuts says for the seed", async () => {
    const { bytes, reads, peer } = await deliver((p) => p.send(request, { split: 'random', seed: 42 }));
    expect(bytes.equals(request)).toBe(true);
    expect(peer.lastCuts).toEqual(randomCuts(request.length, 42));
    expect(reads).toBeGreaterThan(1);
  });

  it('number[] cuts at the given points; an array without split is written element by element', async () => {
    const cut = await deliver((p) => p.send(request, { split: [100, 3, 100, 50] }));
    expect(cut.bytes.equals(request)).toBe(true);
    expect(cut.peer.lastCuts).toEqual([3, 50, 100]);
    expect(cut.chunks.map((c) => c.length)).toEqual([3, 47, 50, request.length - 100]);
    const pieces = await deliver((p) => p.send([request.subarray(0, 10), request.subarray(10)]));
    expect(pieces.bytes.equals(request)).toBe(true);
    expect(pieces.chunks.map((c) => c.length)).toEqual([10, request.length - 10]);
    const whole = await deliver((p) => p.send([request.subarray(0, 10), request.subarray(10)], { split: 'none' }));
    expect(whole.bytes.equals(request)).toBe(true);
    expect(whole.peer.lastCuts).toEqual([]);
  });

  it('request() with a split still gets its response', async () => {
    const f = await fake(responder);
    const peer = await connect(f);
    const response = await peer.request({ stdin: 'split me', split: 'random', seed: 3 });
    expect(response.stdout.toString()).toBe(`${CGI_HEAD}split me`);
    expect(f.conns[0]!.bytes().equals(buildRequest({ stdin: 'split me' }))).toBe(true);
  });

  it('abort sends ABORT_REQUEST for the id', async () => {
    const f = await fake(() => undefined);
    const peer = await connect(f);
    await peer.abort(5);
    await vi.waitFor(() => expect(f.conns[0]!.bytes().toString('hex')).toBe(record(2, 5).toString('hex')));
  });

  it('refuses to send after end() instead of erroring the socket', async () => {
    const f = await fake(() => undefined);
    const peer = await connect(f);
    peer.end();
    await expect(peer.send(buildRequest())).rejects.toThrow(/half-closed/);
    await vi.waitFor(() => expect(f.conns).toHaveLength(1));
    await f.conns[0]!.peerEnded;
    expect(f.conns[0]!.bytes().length).toBe(0);
  });
});

describe('receiving', () => {
  it('reassembles a response the server writes one byte at a time', async () => {
    const reply = Buffer.concat([
      encodeStream(RecordType.STDOUT, 1, Buffer.from('Content-Type: a/b\n\nok'), { end: true }),
      encodeEndRequest(1, 3),
    ]);
    const f = await fake((conn) => {
      if (conn.chunks.length !== 1) return;
      void (async () => {
        for (const byte of reply) {
          conn.socket.write(Buffer.from([byte]));
          await nextTurn();
        }
      })();
    });
    const peer = await connect(f);
    const response = await peer.request({});
    expect(response.stdout.toString()).toBe('Content-Type: a/b\n\nok');
    expect(response.appStatus).toBe(3);
    expect(peer.receivedChunks.length).toBeGreaterThan(1);
    expect(Buffer.concat(peer.receivedChunks).equals(reply)).toBe(true);
  });

  it('parses more records in one chunk than one scan holds', async () => {
    const many = Buffer.concat([
      ...Array.from({ length: 200 }, (_, i) => record(6, 1, String.fromCharCode(65 + (i % 26)))),
      encodeEndRequest(1),
    ]);
    const f = await fake((conn) => conn.socket.write(many));
    const peer = await connect(f);
    const response = await peer.send(buildRequest()).then(() => peer.waitForEnd(1));
    expect(response.records).toHaveLength(201);
    expect(response.stdout.toString()).toBe(
      Array.from({ length: 200 }, (_, i) => String.fromCharCode(65 + (i % 26))).join(''),
    );
    expect(response.stdoutEnded).toBe(false);
  });

  it('resolves a wait for an END_REQUEST that arrived before the call', async () => {
    const f = await fake(responder);
    const peer = await connect(f);
    await peer.send(buildRequest({ requestId: 4, stdin: 'early' }));
    await vi.waitFor(() => expect(peer.records.some((r) => r.type === RecordType.END_REQUEST)).toBe(true));
    const response = await peer.waitForEnd(4);
    expect(response.stdout.toString()).toBe(`${CGI_HEAD}early`);
  });

  it('hands a reused request id its END_REQUESTs in order, to waits made before or after', async () => {
    const f = await fake(responder);
    const peer = await connect(f);
    const first = peer.waitForEnd(1);
    const second = peer.waitForEnd(1);
    await peer.send([buildRequest({ keepConn: true, stdin: 'one' }), buildRequest({ keepConn: true, stdin: 'two' })]);
    expect((await first).stdout.toString()).toBe(`${CGI_HEAD}one`);
    expect((await second).stdout.toString()).toBe(`${CGI_HEAD}two`);
    // Empty PARAMS: the fake's STDERR stream is just its terminator.
    expect((await first).records.map((r) => r.type)).toEqual([6, 6, 7, 3]);
    await peer.send([
      buildRequest({ keepConn: true, stdin: 'three' }),
      buildRequest({ keepConn: true, stdin: 'four' }),
    ]);
    await vi.waitFor(() => expect(peer.records.filter((r) => r.type === RecordType.END_REQUEST)).toHaveLength(4));
    expect((await peer.waitForEnd(1)).stdout.toString()).toBe(`${CGI_HEAD}three`);
    expect((await peer.waitForEnd(1)).stdout.toString()).toBe(`${CGI_HEAD}four`);
  });

  it('times out with what arrived so far, and a later END_REQUEST still reaches the next wait', async () => {
    const f = await fake((conn) => {
      if (conn.chunks.length === 1) conn.socket.write(record(6, 1, 'so far'));
    });
    const peer = await connect(f);
    await peer.send(buildRequest());
    await expect(peer.waitForEnd(1, 100)).rejects.toThrow(/timed out after 100 ms.*STDOUT\(6\).*"so far"/);
    f.conns[0]!.socket.write(Buffer.concat([record(6, 1, '!'), encodeEndRequest(1)]));
    const response = await peer.waitForEnd(1);
    expect(response.stdout.toString()).toBe('so far!');
  });

  it('rejects a pending wait when the connection closes first, with what arrived', async () => {
    const f = await fake((conn) => conn.socket.end(record(6, 1, 'partial-output')));
    const peer = await connect(f);
    const wait = peer.waitForEnd(1);
    await peer.send(buildRequest());
    await expect(wait).rejects.toThrow(/connection closed \(fin\).*partial-output/);
    await expect(peer.waitForEnd(2)).rejects.toThrow(/connection closed \(fin\)/);
  });

  it('answers GET_VALUES with the pairs of the next GET_VALUES_RESULT', async () => {
    let asked: string[] = [];
    const f = await fake((conn) => {
      const { records } = parseRaw(conn.bytes());
      if (records.length !== 1 || records[0]!.type !== RecordType.GET_VALUES) return;
      asked = rawPairNames(records[0]!.content);
      conn.socket.write(
        encodeGetValuesResult([
          ['FCGI_MAX_CONNS', 10],
          ['FCGI_MPXS_CONNS', 0],
        ]),
      );
    });
    const peer = await connect(f);
    const values = await peer.getValues(['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS']);
    expect(asked).toEqual(['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS']);
    expect([...values]).toEqual([
      ['FCGI_MAX_CONNS', '10'],
      ['FCGI_MPXS_CONNS', '0'],
    ]);
  });

  it('rejects getValues on a malformed GET_VALUES_RESULT', async () => {
    const f = await fake((conn) => conn.socket.write(record(10, 0, Buffer.from([5, 1, 0x41]), 5)));
    const peer = await connect(f);
    await expect(peer.getValues(['FCGI_MAX_CONNS'])).rejects.toThrow(/malformed GET_VALUES_RESULT/);
  });

  it('collects UNKNOWN_TYPE replies', async () => {
    const f = await fake((conn) => {
      if (conn.bytes().length >= 8) conn.socket.write(encodeUnknownType(conn.bytes()[1]!));
    });
    const peer = await connect(f);
    await peer.send(record(99, 0));
    await vi.waitFor(() => expect(peer.unknownTypeReplies).toEqual([99]));
  });

  it('surfaces a bad version on closed and pending waits, keeping the records before it', async () => {
    const f = await fake((conn) => conn.socket.write(Buffer.concat([record(6, 1, 'good'), record(6, 1, 'bad', 0, 2)])));
    const peer = await connect(f);
    const wait = peer.waitForEnd(1);
    await peer.send(buildRequest());
    await expect(wait).rejects.toThrow(/version 2 at stream offset 12.*"good"/);
    const closed = await peer.closed;
    expect(closed.how).toBe('destroyed');
    expect(closed.error?.message).toMatch(/version 2/);
    expect(peer.records.map((r) => r.content.toString())).toEqual(['good']);
  });

  it('surfaces a short END_REQUEST body as an error', async () => {
    const f = await fake((conn) => conn.socket.write(record(3, 1, 'abc', 5)));
    const peer = await connect(f);
    const wait = peer.waitForEnd(1);
    await peer.send(buildRequest());
    await expect(wait).rejects.toThrow(/END_REQUEST for request 1 has a 3-byte body/);
    expect((await peer.closed).error?.message).toMatch(/3-byte body/);
  });
});

describe('connection end', () => {
  it("reports 'fin' when the server ends cleanly", async () => {
    const f = await fake(
      () => undefined,
      { kind: 'tcp' },
      (conn) => conn.socket.end(),
    );
    const peer = await connect(f);
    const closed = await peer.closed;
    expect(closed).toEqual({ how: 'fin', unparsed: Buffer.alloc(0) });
    expect(peer.endReceived).toBe(true);
  });

  it("reports 'reset' when the server resets", async () => {
    // Reset only once the peer has sent something: a reset during the handshake fails connect() instead.
    const f = await fake((conn) => conn.socket.resetAndDestroy());
    const peer = await connect(f);
    await peer.send(record(99, 0));
    const closed = await peer.closed;
    expect(closed.how).toBe('reset');
    expect((closed.error as NodeJS.ErrnoException | undefined)?.code).toBe('ECONNRESET');
  });

  it("reports 'destroyed' after destroy()", async () => {
    const f = await fake(() => undefined);
    const peer = await connect(f);
    peer.destroy();
    expect((await peer.closed).how).toBe('destroyed');
  });

  it('keeps the bytes of a record cut short by the close', async () => {
    const f = await fake(
      () => undefined,
      { kind: 'tcp' },
      (conn) => conn.socket.end(record(6, 1, 'truncated').subarray(0, 12)),
    );
    const peer = await connect(f);
    const closed = await peer.closed;
    expect(closed.how).toBe('fin');
    expect(closed.unparsed.length).toBe(12);
    await expect(peer.waitForEnd(1)).rejects.toThrow(/12 bytes of an incomplete record unparsed/);
  });

  it('end() half-closes: the server sees FIN and can still answer', async () => {
    const f = await fake(() => undefined);
    const peer = await connect(f);
    await peer.send(buildRequest({ stdin: 'bye' }));
    peer.end();
    await vi.waitFor(() => expect(f.conns).toHaveLength(1));
    await f.conns[0]!.peerEnded;
    responder(f.conns[0]!);
    f.conns[0]!.socket.end();
    expect((await peer.waitForEnd(1)).stdout.toString()).toBe(`${CGI_HEAD}bye`);
    expect((await peer.closed).how).toBe('fin');
  });

  it('rejects connect to a closed port', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await expect(TestPeer.connect({ port })).rejects.toThrow(/could not connect.*ECONNREFUSED/);
  });
});

describe('parseCgiResponse', () => {
  it('reads Status, headers and body with CRLF lines', () => {
    const r = parseCgiResponse(
      Buffer.from('Status: 404 Not Found\r\nContent-Type: text/html\r\nX-A:  padded  \r\n\r\n<p>\r\n\r\nmore'),
    );
    expect(r.status).toBe(404);
    expect(r.reason).toBe('Not Found');
    expect(r.headers).toEqual([
      ['Status', '404 Not Found'],
      ['Content-Type', 'text/html'],
      ['X-A', 'padded'],
    ]);
    expect(r.body.toString()).toBe('<p>\r\n\r\nmore');
  });

  it('reads LF-only lines and mixed endings', () => {
    const r = parseCgiResponse(Buffer.from('Content-Type: a/b\nX-B: 1\r\n\nbody'));
    expect(r.headers).toEqual([
      ['Content-Type', 'a/b'],
      ['X-B', '1'],
    ]);
    expect(r.body.toString()).toBe('body');
  });

  it('defaults to 200 OK; Location without Status is 302; Status wins over Location', () => {
    expect(parseCgiResponse(Buffer.from('X: y\r\n\r\n'))).toMatchObject({ status: 200, reason: 'OK' });
    expect(parseCgiResponse(Buffer.from('Location: /next\r\n\r\n'))).toMatchObject({ status: 302, reason: 'Found' });
    expect(parseCgiResponse(Buffer.from('Location: /n\r\nStatus: 301 Moved\r\n\r\n'))).toMatchObject({
      status: 301,
      reason: 'Moved',
    });
    expect(parseCgiResponse(Buffer.from('Status: 204\r\n\r\n'))).toMatchObject({ status: 204, reason: '' });
  });

  it('looks headers up case-insensitively, first one wins', () => {
    const r = parseCgiResponse(Buffer.from('Set-Cookie: a=1\r\nset-cookie: b=2\r\n\r\n'));
    expect(r.header('SET-COOKIE')).toBe('a=1');
    expect(r.header('missing')).toBeUndefined();
    expect(r.headers.filter(([n]) => n.toLowerCase() === 'set-cookie')).toHaveLength(2);
  });

  it('accepts an empty header block and an empty body', () => {
    const r = parseCgiResponse(Buffer.from('\r\nraw'));
    expect(r.headers).toEqual([]);
    expect(r.body.toString()).toBe('raw');
    expect(parseCgiResponse(Buffer.from('A: b\n\n')).body.length).toBe(0);
  });

  it('throws on missing blank line, a line without a colon, or a malformed Status', () => {
    expect(() => parseCgiResponse(Buffer.from('Content-Type: a/b\r\n'))).toThrow(/no blank line/);
    expect(() => parseCgiResponse(Buffer.alloc(0))).toThrow(/no blank line/);
    expect(() => parseCgiResponse(Buffer.from('Content-Type a/b\r\n\r\n'))).toThrow(/no colon.*Content-Type a\/b/);
    expect(() => parseCgiResponse(Buffer.from('Status: nope\r\n\r\n'))).toThrow(/Status header/);
  });
});
