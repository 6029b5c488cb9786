// close()'s drain rule for connections with nothing in flight: one that has not started a request yet (just
// accepted; its BEGIN_REQUEST is on the way) gets a bounded grace for it, and the request is served before the
// connection closes (KEEP_CONN or not); one idle after serving requests is closed at once. Also the decision
// that lets listen(path) in a node:cluster worker skip the stale-socket check.
import * as net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createServer, firstRequestGrace, FIRST_REQUEST_GRACE_MS, type Server } from '../../src/server/server';
import { checksStaleSocket } from '../../src/server/listen';
import type { ServerOptions } from '../../src/server/options';
import { settlesWithin, within } from '../helpers/async';
import { buildRequest, parseCgiResponse, type PeerResponse } from '../helpers/fcgi-peer';
import { recordingLogger, start, type Started } from './harness';

function get(url: string): Record<string, string> {
  return { REQUEST_METHOD: 'GET', REQUEST_URI: url, SCRIPT_NAME: url };
}

function body(response: PeerResponse): string {
  return parseCgiResponse(response.stdout).body.toString('utf8');
}

/** A server answering `seen <url>` at once, counting the requests its handler saw. */
async function serving(options: ServerOptions = {}): Promise<Started & { seen: string[] }> {
  const seen: string[] = [];
  const server = createServer({ logger: recordingLogger(), ...options }, (req, res) => {
    seen.push(req.url ?? '');
    res.end(`seen ${req.url}\n`);
  });
  return { ...(await start(server)), seen };
}

async function accepted(server: Server, count: number): Promise<void> {
  await within(
    (async () => {
      while (server.connectionCount < count) await delay(5);
    })(),
    2000,
    `the server to accept ${count} connection(s)`,
  );
}

/** server.close(); resolves with when the callback ran. */
function close(server: Server): Promise<number> {
  return new Promise((resolve, reject) =>
    server.close((error) => (error === undefined ? resolve(Date.now()) : reject(error))),
  );
}

describe('close(): a connection that has not started a request yet', () => {
  it('gets its request, sent 200 ms after close(), served in full; then the connection closes despite KEEP_CONN', async () => {
    const s = await serving();
    const peer = await s.peer();
    await accepted(s.server, 1);
    const closed = close(s.server);
    await delay(200);
    expect(peer.closedResult).toBeUndefined();
    const response = await peer.request({ params: get('/late'), keepConn: true });
    expect(response.protocolStatus).toBe(0);
    expect(response.stdoutEnded).toBe(true);
    expect(body(response)).toBe('seen /late\n');
    // Draining: KEEP_CONN does not keep it; END_REQUEST, then FIN.
    expect((await within(peer.closed, 1000, 'the connection to close after its request')).how).toBe('fin');
    await within(closed, 1000, 'the close callback');
    expect(s.seen).toEqual(['/late']);
  });

  it('gets its request served when part of the first record came before close() and the rest after', async () => {
    const s = await serving();
    const peer = await s.peer();
    const bytes = buildRequest({ params: get('/split') });
    await peer.send(bytes.subarray(0, 5)); // inside BEGIN_REQUEST's header
    await accepted(s.server, 1);
    await delay(50);
    const closed = close(s.server);
    await delay(200);
    await peer.send(bytes.subarray(5));
    expect(body(await peer.waitForEnd(1))).toBe('seen /split\n');
    expect((await within(peer.closed, 1000, 'the connection to close')).how).toBe('fin');
    await within(closed, 1000, 'the close callback');
  });

  it('is closed after the grace when nothing arrives, and a request sent later is never handled', async () => {
    expect(FIRST_REQUEST_GRACE_MS).toBe(1000);
    const s = await serving();
    const silent = await s.peer();
    await accepted(s.server, 1);
    const startedAt = Date.now();
    const closed = close(s.server);
    expect(await settlesWithin(silent.closed, FIRST_REQUEST_GRACE_MS - 300)).toBe(false);
    const how = await within(
      silent.closed,
      FIRST_REQUEST_GRACE_MS + 1500,
      'the silent connection to close after the grace',
    );
    expect(how.how).toBe('fin');
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(FIRST_REQUEST_GRACE_MS - 20);
    await within(closed, 1000, 'the close callback');
    expect(s.seen).toEqual([]);
  });

  it('a request that crosses the FIN sent at the end of the grace is not handled', async () => {
    const s = await serving();
    // A raw half-open socket: it keeps writing after the server's FIN, as a web server whose request crossed
    // that FIN on the wire does (TestPeer's socket would end its side on FIN).
    const socket = net.connect({ port: s.port, host: '127.0.0.1', allowHalfOpen: true });
    onTestFinished(() => {
      socket.destroy();
    });
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()));
    const socketClosed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    await accepted(s.server, 1);
    const closed = close(s.server);
    await within(ended, FIRST_REQUEST_GRACE_MS + 1500, 'FIN after the grace');
    socket.end(buildRequest({ params: get('/too-late') }));
    await within(socketClosed, 2000, 'the connection to close');
    await within(closed, 2000, 'the close callback');
    // The server read no more after its FIN: no handler ran for a request it could not have answered.
    expect(s.seen).toEqual([]);
    expect(Buffer.concat(received).length).toBe(0);
  });

  it('the grace is never longer than closeTimeout', async () => {
    const s = await serving({ closeTimeout: 300 });
    const silent = await s.peer();
    await accepted(s.server, 1);
    const startedAt = Date.now();
    const closed = close(s.server);
    await within(silent.closed, 900, 'the silent connection to close at closeTimeout');
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(280);
    await within(closed, 1000, 'the close callback');
  });

  it('firstRequestGrace: 1 s, or closeTimeout when shorter (0 means no closeTimeout)', () => {
    expect(firstRequestGrace(30_000)).toBe(1000);
    expect(firstRequestGrace(1000)).toBe(1000);
    expect(firstRequestGrace(300)).toBe(300);
    expect(firstRequestGrace(0)).toBe(1000);
  });
});

describe('close(): connections that already served requests', () => {
  it('an idle KEEP_CONN connection is closed at once, while a fresh one on the same server still waits', async () => {
    const s = await serving();
    const kept = await s.peer();
    expect(body(await kept.request({ params: get('/first'), keepConn: true }))).toBe('seen /first\n');
    const fresh = await s.peer();
    await accepted(s.server, 2);
    const startedAt = Date.now();
    const closed = close(s.server);
    expect((await within(kept.closed, 500, 'the idle kept connection to close at once')).how).toBe('fin');
    expect(Date.now() - startedAt).toBeLessThan(500);
    expect(fresh.closedResult).toBeUndefined();
    expect(body(await fresh.request({ params: get('/second') }))).toBe('seen /second\n');
    await within(closed, 1000, 'the close callback');
    expect(s.seen).toEqual(['/first', '/second']);
  });

  it('a KEEP_CONN connection in the middle of receiving its next request waits for it and serves it', async () => {
    const s = await serving();
    const kept = await s.peer();
    expect(body(await kept.request({ params: get('/one'), keepConn: true }))).toBe('seen /one\n');
    const next = buildRequest({ params: get('/two'), keepConn: true });
    await kept.send(next.subarray(0, 12)); // BEGIN_REQUEST cut inside its body: the next request is on its way
    await delay(50);
    const closed = close(s.server);
    await delay(100);
    await kept.send(next.subarray(12));
    expect(body(await kept.waitForEnd(1))).toBe('seen /two\n');
    expect((await within(kept.closed, 1000, 'the connection to close')).how).toBe('fin');
    await within(closed, 1000, 'the close callback');
  });

  it('closeIdleConnections() still closes a silent fresh connection at once (no grace outside close())', async () => {
    const s = await serving();
    const silent = await s.peer();
    await accepted(s.server, 1);
    s.server.closeIdleConnections();
    expect((await within(silent.closed, 500, 'the silent connection to close')).how).toBe('fin');
    expect(s.server.listening).toBe(true);
  });
});

describe('listen(path) in a node:cluster worker', () => {
  it('skips the stale-socket check there (the primary binds the path), unless exclusive', () => {
    expect(checksStaleSocket(false, false)).toBe(true); // a plain process or the primary
    expect(checksStaleSocket(true, false)).toBe(true);
    expect(checksStaleSocket(false, true)).toBe(false); // a worker sharing the primary's socket
    expect(checksStaleSocket(true, true)).toBe(true); // exclusive: the worker binds it itself
    expect(checksStaleSocket(false)).toBe(true); // this test process is no cluster worker
  });
});
