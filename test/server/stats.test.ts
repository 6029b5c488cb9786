// server.stats(): connections, requests by status class and protocol status, aborts, timeouts, refusals,
// slow requests, bytes and the latency histogram, counted as things happen.
import { describe, expect, it } from 'vitest';
import { setTimeout as delay } from 'node:timers/promises';
import { createServer } from '../../src/server/server';
import type { ServerOptions } from '../../src/server/options';
import { statusOf } from '../../src/server/request-socket';
import { LATENCY_BOUNDS } from '../../src/server/stats';
import { buildRequest, parseCgiResponse } from '../helpers/fcgi-peer';
import { listenForTest } from './harness';
import { waitFor } from '../client/helpers';

function params(uri: string): Record<string, string> {
  return { REQUEST_METHOD: 'GET', REQUEST_URI: uri, SCRIPT_NAME: uri };
}

async function server(options: ServerOptions = {}) {
  const s = createServer({ logger: { warn() {}, error() {} }, ...options }, async (req, res) => {
    if (req.url === '/boom') throw new Error('boom');
    if (req.url === '/hang') return;
    if (req.url === '/slow') await delay(60);
    if (req.url === '/raw') {
      // A raw CGI block straight to STDOUT: the status is read from it.
      req.fastcgi.end('Status: 302 Found\r\nLocation: /x\r\n\r\n');
      return;
    }
    res.statusCode = req.url === '/missing' ? 404 : req.url === '/moved' ? 301 : 200;
    res.end('body');
  });
  return { server: s, ...(await listenForTest(s)) };
}

describe('server.stats()', () => {
  it('counts requests by status class and protocol status, with bytes and latency', async () => {
    const { server: s, connect } = await server();
    const peer = await connect();
    let id = 1;
    for (const uri of ['/ok', '/ok', '/missing', '/moved', '/boom', '/raw']) {
      const response = await peer.request({ requestId: id++, params: params(uri), keepConn: true });
      expect(response.protocolStatus).toBe(0);
    }
    const stats = s.stats();
    expect(stats.requests).toMatchObject({
      inFlight: 0,
      maxInFlight: 1,
      total: 6,
      byStatusClass: { '1xx': 0, '2xx': 2, '3xx': 2, '4xx': 1, '5xx': 1 },
      aborted: 0,
      timedOut: 0,
      slow: 0,
      byProtocolStatus: { REQUEST_COMPLETE: 6, CANT_MPX_CONN: 0, OVERLOADED: 0, UNKNOWN_ROLE: 0 },
    });
    expect(stats.connections).toMatchObject({ open: 1, accepted: 1, maxOpen: 1, refused: {} });
    await waitFor(() => s.stats().bytes.out === peer.bytesReceived, 2000, 'bytes out');
    expect(s.stats().bytes.in).toBe(peer.bytesSent);
    expect(stats.latency.bounds).toEqual([...LATENCY_BOUNDS]);
    expect(stats.latency.bounds.at(-1)).toBe(Infinity);
    expect(stats.latency.counts.reduce((a, b) => a + b, 0)).toBe(6);
    expect(stats.latency.count).toBe(6);
    expect(stats.latency.sum).toBeGreaterThan(0);
    expect(stats.startTime).toBeLessThanOrEqual(Date.now());
    expect(stats.startSince).toBeGreaterThanOrEqual(0);
  });

  it('counts connections open, accepted and closed', async () => {
    const { server: s, connect } = await server();
    const a = await connect();
    const b = await connect();
    await waitFor(() => s.stats().connections.open === 2, 2000, 'two open');
    a.destroy();
    await waitFor(() => s.stats().connections.open === 1, 2000, 'one closed');
    expect(s.stats().connections).toMatchObject({ accepted: 2, maxOpen: 2 });
    b.destroy();
    await waitFor(() => s.stats().connections.open === 0, 2000, 'all closed');
  });

  it('counts aborts (ABORT_REQUEST and a closed connection) and refusals at BEGIN_REQUEST', async () => {
    const { server: s, connect } = await server({ maxRequestsPerConnection: 1 });
    const peer = await connect();
    await peer.send(buildRequest({ requestId: 1, params: params('/hang'), keepConn: true }));
    await waitFor(() => s.stats().requests.inFlight === 1, 2000, 'in flight');
    await peer.send(buildRequest({ requestId: 2, params: params('/ok'), keepConn: true }));
    expect((await peer.waitForEnd(2)).protocolStatus).toBe(2);
    await peer.abort(1);
    await peer.waitForEnd(1);
    const other = await connect();
    await other.send(buildRequest({ requestId: 1, params: params('/hang') }));
    await waitFor(() => s.stats().requests.inFlight === 1, 2000, 'in flight again');
    other.destroy();
    await waitFor(() => s.stats().requests.inFlight === 0, 2000, 'aborted by close');
    const stats = s.stats();
    expect(stats.requests).toMatchObject({ total: 2, aborted: 2, timedOut: 0, maxInFlight: 1 });
    // An aborted request sent no status: no class counts it.
    expect(Object.values(stats.requests.byStatusClass).reduce((a, b) => a + b, 0)).toBe(0);
    expect(stats.requests.byProtocolStatus).toMatchObject({ REQUEST_COMPLETE: 1, OVERLOADED: 1 });
  });

  it('counts handler timeouts (the 503 they get counts as 5xx)', async () => {
    const { server: s, connect } = await server({ handlerTimeout: 30 });
    const peer = await connect();
    const response = await peer.request({ params: params('/hang') });
    expect(parseCgiResponse(response.stdout).status).toBe(503);
    expect(s.stats().requests).toMatchObject({ total: 1, timedOut: 1, aborted: 0, byStatusClass: { '5xx': 1 } });
  });

  it('counts refused connections by cause', async () => {
    const { server: s, connect } = await server({ webServerAddrs: '10.9.9.9' });
    const peer = await connect();
    await peer.closed;
    await waitFor(() => s.stats().connections.refused.webServerAddrs === 1, 2000, 'refused');
    expect(s.stats().connections).toMatchObject({ accepted: 0, open: 0 });
  });

  it('counts connections closed by beginTimeout under their cause', async () => {
    const { server: s, connect } = await server({ beginTimeout: 30 });
    const peer = await connect();
    await peer.closed;
    await waitFor(() => s.stats().connections.refused.beginTimeout === 1, 2000, 'begin timeout');
  });

  it('counts requests slower than slowRequestThreshold, and logs them with their id and URI', async () => {
    const warnings: string[] = [];
    const { server: s, connect } = await server({
      slowRequestThreshold: 40,
      logger: { warn: (m: string) => warnings.push(m), error() {} },
    });
    const peer = await connect();
    await peer.request({ requestId: 1, params: params('/slow'), keepConn: true });
    await peer.request({ requestId: 2, params: params('/ok'), keepConn: true });
    expect(s.stats().requests.slow).toBe(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^slow request: \d+ ms \(slowRequestThreshold 40 ms\) \[requestId=1 method=GET uri=\/slow\]$/,
    );
  });
});

describe('statusOf (the status of a raw CGI block)', () => {
  it('reads Status first or later in the block, and 200 without one', () => {
    expect(statusOf(Buffer.from('Status: 404 Not Found\r\n\r\n'))).toBe(404);
    expect(statusOf(Buffer.from('Content-Type: text/plain\r\nStatus: 503\r\n\r\n'))).toBe(503);
    expect(statusOf(Buffer.from('Content-Type: text/plain\r\n\r\nStatus: 500'))).toBe(200);
    // No Status but a Location: a redirect, 302 (RFC 3875 §6.2.3), as the client's CGI parser reads it.
    expect(statusOf(Buffer.from('Location: /x\n\n'))).toBe(302);
  });
});
