// The load generator's wire side against a scripted backend: what it sends (ids, KEEP_CONN, CONTENT_LENGTH),
// how it reads replies (CGI status, body bytes across records, refusals, malformed input, timeouts), and how it
// recovers (reconnects, connect failures).
import * as path from 'node:path';
import * as os from 'node:os';
import { describe, expect, it, onTestFinished } from 'vitest';
import { LoadDriver, type LoadDriverOptions } from '../../src/load/driver';
import { ProtocolStatus } from '../../src/wire/constants';
import { encodeStream } from '../../src/wire/records';
import { RecordType } from '../../src/wire/constants';
import { ScriptedBackend, type Hooks } from '../client/scripted-backend';

interface Outcome {
  ok: boolean;
  status?: number;
  bytes?: number;
  code?: string;
  protocolStatus?: number | null;
}

/** A driver whose outcomes land in an array; `wait(n)` resolves once n have arrived. */
function driverFor(options: Partial<LoadDriverOptions> & { address: LoadDriverOptions['address'] }) {
  const outcomes: Outcome[] = [];
  let waiter: { n: number; resolve: () => void } | null = null;
  const check = (): void => {
    if (waiter !== null && outcomes.length >= waiter.n) {
      waiter.resolve();
      waiter = null;
    }
  };
  const driver = new LoadDriver(
    {
      connections: 1,
      perConnection: 1,
      keepConn: true,
      params: [['REQUEST_METHOD', 'GET']],
      body: null,
      timeoutMs: 5000,
      ...options,
    },
    {
      completed: (_at, status, bytes) => {
        outcomes.push({ ok: true, status, bytes });
        check();
      },
      failed: (_at, code, protocolStatus) => {
        outcomes.push({ ok: false, code, protocolStatus });
        check();
      },
    },
  );
  onTestFinished(() => driver.close());
  const wait = (n: number): Promise<void> =>
    new Promise((resolve) => {
      waiter = { n, resolve };
      check();
    });
  const now = (): number => performance.now() * 1000;
  return { driver, outcomes, wait, now };
}

async function backend(hooks: Hooks): Promise<ScriptedBackend> {
  return ScriptedBackend.start(hooks);
}

describe('load driver', () => {
  it('reads the CGI status (Status, bare Location, default 200) and counts body bytes across records and chunks', async () => {
    const b = await backend({
      request(request, c) {
        const kind = Number(request.params.KIND ?? 0);
        const id = request.requestId;
        if (kind === 0) c.respond(id, 'Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nmissing');
        else if (kind === 1) c.respond(id, 'Location: /elsewhere\r\n\r\n');
        else {
          // The header block split across two STDOUT records, then 100000 body bytes in records of 65535 and the
          // rest, written a few bytes at a time.
          const bytes = Buffer.concat([
            encodeStream(RecordType.STDOUT, id, Buffer.from('Content-Ty')),
            encodeStream(RecordType.STDOUT, id, Buffer.from('pe: x\n\n')),
            encodeStream(RecordType.STDOUT, id, Buffer.alloc(100_000, 1), { end: true }),
          ]);
          let at = 0;
          const drip = (): void => {
            c.raw(bytes.subarray(at, at + 7777));
            at += 7777;
            if (at < bytes.length) setImmediate(drip);
            else c.end(id);
          };
          drip();
        }
      },
    });
    for (const [kind, expected] of [
      [0, { ok: true, status: 404, bytes: 7 }],
      [1, { ok: true, status: 302, bytes: 0 }],
      [2, { ok: true, status: 200, bytes: 100_000 }],
    ] as const) {
      const { driver, outcomes, wait, now } = driverFor({
        address: { path: b.path },
        params: [['KIND', String(kind)]],
      });
      driver.submit(now());
      await wait(1);
      expect(outcomes).toEqual([expected]);
    }
  });

  it('sends ids 1..K at once on one kept connection, with KEEP_CONN and CONTENT_LENGTH for a body', async () => {
    const seen: { id: number; keepConn: boolean; length: string | undefined; stdin: number }[] = [];
    const b = await backend({
      request(request, c) {
        seen.push({
          id: request.requestId,
          keepConn: request.keepConn,
          length: request.params.CONTENT_LENGTH,
          stdin: request.stdin.length,
        });
        // Answer only once all three are in: proves they were in flight together.
        if (seen.length % 3 === 0) for (const s of seen.slice(-3)) c.respond(s.id, 'Content-Type: a/b\r\n\r\nok');
      },
    });
    const { driver, outcomes, wait, now } = driverFor({
      address: { path: b.path },
      perConnection: 3,
      body: Buffer.alloc(70_000, 2),
    });
    for (let i = 0; i < 6; i++) driver.submit(now());
    await wait(6);
    expect(outcomes.every((o) => o.ok && o.status === 200 && o.bytes === 2)).toBe(true);
    expect(b.connections).toHaveLength(1);
    expect(seen.map((s) => s.id).sort()).toEqual([1, 1, 2, 2, 3, 3]);
    expect(seen.every((s) => s.keepConn && s.length === '70000' && s.stdin === 70_000)).toBe(true);
    expect(driver.queued).toBe(0);
  });

  it('opens a new connection per request without KEEP_CONN', async () => {
    const b = await backend({ request: (request, c) => c.respond(request.requestId, 'A: b\r\n\r\nx') });
    const { driver, outcomes, wait, now } = driverFor({ address: { path: b.path }, keepConn: false, perConnection: 4 });
    for (let i = 0; i < 3; i++) driver.submit(now());
    await wait(3);
    expect(outcomes.filter((o) => o.ok)).toHaveLength(3);
    expect(b.connections).toHaveLength(3);
  });

  it('counts refusals by protocolStatus, a reply with no header block, a malformed record, and carries on', async () => {
    let n = 0;
    const b = await backend({
      request(request, c) {
        const which = n++;
        if (which === 0) c.end(request.requestId, 0, ProtocolStatus.OVERLOADED);
        else if (which === 1) c.respond(request.requestId, 'no blank line', { noTerminator: true });
        else if (which === 2) c.raw(Buffer.from('HTTP/1.1 200 OK\r\n\r\n'));
        else c.respond(request.requestId, 'A: b\r\n\r\nfine');
      },
    });
    const { driver, outcomes, wait, now } = driverFor({ address: { path: b.path } });
    for (let i = 0; i < 4; i++) {
      driver.submit(now());
      await wait(i + 1);
    }
    expect(outcomes).toEqual([
      { ok: false, code: 'FCGI_ERR_OVERLOADED', protocolStatus: ProtocolStatus.OVERLOADED },
      { ok: false, code: 'FCGI_ERR_CGI_HEADER_INCOMPLETE', protocolStatus: null },
      { ok: false, code: 'FCGI_ERR_BAD_VERSION', protocolStatus: null },
      { ok: true, status: 200, bytes: 4 },
    ]);
    // The malformed reply cost its connection; the next request came on a new one.
    expect(b.connections).toHaveLength(2);
  });

  it("reads header blocks by the client's rules: an empty block is a 200, a malformed one fails the request and keeps the connection", async () => {
    let n = 0;
    const b = await backend({
      request(request, c) {
        const which = n++;
        if (which === 0) c.respond(request.requestId, '\r\nbody only');
        else if (which === 1) c.respond(request.requestId, 'no colon here\r\n\r\nx');
        else c.respond(request.requestId, 'Status: 2x0\r\n\r\nx');
      },
    });
    const { driver, outcomes, wait, now } = driverFor({ address: { path: b.path } });
    for (let i = 0; i < 3; i++) {
      driver.submit(now());
      await wait(i + 1);
    }
    expect(outcomes).toEqual([
      { ok: true, status: 200, bytes: 9 },
      { ok: false, code: 'FCGI_ERR_CGI_HEADER_MALFORMED', protocolStatus: null },
      { ok: false, code: 'FCGI_ERR_CGI_STATUS_INVALID', protocolStatus: null },
    ]);
    expect(b.connections).toHaveLength(1);
  });

  it('fails a request unanswered within timeoutMs with FCGI_ERR_REQUEST_TIMEOUT', async () => {
    const b = await backend({ request: () => undefined });
    const { driver, outcomes, wait, now } = driverFor({ address: { path: b.path }, timeoutMs: 100 });
    const started = Date.now();
    driver.submit(now());
    await wait(1);
    expect(outcomes).toEqual([{ ok: false, code: 'FCGI_ERR_REQUEST_TIMEOUT', protocolStatus: null }]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
  });

  it('times a sent request from its send, and fails a request still queued past the timeout without sending it', async () => {
    let received = 0;
    const b = await backend({
      request(request, c) {
        received++;
        setTimeout(() => c.respond(request.requestId, 'A: b\r\n\r\nok'), 150);
      },
    });
    // One id, five requests at once, a 200 ms timeout: the first answers at ~150 ms, the second is sent then and
    // answers at ~300 ms (300 ms after its start but 150 ms after its send: not a timeout); the other three have
    // waited 200 ms in the queue by then and fail unsent.
    const { driver, outcomes, wait, now } = driverFor({ address: { path: b.path }, timeoutMs: 200 });
    for (let i = 0; i < 5; i++) driver.submit(now());
    await wait(5);
    expect(outcomes.filter((o) => o.ok)).toHaveLength(2);
    expect(outcomes.filter((o) => o.code === 'FCGI_ERR_REQUEST_TIMEOUT')).toHaveLength(3);
    expect(received).toBe(2);
  });

  it('fails queued requests with FCGI_ERR_CONNECT when nothing listens, without retrying in a tight loop', async () => {
    const missing = path.join(os.tmpdir(), `fcgi-none-${process.pid}-${Date.now()}.sock`);
    const { driver, outcomes, wait, now } = driverFor({ address: { path: missing }, connections: 2, perConnection: 1 });
    for (let i = 0; i < 2; i++) driver.submit(now());
    await wait(2);
    expect(outcomes).toEqual([
      { ok: false, code: 'FCGI_ERR_CONNECT', protocolStatus: null },
      { ok: false, code: 'FCGI_ERR_CONNECT', protocolStatus: null },
    ]);
  });

  it("keeps the first answered reply's body when asked, and counts the connections it opened", async () => {
    let n = 0;
    const b = await backend({
      request(request, c) {
        // The first request is refused: the sample moves on to the next one that is answered.
        if (n++ === 0) c.end(request.requestId, 0, ProtocolStatus.OVERLOADED);
        else c.respond(request.requestId, `Content-Type: a/b\r\n\r\nreply ${n}`);
      },
    });
    const { driver, wait, now } = driverFor({ address: { path: b.path }, keepConn: false, sampleFirstReply: true });
    expect(driver.firstReply).toBeNull();
    for (let i = 0; i < 3; i++) {
      driver.submit(now());
      await wait(i + 1);
    }
    expect(driver.firstReply?.toString()).toBe('reply 2');
    expect(driver.connectionsOpened).toBe(3);
  });

  it('takes an address in any spelling the one grammar reads', async () => {
    const b = await backend({ request: (request, c) => c.respond(request.requestId, 'A: b\r\n\r\nok') });
    const { driver, outcomes, wait, now } = driverFor({ address: `unix:${b.path}` });
    driver.submit(now());
    await wait(1);
    expect(outcomes).toEqual([{ ok: true, status: 200, bytes: 2 }]);
    expect(driver.target).toEqual({ path: b.path, label: `unix:${b.path}` });
  });
});
