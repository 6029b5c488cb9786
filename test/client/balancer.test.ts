// A client over several upstreams, against scripted backends: policies through request(), per-upstream caps with
// one bounded wait queue, passive ejection and readmission, which lost requests go to another upstream (once),
// active health probes, adding and draining upstreams, hostnames followed through DNS, stats and options.
import { once } from 'node:events';
import { createServer, request as httpRequest } from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createClient, type Client } from '../../src/client/client';
import { createGateway, statusFor } from '../../src/gateway/gateway';
import { rejectionOf, testClient, waitFor } from './helpers';
import { ScriptedBackend, type ScriptedRequest } from './scripted-backend';

const OK = 'Content-Type: text/plain\r\n\r\n';

/** A backend that answers its name (and `pong` to /ping); with `hold`, answers only when released. */
interface Named {
  readonly backend: ScriptedBackend;
  readonly address: string;
  readonly received: ScriptedRequest[];
  readonly held: (() => void)[];
  hold: boolean;
  /** Answers every held request. */
  release(): void;
}

async function named(
  name: string,
  options: { hold?: boolean; tcp?: boolean; host?: string; port?: number } = {},
): Promise<Named> {
  const received: ScriptedRequest[] = [];
  const held: (() => void)[] = [];
  const self = {
    received,
    held,
    hold: options.hold ?? false,
    release() {
      for (const answer of held.splice(0)) answer();
    },
  };
  const backend = await ScriptedBackend.start(
    {
      request(request, connection) {
        if (request.params.SCRIPT_NAME === '/ping') return connection.respond(request.requestId, `${OK}pong`);
        received.push(request);
        const answer = () => connection.respond(request.requestId, `${OK}${name}`);
        if (self.hold) held.push(answer);
        else answer();
      },
    },
    options,
  );
  return Object.assign(self, { backend, address: backend.path });
}

/** A unix socket path nobody listens on: connecting fails with ENOENT. */
function deadAddress(): string {
  return path.join(os.tmpdir(), `fcgi-nobody-${process.pid}-${Math.random().toString(36).slice(2)}.sock`);
}

async function ask(client: Client, method = 'GET'): Promise<string> {
  return (await client.request({ params: { REQUEST_METHOD: method } })).text();
}

function upstream(client: Client, address: string) {
  const line = client.stats.upstreams?.find((u) => u.address === address || u.address === `unix:${address}`);
  if (line === undefined) throw new Error(`no upstream ${address} in stats`);
  return line;
}

describe('a client with upstreams: picking', () => {
  it('shares requests by weight with round-robin, in the smooth order', async () => {
    const a = await named('a');
    const b = await named('b');
    const client = testClient({
      upstreams: [{ address: a.address }, { address: b.address, weight: 3 }],
      balance: 'round-robin',
    });
    let order = '';
    for (let i = 0; i < 40; i++) order += await ask(client);
    expect(order).toBe('babb'.repeat(10));
    expect(upstream(client, a.address)).toMatchObject({ served: 10, weight: 1, inFlight: 0 });
    expect(upstream(client, b.address)).toMatchObject({ served: 30, weight: 3 });
  });

  it.each(['least-in-flight', 'p2c'] as const)(
    '%s keeps new requests off an upstream that holds one',
    async (balance) => {
      const slow = await named('slow', { hold: true });
      const fast = await named('fast');
      const client = testClient({ upstreams: [{ address: slow.address }, { address: fast.address }], balance });
      // The first goes to either; make sure one sits on `slow`.
      const pending: Promise<unknown>[] = [];
      while (slow.held.length === 0) {
        pending.push(client.request({ params: { REQUEST_METHOD: 'GET' } }));
        await delay(5);
      }
      for (let i = 0; i < 10; i++) expect(await ask(client)).toBe('fast');
      expect(slow.received).toHaveLength(1);
      slow.release();
      await Promise.all(pending);
    },
  );
});

describe('a client with upstreams: slots and the wait queue', () => {
  it('sends each upstream at most maxConcurrent, and a waiting request to the first slot freed on any', async () => {
    const a = await named('a', { hold: true });
    const b = await named('b', { hold: true });
    const client = testClient({
      upstreams: [
        { address: a.address, maxConcurrent: 1 },
        { address: b.address, maxConcurrent: 1 },
      ],
      queueLimit: 1,
    });
    const first = client.request({});
    const second = client.request({});
    const third = client.request({});
    await waitFor(() => a.held.length === 1 && b.held.length === 1, 5000, 'one request on each');
    expect(client.stats.queued).toBe(1);
    expect(upstream(client, a.address)).toMatchObject({ inFlight: 1, maxConcurrent: 1, connections: 1 });
    const full = await rejectionOf(client.request({}));
    expect(full.code).toBe('FCGI_ERR_QUEUE_FULL');
    b.release();
    await waitFor(() => b.held.length === 1, 5000, 'the waiting request on b');
    expect(client.stats.queued).toBe(0);
    a.release();
    b.release();
    const texts = await Promise.all([first, second, third].map(async (r) => (await r).text()));
    expect(texts.sort()).toEqual(['a', 'b', 'b']);
    expect(a.received).toHaveLength(1);
    expect(upstream(client, b.address).connections).toBe(1);
  });

  it('fails a request that waited queueTimeout with FCGI_ERR_QUEUE_TIMEOUT', async () => {
    const a = await named('a', { hold: true });
    const client = testClient({ upstreams: [{ address: a.address, maxConcurrent: 1 }], queueTimeout: 80 });
    const first = client.request({});
    await waitFor(() => a.held.length === 1);
    const started = Date.now();
    const late = await rejectionOf(client.request({}));
    expect(late.code).toBe('FCGI_ERR_QUEUE_TIMEOUT');
    expect((late as unknown as { timer: string }).timer).toBe('queue');
    expect(Date.now() - started).toBeGreaterThanOrEqual(70);
    expect(client.stats.queued).toBe(0);
    a.release();
    expect(await (await first).text()).toBe('a');
  });

  // Counts the process's active timers, which other work in the worker can move by one at any moment on a loaded
  // machine: retried rather than loosened.
  it('keeps no timer running once nothing waits (the process may exit)', { retry: 2 }, async () => {
    const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
    const a = await named('a', { hold: true });
    const client = testClient({ upstreams: [{ address: a.address, maxConcurrent: 1 }], queueTimeout: 60_000 });
    // Counted process-wide, so the backend's own timers can make an attempt fail under load (hence the retry);
    // the client destroyed after a failed attempt then rejects these two: handled here, awaited below.
    const first = client.request({});
    first.catch(() => {});
    await waitFor(() => a.held.length === 1);
    const idle = timers();
    const second = client.request({});
    second.catch(() => {});
    expect(timers()).toBe(idle + 1);
    a.release();
    await waitFor(() => a.held.length === 1);
    expect(client.stats.queued).toBe(0);
    expect(timers()).toBe(idle);
    a.release();
    await Promise.all([first, second]);
  });

  it('fails at once with FCGI_ERR_NO_UPSTREAM when it has none, and serves once one is added', async () => {
    const client = testClient({ upstreams: [] });
    const none = await rejectionOf(client.request({}));
    expect(none.code).toBe('FCGI_ERR_NO_UPSTREAM');
    const b = await named('b');
    client.addUpstream({ address: b.address });
    expect(await ask(client)).toBe('b');
  });
});

describe('a client with upstreams: passive health', () => {
  it('ejects an upstream that refuses, sends what never reached it elsewhere, and tries it again after ejectFor', async () => {
    const a = await named('a');
    const b = await named('b');
    const down = a.address;
    // a goes down: its socket file disappears (connect fails with ENOENT).
    await new Promise<void>((resolve) => a.backend.server.close(() => resolve()));
    const client = testClient({
      upstreams: [{ address: down }, { address: b.address }],
      balance: 'round-robin',
      ejectFor: 150,
    });
    // Never reached a: even a POST with a streamed body may go to b.
    const body = Readable.from([Buffer.from('pay'), Buffer.from('load')]);
    const post = await client.request({ params: { REQUEST_METHOD: 'POST' }, body, contentLength: 7 });
    expect(await post.text()).toBe('b');
    expect(b.received[0]!.stdin.toString()).toBe('payload');
    expect(upstream(client, down)).toMatchObject({ ejected: true, ejections: 1, failed: 1, served: 0 });
    for (let i = 0; i < 6; i++) expect(await ask(client)).toBe('b');
    // Still down when the cooldown ends: one request tries it, and it is ejected again.
    await waitFor(() => !upstream(client, down).ejected, 2000, 'readmission');
    for (let i = 0; i < 2; i++) expect(await ask(client)).toBe('b');
    expect(upstream(client, down)).toMatchObject({ ejected: true, ejections: 2, failed: 2 });
    // Back up: after the next cooldown it serves its share again.
    a.backend.server.listen(down);
    await once(a.backend.server, 'listening');
    await waitFor(() => !upstream(client, down).ejected, 2000, 'second readmission');
    let order = '';
    for (let i = 0; i < 4; i++) order += await ask(client);
    expect(order).toContain('a');
    expect(upstream(client, down)).toMatchObject({ ejected: false, ejections: 2 });
  });

  it.each([
    [2, [false, true]],
    [0, [false, false, false]],
  ] as const)(
    'with ejectAfter %i, ejects after that many failures in a row (0: never)',
    async (ejectAfter, ejectedAfterEach) => {
      const down = deadAddress();
      const b = await named('b');
      const client = testClient({
        upstreams: [{ address: down }, { address: b.address }],
        balance: 'round-robin',
        ejectAfter,
      });
      const seen: boolean[] = [];
      // Round robin over two: every other request goes to the dead one first, and on to b.
      for (let i = 0; i < ejectedAfterEach.length * 2; i++) {
        expect(await ask(client)).toBe('b');
        if (i % 2 === 0) seen.push(upstream(client, down).ejected);
      }
      expect(seen).toEqual(ejectedAfterEach);
    },
  );

  it('moves a request once: when the second upstream refuses too it fails with FCGI_ERR_CONNECT', async () => {
    const client = testClient({
      upstreams: [{ address: deadAddress() }, { address: deadAddress() }, { address: deadAddress() }],
    });
    const error = await rejectionOf(client.request({}));
    expect(error.code).toBe('FCGI_ERR_CONNECT');
    const attempts = client.stats.upstreams!.map((u) => u.failed).sort();
    expect(attempts).toEqual([0, 1, 1]);
  });

  describe('a request lost with its connection (the backend closes it unanswered)', () => {
    async function closing(): Promise<ScriptedBackend> {
      return ScriptedBackend.start({
        request(_request, connection) {
          connection.socket.destroy();
        },
      });
    }

    it('goes to another upstream when safe to repeat, even from a fresh connection, without ejecting the first', async () => {
      const bad = await closing();
      const good = await named('good');
      const client = testClient({
        upstreams: [{ address: bad.path }, { address: good.address }],
        balance: 'round-robin',
        multiplex: false,
      });
      const response = await client.request({ params: { REQUEST_METHOD: 'PUT' }, body: 'again' });
      expect(await response.text()).toBe('good');
      expect(good.received[0]!.stdin.toString()).toBe('again');
      expect(bad.connections).toHaveLength(1);
      expect(client.stats.replayed).toBe(1);
      expect(upstream(client, bad.path)).toMatchObject({ failed: 1, ejected: false });
    });

    it.each([
      ['a POST', { params: { REQUEST_METHOD: 'POST' }, body: 'x' }],
      [
        'a streamed body',
        { params: { REQUEST_METHOD: 'PUT' }, body: Readable.from([Buffer.from('x')]), contentLength: 1 },
      ],
    ] as const)('fails %s with FCGI_ERR_BACKEND_CLOSED and ejects the upstream', async (_what, options) => {
      const bad = await closing();
      const good = await named('good');
      const client = testClient({
        upstreams: [{ address: bad.path }, { address: good.address }],
        balance: 'round-robin',
      });
      const error = await rejectionOf(client.request({ ...options }));
      expect(error.code).toBe('FCGI_ERR_BACKEND_CLOSED');
      expect(good.received).toHaveLength(0);
      expect(upstream(client, bad.path)).toMatchObject({ failed: 1, ejected: true, ejections: 1 });
      expect(await ask(client)).toBe('good');
    });

    it('is not sent again with retryStaleConnection off', async () => {
      const bad = await closing();
      const good = await named('good');
      const client = testClient({
        upstreams: [{ address: bad.path }, { address: good.address }],
        balance: 'round-robin',
        retryStaleConnection: false,
      });
      expect((await rejectionOf(client.request({ params: { REQUEST_METHOD: 'GET' } }))).code).toBe(
        'FCGI_ERR_BACKEND_CLOSED',
      );
      expect(good.received).toHaveLength(0);
    });
  });
});

describe('a client with upstreams: active health', () => {
  it('takes an upstream out while its probe fails (status or body) and back when it passes', async () => {
    let ping = `${OK}pong`;
    const probes: ScriptedRequest[] = [];
    const a = await ScriptedBackend.start({
      request(request, connection) {
        if (request.params.SCRIPT_NAME === '/ping') {
          probes.push(request);
          return connection.respond(request.requestId, ping);
        }
        connection.respond(request.requestId, `${OK}a`);
      },
    });
    const b = await named('b');
    const client = testClient({
      upstreams: [{ address: a.path }, { address: b.address }],
      balance: 'round-robin',
      healthCheck: { path: '/ping?full', interval: 20, body: 'pong', params: { SERVER_NAME: 'probe' } },
    });
    await waitFor(() => probes.length > 0, 2000, 'a first probe');
    expect(probes[0]!.params).toMatchObject({
      SCRIPT_NAME: '/ping',
      REQUEST_URI: '/ping?full',
      QUERY_STRING: 'full',
      REQUEST_METHOD: 'GET',
      SERVER_NAME: 'probe',
    });
    // Through the upstream's own pool, on its kept connections, like a request.
    expect(probes[0]!.keepConn).toBe(true);
    for (const failing of ['Status: 503 Busy\r\n\r\npong', `${OK}pang`]) {
      ping = failing;
      await waitFor(() => !upstream(client, a.path).healthy, 2000, 'probe failure noticed');
      expect(upstream(client, a.path).probeFailure).toMatch(
        failing.startsWith('Status') ? /answered 503, not 200/ : /answered "pang", which does not match pong/,
      );
      for (let i = 0; i < 6; i++) expect(await ask(client)).toBe('b');
      ping = `${OK}pong`;
      await waitFor(() => upstream(client, a.path).healthy, 2000, 'probe pass noticed');
      expect(upstream(client, a.path).probeFailure).toBeNull();
      let order = '';
      for (let i = 0; i < 4; i++) order += await ask(client);
      expect(order).toContain('a');
    }
  });

  it('does not probe an upstream that has answered a request since the last check', async () => {
    let probes = 0;
    const a = await ScriptedBackend.start({
      request(request, connection) {
        if (request.params.SCRIPT_NAME === '/ping') probes++;
        connection.respond(request.requestId, `${OK}${request.params.SCRIPT_NAME === '/ping' ? 'pong' : 'a'}`);
      },
    });
    const client = testClient({ upstreams: [{ address: a.path }], healthCheck: { path: '/ping', interval: 20 } });
    await waitFor(() => probes === 1, 2000, 'the first probe');
    const busyUntil = Date.now() + 300;
    while (Date.now() < busyUntil) await ask(client);
    expect(probes).toBe(1);
    await waitFor(() => probes > 1, 2000, 'probes again once idle');
  });
});

describe('a client with upstreams: the probe and the slots', () => {
  it('gives a probe waiting for a connection the next one freed, before the request the balancer sends next', async () => {
    const order: string[] = [];
    const held: (() => void)[] = [];
    const a = await ScriptedBackend.start({
      request(request, connection) {
        const name = request.params.SCRIPT_NAME!;
        order.push(name);
        const answer = () => connection.respond(request.requestId, `${OK}${name === '/ping' ? 'pong' : name}`);
        if (name === '/ping') answer();
        else held.push(answer);
      },
    });
    const client = testClient({
      upstreams: [{ address: a.path, maxConcurrent: 1 }],
      healthCheck: { path: '/ping', interval: 20 },
      multiplex: false,
    });
    await waitFor(() => order.length === 1, 2000, 'the first probe');
    const first = client.request({ params: { SCRIPT_NAME: '/first' } });
    await waitFor(() => held.length === 1);
    const second = client.request({ params: { SCRIPT_NAME: '/second' } });
    // The next probe waits in the upstream's pool for its only connection; /second waits for the only slot.
    await waitFor(() => client.stats.upstreams![0]!.queued === 1, 2000, 'a probe waiting for the connection');
    expect(client.stats.queued).toBe(2);
    held.shift()!();
    await waitFor(() => held.length === 1, 2000, '/second on the connection');
    expect(order.slice(order.indexOf('/first'))).toEqual(['/first', '/ping', '/second']);
    expect(await (await first).text()).toBe('/first');
    held.shift()!();
    expect(await (await second).text()).toBe('/second');
  });
});

describe('a client with upstreams: membership', () => {
  it('drains a removed upstream: what it has finishes, nothing new reaches it, then its connections close', async () => {
    const a = await named('a', { hold: true });
    const b = await named('b');
    const client = testClient({ upstreams: [{ address: a.address }] });
    const first = client.request({});
    await waitFor(() => a.held.length === 1);
    client.addUpstream({ address: b.address });
    let removed: boolean | null = null;
    const removal = client.removeUpstream(a.address).then((result) => (removed = result));
    expect(upstream(client, a.address)).toMatchObject({ draining: true, inFlight: 1 });
    for (let i = 0; i < 3; i++) expect(await ask(client)).toBe('b');
    expect(removed).toBeNull();
    a.release();
    expect(await (await first).text()).toBe('a');
    await removal;
    expect(removed).toBe(true);
    expect(client.stats.upstreams!.map((u) => u.address)).toEqual([`unix:${b.address}`]);
    await waitFor(
      () => a.backend.connections.every((c) => c.socket.readableEnded || c.socket.destroyed),
      3000,
      'a closed',
    );
    expect(a.received).toHaveLength(1);
    // Totals keep what the drained upstream did.
    expect(client.stats.opened).toBe(2);
    expect(await client.removeUpstream(a.address)).toBe(false);
    expect(() => client.addUpstream({ address: b.address })).toThrow(
      expect.objectContaining({ code: 'FCGI_ERR_INVALID_ARGUMENT' }),
    );
  });

  it('follows a hostname: each address becomes an upstream, and one that leaves DNS is drained', async () => {
    const one = await named('one', { tcp: true, host: '127.0.0.1' });
    const port = Number(one.address.split(':')[1]);
    await named('two', { tcp: true, host: '127.0.0.2', port });
    let addresses: string[] | Error = ['127.0.0.1'];
    const asked: string[] = [];
    const client = testClient({
      upstreams: [{ address: `php.test:${port}`, weight: 2 }],
      resolveInterval: 20,
      lookup: async (hostname) => {
        asked.push(hostname);
        if (addresses instanceof Error) throw addresses;
        return addresses.map((address) => ({ address, family: 4 }));
      },
    });
    // The first request waits for the first answer.
    expect(await ask(client)).toBe('one');
    expect(asked[0]).toBe('php.test');
    expect(client.stats.upstreams).toEqual([
      expect.objectContaining({ address: `127.0.0.1:${port}`, configured: `php.test:${port}`, weight: 2 }),
    ]);
    addresses = ['127.0.0.1', '127.0.0.2'];
    await waitFor(() => client.stats.upstreams!.length === 2, 2000, 'the second address');
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(await ask(client));
    expect([...seen].sort()).toEqual(['one', 'two']);
    // A failing lookup keeps what was known.
    addresses = Object.assign(new Error('getaddrinfo EAI_AGAIN php.test'), { code: 'EAI_AGAIN' });
    const lookups = asked.length;
    await waitFor(() => asked.length > lookups + 2, 2000, 'more lookups');
    expect(client.stats.upstreams).toHaveLength(2);
    addresses = ['127.0.0.2'];
    await waitFor(() => client.stats.upstreams!.length === 1, 2000, 'the first address drained');
    expect(client.stats.upstreams![0]!.address).toBe(`127.0.0.2:${port}`);
    for (let i = 0; i < 4; i++) expect(await ask(client)).toBe('two');
  });

  it('fails with FCGI_ERR_NO_UPSTREAM, naming the DNS error, when a hostname does not resolve', async () => {
    const client = testClient({
      upstreams: [{ address: 'nowhere.test:9000' }],
      lookup: () =>
        Promise.reject(Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.test'), { code: 'ENOTFOUND' })),
    });
    const error = await rejectionOf(client.request({}));
    expect(error.code).toBe('FCGI_ERR_NO_UPSTREAM');
    expect(error.message).toContain('nowhere.test:9000: getaddrinfo ENOTFOUND nowhere.test');
  });
});

describe('a client with upstreams: stats, options and the gateway', () => {
  it('keeps the pool figures in stats and adds a line per upstream', async () => {
    const a = await named('a');
    const client = testClient({ upstreams: [{ address: a.address, maxConcurrent: 3 }] });
    await ask(client);
    expect(client.stats).toEqual({
      connections: 1,
      connecting: 0,
      queued: 0,
      inFlight: 0,
      opened: 1,
      multiplexing: false,
      replayed: 0,
      upstreams: [
        {
          address: `unix:${a.address}`,
          configured: `unix:${a.address}`,
          weight: 1,
          maxConcurrent: 3,
          inFlight: 0,
          queued: 0,
          connections: 1,
          served: 1,
          failed: 0,
          ejections: 0,
          ejected: false,
          healthy: true,
          probeFailure: null,
          draining: false,
        },
      ],
    });
  });

  it('leaves a client with one address as it was', async () => {
    const a = await named('a');
    const client = testClient({ address: a.address });
    expect(await ask(client)).toBe('a');
    expect(client.stats).not.toHaveProperty('upstreams');
    expect(() => client.addUpstream({ address: a.address })).toThrow(
      expect.objectContaining({ code: 'FCGI_ERR_INVALID_ARGUMENT' }),
    );
    expect((await rejectionOf(client.removeUpstream(a.address))).code).toBe('FCGI_ERR_INVALID_ARGUMENT');
  });

  it.each([
    ['both address and upstreams', { address: '/a.sock', upstreams: [] }],
    ['neither', {}],
    ['a balancing option with an address', { address: '/a.sock', ejectAfter: 2 }],
    ['an unknown policy', { upstreams: [], balance: 'random' }],
    ['a weight of 0', { upstreams: [{ address: '/a.sock', weight: 0 }] }],
    ['a repeated upstream', { upstreams: [{ address: '/a.sock' }, { address: 'unix:/a.sock' }] }],
    ['a health path without a slash', { upstreams: [], healthCheck: { path: 'ping' } }],
  ])('refuses %s with FCGI_ERR_INVALID_ARGUMENT', (_what, options) => {
    expect(() => createClient(options as never)).toThrow(
      expect.objectContaining({ code: 'FCGI_ERR_INVALID_ARGUMENT' }),
    );
  });

  it('serves a gateway over upstreams', async () => {
    const a = await named('a');
    const b = await named('b');
    const gateway = createGateway({
      upstream: { upstreams: [{ address: a.address }, { address: b.address }], balance: 'round-robin' },
      documentRoot: '/srv',
    });
    const server = createServer(gateway);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    onTestFinished(async () => {
      server.close();
      await gateway.close();
    });
    const port = (server.address() as { port: number }).port;
    const get = () =>
      new Promise<string>((resolve, reject) => {
        httpRequest({ port, host: '127.0.0.1', path: '/index.php' }, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve(text));
        })
          .on('error', reject)
          .end();
      });
    expect([await get(), await get(), await get(), await get()]).toEqual(['a', 'b', 'a', 'b']);
    expect(gateway.client.stats.upstreams).toHaveLength(2);
  });

  it('makes the gateway answer 503 when no upstream can take a request', () => {
    for (const code of ['FCGI_ERR_QUEUE_FULL', 'FCGI_ERR_QUEUE_TIMEOUT', 'FCGI_ERR_NO_UPSTREAM'])
      expect(statusFor(code)).toBe(503);
  });
});
