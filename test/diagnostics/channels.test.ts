// The diagnostics channels: each fires with its documented fields, and nothing is built when nobody listens.
import { afterEach, describe, expect, it, vi } from 'vitest';
import diagnosticsChannel from 'node:diagnostics_channel';
import { setTimeout as delay } from 'node:timers/promises';
import { createServer } from '../../src/server/server';
import { serve } from '../../src/server/fetch';
import type { ServerOptions } from '../../src/server/options';
import { createClient } from '../../src/client/client';
import { channels, tracingChannels } from '../../src/diagnostics/channels';
import { build } from '../../src/diagnostics/messages';
import { Role } from '../../src/wire/constants';
import { buildRequest, parseCgiResponse } from '../helpers/fcgi-peer';
import { listenForTest } from '../server/harness';
import { waitFor } from '../client/helpers';

const quiet = { logger: { warn() {}, error() {} } };

// Subscriptions made by a test, undone after it.
const undo: (() => void)[] = [];
afterEach(() => {
  for (const off of undo.splice(0)) off();
  vi.restoreAllMocks();
});

function record(name: string): unknown[] {
  const messages: unknown[] = [];
  const listener = (message: unknown): void => void messages.push(message);
  diagnosticsChannel.subscribe(name, listener);
  undo.push(() => diagnosticsChannel.unsubscribe(name, listener));
  return messages;
}

async function server(options: ServerOptions = {}) {
  const s = createServer({ ...quiet, ...options }, (req, res) => {
    if (req.url === '/boom') throw new Error('boom');
    if (req.url === '/hang') return;
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      res.statusCode = req.url!.startsWith('/missing') ? 404 : 200;
      res.end(`got ${body}`);
    });
  });
  return { server: s, ...(await listenForTest(s)) };
}

const params = (uri: string) => ({ REQUEST_METHOD: 'POST', REQUEST_URI: uri, SCRIPT_NAME: uri });

describe('server channels', () => {
  it('request:start and request:finish carry id, role, params, status, statuses, bytes and timings', async () => {
    const starts = record('fastcgi:server:request:start') as Record<string, unknown>[];
    const finishes = record('fastcgi:server:request:finish') as Record<string, unknown>[];
    const { connect } = await server();
    const peer = await connect();
    const response = await peer.request({ requestId: 3, params: params('/missing?x=1'), stdin: 'hello' });
    expect(parseCgiResponse(response.stdout).status).toBe(404);
    await waitFor(() => finishes.length === 1, 2000, 'finish');
    expect(starts).toHaveLength(1);
    expect(starts[0]).toMatchObject({ requestId: 3, role: 'responder' });
    expect((starts[0]!.params as Record<string, string>).REQUEST_URI).toBe('/missing?x=1');
    const finish = finishes[0]!;
    expect(finish).toMatchObject({
      requestId: 3,
      role: 'responder',
      status: 404,
      appStatus: 0,
      protocolStatus: 'REQUEST_COMPLETE',
      abortReason: null,
      bytesIn: 5,
    });
    expect(finish.request).toBe(starts[0]!.request);
    expect((finish.params as Record<string, string>).REQUEST_URI).toBe('/missing?x=1');
    expect(finish.bytesOut).toBe(response.stdout.length);
    expect(finish.duration).toBeGreaterThanOrEqual(0);
    expect(typeof finish.startTime).toBe('number');
  });

  it('connection:open and connection:close, with the requests and bytes of the connection', async () => {
    const opens = record('fastcgi:server:connection:open') as Record<string, unknown>[];
    const closes = record('fastcgi:server:connection:close') as Record<string, unknown>[];
    const { connect } = await server();
    const peer = await connect();
    await peer.request({ params: params('/x'), stdin: '' });
    await peer.closed;
    // Connections of earlier tests may close while this one runs: pick ours.
    await waitFor(() => closes.some((c) => c.socket === opens[0]?.socket), 2000, 'close');
    expect(opens).toHaveLength(1);
    const close = closes.find((c) => c.socket === opens[0]!.socket)!;
    expect(close).toMatchObject({ requests: 1 });
    expect(close.bytesIn).toBeGreaterThan(0);
    expect(close.bytesOut).toBe(peer.bytesReceived);
  });

  it('request:error for a handler that throws, with the error and its code', async () => {
    const errors = record('fastcgi:server:request:error') as Record<string, unknown>[];
    const { connect } = await server();
    const peer = await connect();
    const response = await peer.request({ params: params('/boom') });
    expect(parseCgiResponse(response.stdout).status).toBe(500);
    expect(errors).toHaveLength(1);
    expect((errors[0]!.error as Error).message).toBe('boom');
    expect(errors[0]).toMatchObject({ requestId: 1, code: undefined });
  });

  it('request:error with FCGI_ERR_HANDLER_TIMEOUT when a handler runs past handlerTimeout', async () => {
    const errors = record('fastcgi:server:request:error') as Record<string, unknown>[];
    const { connect } = await server({ handlerTimeout: 50 });
    const peer = await connect();
    const response = await peer.request({ params: params('/hang') });
    expect(parseCgiResponse(response.stdout).status).toBe(503);
    expect(errors[0]).toMatchObject({ code: 'FCGI_ERR_HANDLER_TIMEOUT' });
  });

  it('request:abort and a finish with the abort reason when the web server sends ABORT_REQUEST', async () => {
    const aborts = record('fastcgi:server:request:abort') as Record<string, unknown>[];
    const finishes = record('fastcgi:server:request:finish') as Record<string, unknown>[];
    const { connect } = await server();
    const peer = await connect();
    await peer.send(buildRequest({ requestId: 2, params: params('/hang'), keepConn: true }));
    await waitFor(() => peer.bytesSent > 0, 1000, 'sent');
    await delay(50);
    await peer.abort(2);
    await peer.waitForEnd(2);
    await waitFor(() => finishes.length === 1, 2000, 'finish');
    expect(aborts[0]).toMatchObject({ requestId: 2, reason: 'abort-request' });
    expect(finishes[0]).toMatchObject({
      requestId: 2,
      abortReason: 'abort-request',
      protocolStatus: 'REQUEST_COMPLETE',
    });
  });

  it('a finish with protocolStatus null when the connection closes under a request', async () => {
    const finishes = record('fastcgi:server:request:finish') as Record<string, unknown>[];
    const { connect } = await server();
    const peer = await connect();
    await peer.send(buildRequest({ params: params('/hang') }));
    await delay(50);
    peer.destroy();
    await waitFor(() => finishes.length === 1, 2000, 'finish');
    expect(finishes[0]).toMatchObject({ protocolStatus: null, abortReason: 'connection-closed', status: 0 });
  });

  it('request:reject for a BEGIN_REQUEST refused with OVERLOADED, and for an unknown role', async () => {
    const rejects = record('fastcgi:server:request:reject') as Record<string, unknown>[];
    const { connect } = await server({ maxRequestsPerConnection: 1 });
    const peer = await connect();
    await peer.send(buildRequest({ requestId: 1, params: params('/hang'), keepConn: true }));
    await peer.send(buildRequest({ requestId: 2, params: params('/x'), keepConn: true }));
    const refused = await peer.waitForEnd(2);
    expect(refused.protocolStatus).toBe(2);
    await peer.send(buildRequest({ requestId: 3, role: 9, params: params('/x'), keepConn: true }));
    await peer.waitForEnd(3);
    expect(rejects).toMatchObject([
      { requestId: 2, role: 'responder', protocolStatus: 'OVERLOADED' },
      { requestId: 3, role: 9, protocolStatus: 'UNKNOWN_ROLE' },
    ]);
  });

  it('connection:error for a refused peer, with its cause', async () => {
    const errors = record('fastcgi:server:connection:error') as Record<string, unknown>[];
    const { connect } = await server({ webServerAddrs: '10.9.9.9' });
    const peer = await connect();
    await peer.closed;
    await waitFor(() => errors.length === 1, 2000, 'error');
    expect(errors[0]).toMatchObject({ cause: 'webServerAddrs' });
    expect((errors[0]!.error as { code: string }).code).toBe('FCGI_ERR_PEER_NOT_ALLOWED');
  });

  // Subscribes to tracing:fastcgi:server:handler for this test; the events in order, start naming REQUEST_URI.
  function traceServerHandler(): string[] {
    const events: string[] = [];
    const handlers = {
      start: (context: object) =>
        events.push(`start ${(context as { params: Record<string, string> }).params.REQUEST_URI}`),
      end: () => events.push('end'),
      asyncStart: () => events.push('asyncStart'),
      asyncEnd: () => events.push('asyncEnd'),
      error: () => events.push('error'),
    };
    tracingChannels.serverHandler.subscribe(handlers);
    undo.push(() => tracingChannels.serverHandler.unsubscribe(handlers));
    return events;
  }

  it('tracing:fastcgi:server:handler runs start/end around the handler and asyncEnd when its promise settles', async () => {
    const events = traceServerHandler();
    const s = createServer(quiet, async (_req, res) => {
      await delay(5);
      res.end('ok');
    });
    const { connect } = await listenForTest(s);
    const peer = await connect();
    await peer.request({ params: params('/traced') });
    await waitFor(() => events.includes('asyncEnd'), 2000, 'asyncEnd');
    expect(events).toEqual(['start /traced', 'end', 'asyncStart', 'asyncEnd']);
  });

  it('tracing:fastcgi:server:handler also wraps a fetch handler (serve)', async () => {
    const events = traceServerHandler();
    const s = serve(
      async () => {
        await delay(5);
        return new Response('ok');
      },
      { ...quiet, overrideGlobalObjects: false },
    );
    const { connect } = await listenForTest(s);
    const peer = await connect();
    await peer.request({ params: params('/fetch-traced') });
    await waitFor(() => events.includes('asyncEnd'), 2000, 'asyncEnd');
    expect(events).toEqual(['start /fetch-traced', 'end', 'asyncStart', 'asyncEnd']);
  });
});

describe('client channels', () => {
  it('request:create, request:headers and request:finish share the request handle and carry the documented fields', async () => {
    const creates = record('fastcgi:client:request:create') as Record<string, unknown>[];
    const headers = record('fastcgi:client:request:headers') as Record<string, unknown>[];
    const finishes = record('fastcgi:client:request:finish') as Record<string, unknown>[];
    const connects = record('fastcgi:client:connect') as Record<string, unknown>[];
    const connected = record('fastcgi:client:connected') as Record<string, unknown>[];
    const { port } = await server();
    const client = createClient({ address: { host: '127.0.0.1', port } });
    const p = params('/missing');
    const response = await client.request({ params: p, body: 'abc' });
    expect(await response.text()).toBe('got abc');
    await waitFor(() => finishes.length === 1, 2000, 'finish');
    await client.close();
    expect(creates[0]).toMatchObject({ role: 'responder', params: p });
    expect(headers[0]).toMatchObject({ status: 404, requestId: 1 });
    expect((headers[0]!.headers as Record<string, unknown>)['content-length']).toBe('7');
    expect(finishes[0]).toMatchObject({ appStatus: 0, protocolStatus: 'REQUEST_COMPLETE' });
    expect(finishes[0]!.bytesIn).toBeGreaterThan(0);
    expect(headers[0]!.request).toBe(creates[0]!.request);
    expect(finishes[0]!.request).toBe(creates[0]!.request);
    expect(connects[0]).toMatchObject({ target: `127.0.0.1:${port}` });
    expect(connected).toHaveLength(1);
  });

  it('connectError and request:error when the backend is not there', async () => {
    const connectErrors = record('fastcgi:client:connectError') as Record<string, unknown>[];
    const errors = record('fastcgi:client:request:error') as Record<string, unknown>[];
    const client = createClient({ address: { path: '/nonexistent/fastcgi-engine-test.sock' }, connectTimeout: 1000 });
    await expect(client.request({ params: params('/x') })).rejects.toMatchObject({ code: 'FCGI_ERR_CONNECT' });
    await client.close();
    expect(connectErrors[0]).toMatchObject({ target: 'unix:/nonexistent/fastcgi-engine-test.sock' });
    expect((connectErrors[0]!.error as { code: string }).code).toBe('FCGI_ERR_CONNECT');
    expect(errors[0]).toMatchObject({ code: 'FCGI_ERR_CONNECT', role: 'responder' });
  });

  it('tracing:fastcgi:client:request wraps client.request() until its promise settles', async () => {
    const events: string[] = [];
    const handlers = {
      start: (context: object) => events.push(`start ${(context as { role: string }).role}`),
      end: () => events.push('end'),
      asyncStart: (context: object) => events.push(`asyncStart ${typeof (context as { result?: unknown }).result}`),
      asyncEnd: () => events.push('asyncEnd'),
      error: () => events.push('error'),
    };
    tracingChannels.clientRequest.subscribe(handlers);
    undo.push(() => tracingChannels.clientRequest.unsubscribe(handlers));
    const { port } = await server();
    const client = createClient({ address: { host: '127.0.0.1', port } });
    await (await client.request({ params: params('/x'), role: 'responder' })).text();
    await client.close();
    expect(events).toEqual(['start responder', 'end', 'asyncStart object', 'asyncEnd']);
  });
});

describe('with no subscribers', () => {
  it('builds no message on any channel (server, client, refusals, errors)', async () => {
    for (const channel of Object.values(channels)) expect(channel.hasSubscribers).toBe(false);
    const spies = Object.keys(build).map((name) => vi.spyOn(build, name as keyof typeof build));
    const { port, connect } = await server({ maxRequestsPerConnection: 1 });
    const peer = await connect();
    await peer.request({ params: params('/x'), stdin: 'a', keepConn: true });
    await peer.request({ params: params('/boom'), keepConn: true });
    await peer.send(buildRequest({ requestId: 4, params: params('/hang'), keepConn: true }));
    await peer.send(buildRequest({ requestId: 5, role: Role.RESPONDER, params: params('/x'), keepConn: true }));
    await peer.waitForEnd(5);
    await peer.abort(4);
    await peer.waitForEnd(4);
    const client = createClient({ address: { host: '127.0.0.1', port } });
    await (await client.request({ params: params('/x') })).text();
    await client.close();
    const missing = createClient({ address: { path: '/nonexistent/fastcgi-engine-test.sock' } });
    await expect(missing.request({ params: params('/x') })).rejects.toThrow();
    await missing.close();
    peer.destroy();
    await peer.closed;
    await delay(20);
    for (const spy of spies) expect(spy).not.toHaveBeenCalled();
  });

  it('the spies do see the builders when someone subscribes (the test above can fail)', async () => {
    const spy = vi.spyOn(build, 'serverRequestFinish');
    record('fastcgi:server:request:finish');
    const { connect } = await server();
    const peer = await connect();
    await peer.request({ params: params('/x') });
    await waitFor(() => spy.mock.calls.length === 1, 2000, 'builder called');
  });
});
