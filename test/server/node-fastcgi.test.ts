// node-fastcgi 2.x programs run through fastcgi-engine/node-fastcgi with only the require line changed.
import { describe, expect, it } from 'vitest';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import * as fcgi from '../../src/node-fastcgi';
import { TestPeer, parseCgiResponse } from '../helpers/fcgi-peer';
import { onTestFinished } from 'vitest';
import express from 'express';

async function listen(server: fcgi.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

describe('node-fastcgi drop-in', () => {
  it("runs node-fastcgi's README example unchanged", async () => {
    // From node-fastcgi's README, with `require('node-fastcgi')` replaced and .listen() given an address.
    const server = fcgi.createServer(function (req, res) {
      if (req.method === 'GET') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end("It's working");
      } else {
        res.writeHead(501);
        res.end();
      }
    });
    const port = await listen(server);
    const get = parseCgiResponse((await (await TestPeer.connect({ port })).request({ params: { REQUEST_METHOD: 'GET' } })).stdout);
    expect([get.status, get.header('content-type'), get.body.toString()]).toEqual([200, 'text/plain', "It's working"]);
    const post = parseCgiResponse((await (await TestPeer.connect({ port })).request({ params: { REQUEST_METHOD: 'POST' } })).stdout);
    expect([post.status, post.reason]).toEqual([501, 'Not Implemented']);
  });

  it('routes responder, authorizer and filter requests to their callbacks, with the config in any position', async () => {
    const calls: string[] = [];
    const server = fcgi.createServer(
      (req, res) => {
        calls.push(`responder ${req.socket.params.SCRIPT_NAME}`);
        res.end('r');
      },
      (req, res) => {
        calls.push(`authorizer ${req.cgiParams.REMOTE_USER}`);
        (res as fcgi.AuthorizerResponse).setVariable('UID', '1000');
        (res as fcgi.AuthorizerResponse).allow();
      },
      (req, res) => {
        const chunks: Buffer[] = [];

        req.socket.dataStream.on('data', (c: Buffer) => chunks.push(c));
        req.socket.dataStream.on('end', () => res.end(Buffer.concat(chunks).toString().toUpperCase()));
        calls.push('filter');
      },
      { maxConns: 7, maxReqs: 3, multiplex: false, valueMap: { APP_NAME: 'appName' }, appName: 'legacy' },
    );
    const port = await listen(server);
    await (await TestPeer.connect({ port })).request({ role: 1, params: { SCRIPT_NAME: '/s' } });
    const auth = parseCgiResponse((await (await TestPeer.connect({ port })).request({ role: 2, params: { REMOTE_USER: 'ann' } })).stdout);
    expect([auth.status, auth.header('variable-uid')]).toEqual([200, '1000']);
    const filtered = parseCgiResponse((await (await TestPeer.connect({ port })).request({ role: 3, params: { FCGI_DATA_LENGTH: '4' }, data: 'data' })).stdout);
    expect(filtered.body.toString()).toBe('DATA');
    expect(calls).toEqual(['responder /s', 'authorizer ann', 'filter']);
    const values = await (await TestPeer.connect({ port })).getValues(['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS', 'APP_NAME', 'NOPE']);
    expect(Object.fromEntries(values)).toEqual({ FCGI_MAX_CONNS: '7', FCGI_MAX_REQS: '3', FCGI_MPXS_CONNS: '0', APP_NAME: 'legacy' });
  });

  it('enforces multiplex:false, which node-fastcgi only advertised', async () => {
    const server = fcgi.createServer((_req, res) => setTimeout(() => res.end('slow'), 50), { multiplex: false });
    const port = await listen(server);
    const peer = await TestPeer.connect({ port });
    const first = peer.request({ requestId: 1, keepConn: true, params: { REQUEST_URI: '/1' } });
    const second = peer.request({ requestId: 2, keepConn: true, params: { REQUEST_URI: '/2' } });
    expect((await second).protocolStatus).toBe(1); // CANT_MPX_CONN
    expect(parseCgiResponse((await first).stdout).body.toString()).toBe('slow');
  });

  it('survives an unknown record type, which crashed node-fastcgi', async () => {
    const server = fcgi.createServer((_req, res) => res.end('alive'));
    const port = await listen(server);
    const peer = await TestPeer.connect({ port });
    await peer.send(Buffer.from([1, 12, 0, 0, 0, 0, 0, 0]));
    const response = await peer.request({ params: { REQUEST_URI: '/' } });
    expect(peer.unknownTypeReplies).toEqual([12]);
    expect(parseCgiResponse(response.stdout).body.toString()).toBe('alive');
  });

  it("keeps node-fastcgi's req.cgiParams, req.data and res.stderr under Express's prototype swap", async () => {
    const app = express();
    app.get('/x', (req, res) => {
      const legacy = req as unknown as { cgiParams: Record<string, string>; data: NodeJS.ReadableStream };
      (res as unknown as { stderr: NodeJS.WritableStream }).stderr.write('logged');
      res.send(`${legacy.cgiParams.SCRIPT_FILENAME} ${typeof legacy.data.on}`);
    });
    const port = await listen(fcgi.createServer(app));
    const response = await (await TestPeer.connect({ port })).request({ params: { REQUEST_METHOD: 'GET', REQUEST_URI: '/x', SCRIPT_FILENAME: '/srv/x.js' } });
    expect(parseCgiResponse(response.stdout).body.toString()).toBe('/srv/x.js function');
    expect(response.stderr.toString()).toBe('logged');
  });

  it('says whether it runs as a FastCGI service and listens on fd 0 with no arguments', () => {
    expect(typeof fcgi.isService()).toBe('boolean');
    expect(fcgi.IncomingMessage).toBe(fcgi.Request);
    expect(fcgi.ServerResponse).toBe(fcgi.Response);
  });
});
