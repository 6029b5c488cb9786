// Shutting down: close() stops accepting, lets in-flight requests finish, closes idle connections at once (a
// just-accepted one after a short wait for its first request: test/server/drain.test.ts) and after
// closeTimeout destroys what is left; closeAllConnections / closeIdleConnections do what they say.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createServer, type Server } from '../../src/server/server';
import type { FastCGIIncomingMessage, FastCGIServerResponse } from '../../src/server/http-message';
import type { ServerOptions } from '../../src/server/options';
import { RecordType } from '../../src/wire/constants';
import { settlesWithin, within } from '../helpers/async';
import { TestPeer, parseCgiResponse, type PeerResponse } from '../helpers/fcgi-peer';

// ---- helpers -------------------------------------------------------------------------------------------------

interface Held {
  req: FastCGIIncomingMessage;
  res: FastCGIServerResponse;
  /** Ends the response with `body`. */
  release(body?: string): void;
}

/**
 * A server whose handler answers `/fast` at once and holds every other request until the test releases it,
 * so a test decides exactly when a request is in flight.
 */
class Harness {
  readonly server: Server;
  readonly held: Held[] = [];
  readonly warnings: string[] = [];
  #arrivals: Array<(held: Held) => void> = [];
  port = 0;

  constructor(options: ServerOptions = {}) {
    this.server = createServer(
      { logger: { warn: (m) => this.warnings.push(m), error: (m) => this.warnings.push(m) }, ...options },
      (req, res) => {
        if (req.url === '/fast') {
          res.end('fast\n');
          return;
        }
        const held: Held = {
          req,
          res,
          release: (body = `done ${req.url}\n`) => {
            if (!res.writableEnded && !res.destroyed) res.end(body);
          },
        };
        this.held.push(held);
        const waiter = this.#arrivals.shift();
        if (waiter !== undefined) waiter(held);
      },
    );
    onTestFinished(
      () =>
        new Promise<void>((resolve) => {
          for (const h of this.held) h.release();
          this.server.closeAllConnections();
          if (!this.server.listening) return resolve();
          this.server.close(() => resolve());
        }),
    );
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  /** Resolves when the handler receives the next held request. */
  nextHeld(): Promise<Held> {
    return within(
      new Promise<Held>((resolve) => this.#arrivals.push(resolve)),
      5000,
      'the handler to receive a request',
    );
  }

  async peer(): Promise<TestPeer> {
    const peer = await TestPeer.connect({ port: this.port });
    onTestFinished(() => peer.destroy());
    return peer;
  }

  /** Opens a connection and starts a held request on it; resolves once the handler has it. */
  async inFlight(
    url: string,
    keepConn = true,
  ): Promise<{ peer: TestPeer; held: Held; response: Promise<PeerResponse> }> {
    const peer = await this.peer();
    const arrived = this.nextHeld();
    const response = peer.request({ params: get(url), keepConn, timeoutMs: 10_000 });
    response.catch(() => undefined); // some tests expect it to fail; they await it themselves
    const held = await arrived;
    return { peer, held, response };
  }

  /** Opens a connection, completes one KEEP_CONN request on it, and leaves it idle. */
  async idle(): Promise<TestPeer> {
    const peer = await this.peer();
    const response = await peer.request({ params: get('/fast'), keepConn: true });
    expect(parseCgiResponse(response.stdout).body.toString()).toBe('fast\n');
    return peer;
  }

  /** server.close(); resolves with the callback's argument and when it came. */
  close(): Promise<{ error: Error | undefined; at: number }> {
    return new Promise((resolve) => this.server.close((error) => resolve({ error, at: Date.now() })));
  }
}

function get(url: string): Record<string, string> {
  return { REQUEST_METHOD: 'GET', REQUEST_URI: url, SCRIPT_NAME: url };
}

/** What a fresh connection to the port gets: 'connected', or the error code. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

function body(response: PeerResponse): string {
  return parseCgiResponse(response.stdout).body.toString('utf8');
}

function hasEndRequest(peer: TestPeer): boolean {
  return peer.records.some((r) => r.type === RecordType.END_REQUEST);
}

// ---- close() -------------------------------------------------------------------------------------------------------

describe('close()', () => {
  it('stops accepting, lets the in-flight request complete, closes its connection, then calls back', async () => {
    const h = await new Harness().listen();
    const { peer, held, response } = await h.inFlight('/slow');
    expect(h.server.connectionCount).toBe(1);

    const closed = h.close();
    // New connections are refused at once.
    expect(await tryConnect(h.port)).toBe('ECONNREFUSED');
    await expect(TestPeer.connect({ port: h.port })).rejects.toThrow(/ECONNREFUSED/);
    // The in-flight request and its connection are left alone, and close() has not called back.
    expect(await settlesWithin(Promise.race([peer.closed, closed, response]), 100)).toBe(false);
    expect(h.server.listening).toBe(false);

    const order: string[] = [];
    void response.then(() => order.push('response'));
    void closed.then(() => order.push('close callback'));
    held.release('finished after close\n');
    const answer = await response;
    expect(answer.protocolStatus).toBe(0);
    expect(body(answer)).toBe('finished after close\n');
    // KEEP_CONN was set, so it is close() that ends the connection once the request is done.
    const how = await within(peer.closed, 5000, 'the drained connection to close');
    expect(how.how).toBe('fin');
    const { error } = await within(closed, 5000, 'the close callback');
    expect(error).toBeUndefined();
    expect(order).toEqual(['response', 'close callback']);
    // net.Server calls back as the socket is destroyed; the server's own bookkeeping follows on socket 'close'.
    await within(
      (async () => {
        while (h.server.connectionCount > 0) await delay(5);
      })(),
      1000,
      'connectionCount to reach 0',
    );
  });

  it('emits close only after the last in-flight request is done', async () => {
    const h = await new Harness().listen();
    const a = await h.inFlight('/a');
    const b = await h.inFlight('/b', false);
    const closeEvent = new Promise<number>((resolve) => h.server.once('close', () => resolve(Date.now())));
    h.server.close();
    a.held.release();
    expect(body(await a.response)).toBe('done /a\n');
    await within(a.peer.closed, 5000, 'connection a to close');
    expect(await settlesWithin(closeEvent, 100)).toBe(false);
    const releasedAt = Date.now();
    b.held.release();
    expect(body(await b.response)).toBe('done /b\n');
    expect(await within(closeEvent, 5000, "the server's close event")).toBeGreaterThanOrEqual(releasedAt);
  });

  it('closes idle KEEP_CONN connections promptly', async () => {
    const h = await new Harness().listen();
    const idle1 = await h.idle();
    const idle2 = await h.idle();
    // Idle connections stay open on their own (the web server owns a KEEP_CONN connection).
    expect(await settlesWithin(Promise.race([idle1.closed, idle2.closed]), 100)).toBe(false);
    expect(h.server.connectionCount).toBe(2);

    const startedAt = Date.now();
    const closed = h.close();
    expect((await within(idle1.closed, 1000, 'idle connection 1 to close')).how).toBe('fin');
    expect((await within(idle2.closed, 1000, 'idle connection 2 to close')).how).toBe('fin');
    const { error, at } = await within(closed, 1000, 'the close callback');
    expect(error).toBeUndefined();
    expect(at - startedAt).toBeLessThan(1000);
  });

  it('closes a connection that never sent a byte once its first-request grace is over (test/server/drain.test.ts)', async () => {
    const h = await new Harness().listen();
    const silent = await h.peer();
    await within(
      (async () => {
        while (h.server.connectionCount < 1) await delay(5);
      })(),
      2000,
      'the server to accept',
    );
    const closed = h.close();
    // It may still be carrying a request (just accepted, BEGIN_REQUEST on the way): up to 1 s to send it.
    expect((await within(silent.closed, 2500, 'the silent connection to close')).how).toBe('fin');
    await within(closed, 1000, 'the close callback');
  });

  it('with no connections calls back at once', async () => {
    const h = await new Harness().listen();
    const { error } = await within(h.close(), 1000, 'the close callback');
    expect(error).toBeUndefined();
    expect(await tryConnect(h.port)).toBe('ECONNREFUSED');
  });

  it('removes the unix socket file it listened on', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcgi-lifecycle-'));
    onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
    const socketPath = path.join(dir, 'app.sock');
    const h = new Harness();
    await new Promise<void>((resolve, reject) => {
      h.server.once('error', reject);
      h.server.listen(socketPath, () => resolve());
    });
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
    await within(h.close(), 1000, 'the close callback');
    expect(fs.existsSync(socketPath)).toBe(false);
  });

  it('closeTimeout destroys a connection whose request never finishes, then calls back', async () => {
    const closeTimeout = 500;
    const h = await new Harness({ closeTimeout }).listen();
    const { peer, held, response } = await h.inFlight('/never');
    const idle = await h.idle();
    const aborted = new Promise<void>((resolve) => held.req.fastcgi.signal.addEventListener('abort', () => resolve()));

    const startedAt = Date.now();
    const closed = h.close();
    // The idle one goes at once; the stuck one waits for closeTimeout.
    const stuckEarly = settlesWithin(peer.closed, 150);
    await within(idle.closed, 1000, 'the idle connection to close');
    expect(await stuckEarly).toBe(false);

    await within(peer.closed, closeTimeout + 2000, 'the stuck connection to be destroyed');
    const elapsed = Date.now() - startedAt;
    expect(elapsed).toBeGreaterThanOrEqual(closeTimeout - 20);
    expect(hasEndRequest(peer)).toBe(false);
    await expect(response).rejects.toThrow(/closed/);
    // The handler is told its request is gone.
    await within(aborted, 1000, "the handler's abort signal");
    const { error } = await within(closed, 1000, 'the close callback');
    expect(error).toBeUndefined();
    expect(h.server.connectionCount).toBe(0);
  });

  it('a request that finishes before closeTimeout is not cut off', async () => {
    const h = await new Harness({ closeTimeout: 300 }).listen();
    const { peer, held, response } = await h.inFlight('/quick-enough');
    const closed = h.close();
    await delay(50);
    held.release();
    expect(body(await response)).toBe('done /quick-enough\n');
    expect((await within(peer.closed, 1000, 'the connection to close')).how).toBe('fin');
    await within(closed, 1000, 'the close callback');
  });
});

// ---- closeAllConnections / closeIdleConnections ---------------------------------------------------------------

describe('closeAllConnections()', () => {
  it('destroys every connection, in-flight or idle, and keeps listening', async () => {
    const h = await new Harness().listen();
    const busy = await h.inFlight('/busy');
    const idle = await h.idle();
    expect(h.server.connectionCount).toBe(2);
    const aborted = new Promise<void>((resolve) =>
      busy.held.req.fastcgi.signal.addEventListener('abort', () => resolve()),
    );

    h.server.closeAllConnections();
    await within(busy.peer.closed, 1000, 'the busy connection to close');
    await within(idle.closed, 1000, 'the idle connection to close');
    expect(hasEndRequest(busy.peer)).toBe(false);
    await expect(busy.response).rejects.toThrow(/closed/);
    await within(aborted, 1000, "the handler's abort signal");
    expect(h.server.connectionCount).toBe(0);

    // The listener is untouched.
    expect(h.server.listening).toBe(true);
    const again = await h.peer();
    expect(body(await again.request({ params: get('/fast') }))).toBe('fast\n');
  });
});

describe('closeIdleConnections()', () => {
  it('closes only connections with nothing in flight, and keeps listening', async () => {
    const h = await new Harness().listen();
    const busy = await h.inFlight('/busy');
    const idle = await h.idle();
    const silent = await h.peer();
    await within(
      (async () => {
        while (h.server.connectionCount < 3) await delay(5);
      })(),
      2000,
      'the server to accept',
    );

    h.server.closeIdleConnections();
    expect((await within(idle.closed, 1000, 'the idle connection to close')).how).toBe('fin');
    expect((await within(silent.closed, 1000, 'the silent connection to close')).how).toBe('fin');
    expect(await settlesWithin(Promise.race([busy.peer.closed, busy.response]), 100)).toBe(false);
    expect(h.server.connectionCount).toBe(1);

    busy.held.release();
    expect(body(await busy.response)).toBe('done /busy\n');
    // KEEP_CONN and no close(): the busy connection was not idle when asked, so it stays open for reuse.
    expect(await settlesWithin(busy.peer.closed, 100)).toBe(false);
    expect(body(await busy.peer.request({ params: get('/fast'), keepConn: true }))).toBe('fast\n');

    expect(h.server.listening).toBe(true);
    const again = await h.peer();
    expect(body(await again.request({ params: get('/fast') }))).toBe('fast\n');
  });
});
