// server.stats() over real connections: accepted and open connections, requests by the status the handler
// sent, refusals by cause (maxConnections), END_REQUEST refusals (OVERLOADED), aborts, bytes, latency.
import { describe, expect, it } from 'vitest';
import { createServer, serve } from '../../src/index';
import { beginRequest } from '../helpers/records';
import { buildRequest } from '../helpers/fcgi-peer';
import { waitFor } from '../client/helpers';
import { listenForTest } from './harness';

describe('server.stats()', () => {
  it('counts connections, requests by status class, bytes and latency as they happen', async () => {
    const server = createServer((req, res) => {
      res.statusCode = req.url === '/missing' ? 404 : req.url === '/boom' ? 503 : 200;
      res.end('hello');
    });
    const { connect } = await listenForTest(server);
    const before = server.stats();
    expect(before.requests.total).toBe(0);
    const peer = await connect();
    await peer.request({ requestId: 1, keepConn: true, params: { REQUEST_URI: '/', REQUEST_METHOD: 'GET' } });
    await peer.request({ requestId: 1, keepConn: true, params: { REQUEST_URI: '/missing', REQUEST_METHOD: 'GET' } });
    await peer.request({ requestId: 1, keepConn: true, params: { REQUEST_URI: '/boom', REQUEST_METHOD: 'GET' } });
    await waitFor(() => server.stats().requests.inFlight === 0);
    const stats = server.stats();
    expect(stats.connections).toMatchObject({ open: 1, accepted: 1, maxOpen: 1 });
    expect(stats.requests).toMatchObject({
      total: 3,
      inFlight: 0,
      maxInFlight: 1,
      aborted: 0,
      byStatusClass: { '2xx': 1, '4xx': 1, '5xx': 1 },
    });
    expect(stats.requests.byProtocolStatus).toEqual({ REQUEST_COMPLETE: 3 });
    expect(stats.latency.count).toBe(3);
    expect(stats.latency.counts.reduce((a, b) => a + b, 0)).toBe(3);
    expect(stats.latency.bounds.at(-1)).toBe(Infinity);
    expect(stats.bytes.in).toBeGreaterThan(100);
    expect(stats.bytes.out).toBeGreaterThan(3 * 'hello'.length);
    expect(stats.startTime).toBeLessThanOrEqual(Date.now());
    peer.destroy();
    await waitFor(() => server.stats().connections.open === 0);
  });

  it('counts refusals by cause, OVERLOADED END_REQUESTs and aborted requests', async () => {
    const server = serve(() => new Promise<Response>(() => undefined), {
      maxConnections: 1,
      maxRequestsPerConnection: 1,
    });
    server.on('clientError', () => undefined);
    const { connect } = await listenForTest(server);
    const first = await connect();
    await first.send(
      Buffer.concat([
        buildRequest({ requestId: 1, params: { REQUEST_URI: '/hang' } }),
        beginRequest(2), // over maxRequestsPerConnection: END_REQUEST(OVERLOADED)
      ]),
    );
    await first.waitForEnd(2);
    await waitFor(() => server.stats().requests.inFlight === 1);
    const second = await connect(); // over maxConnections, every connection busy: refused
    await waitFor(() => server.stats().connections.refused.maxConnections === 1);
    second.destroy();
    first.destroy(); // the web server gives up: the request in flight is aborted
    await waitFor(() => server.stats().requests.aborted === 1);
    const stats = server.stats();
    expect(stats.requests.byProtocolStatus).toEqual({ OVERLOADED: 1 });
    expect(stats.requests).toMatchObject({ total: 1, inFlight: 0, aborted: 1 });
    expect(stats.connections.accepted).toBe(1);
  });

  it('counts requests slower than slowRequestThreshold', async () => {
    const server = createServer({ slowRequestThreshold: 30 }, (req, res) => {
      setTimeout(() => res.end(), req.url === '/slow' ? 80 : 0);
    });
    const { connect } = await listenForTest(server);
    const peer = await connect();
    await peer.request({ requestId: 1, keepConn: true, params: { REQUEST_URI: '/slow' } });
    await peer.request({ requestId: 1, keepConn: true, params: { REQUEST_URI: '/fast' } });
    await waitFor(() => server.stats().requests.inFlight === 0);
    expect(server.stats().requests.slow).toBe(1);
  });
});
