// node-fastcgi 2.x programs run through fastcgi-engine/node-fastcgi with only the require line changed.
import { describe, expect, it } from 'vitest';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import * as fcgi from '../../src/node-fastcgi';
import { TestPeer, buildRequest, parseCgiResponse } from '../helpers/fcgi-peer';
import { onTestFinished } from 'vitest';
import express from 'express';

async function listen(server: fcgi.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => {
    // Real node-fastcgi (compared against below) has no closeAllConnections.
    (server as Partial<fcgi.Server>).closeAllConnections?.();
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
    const get = parseCgiResponse(
      (await (await TestPeer.connect({ port })).request({ params: { REQUEST_METHOD: 'GET' } })).stdout,
    );
    expect([get.status, get.header('content-type'), get.body.toString()]).toEqual([200, 'text/plain', "It's working"]);
    const post = parseCgiResponse(
      (await (await TestPeer.connect({ port })).request({ params: { REQUEST_METHOD: 'POST' } })).stdout,
    );
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
    const auth = parseCgiResponse(
      (await (await TestPeer.connect({ port })).request({ role: 2, params: { REMOTE_USER: 'ann' } })).stdout,
    );
    expect([auth.status, auth.header('variable-uid')]).toEqual([200, '1000']);
    const filtered = parseCgiResponse(
      (await (await TestPeer.connect({ port })).request({ role: 3, params: { FCGI_DATA_LENGTH: '4' }, data: 'data' }))
        .stdout,
    );
    expect(filtered.body.toString()).toBe('DATA');
    expect(calls).toEqual(['responder /s', 'authorizer ann', 'filter']);
    const values = await (
      await TestPeer.connect({ port })
    ).getValues(['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS', 'APP_NAME', 'NOPE']);
    expect(Object.fromEntries(values)).toEqual({
      FCGI_MAX_CONNS: '7',
      FCGI_MAX_REQS: '3',
      FCGI_MPXS_CONNS: '0',
      APP_NAME: 'legacy',
    });
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

  it("keeps node-fastcgi's req.cgiParams, req.data, res.stderr and res.stdout under Express's prototype swap", async () => {
    const app = express();
    app.get('/x', (req, res) => {
      const legacy = req as unknown as { cgiParams: Record<string, string>; data: NodeJS.ReadableStream };
      const legacyRes = res as unknown as { stderr: NodeJS.WritableStream; stdout: NodeJS.WritableStream };
      legacyRes.stderr.write('logged');
      res.send(`${legacy.cgiParams.SCRIPT_FILENAME} ${typeof legacy.data.on} ${typeof legacyRes.stdout.write}`);
    });
    const port = await listen(fcgi.createServer(app));
    const response = await (
      await TestPeer.connect({ port })
    ).request({ params: { REQUEST_METHOD: 'GET', REQUEST_URI: '/x', SCRIPT_FILENAME: '/srv/x.js' } });
    expect(parseCgiResponse(response.stdout).body.toString()).toBe('/srv/x.js function function');
    expect(response.stderr.toString()).toBe('logged');
  });

  it('says whether it runs as a FastCGI service and listens on fd 0 with no arguments', () => {
    expect(typeof fcgi.isService()).toBe('boolean');
    expect(fcgi.IncomingMessage).toBe(fcgi.Request);
    expect(fcgi.ServerResponse).toBe(fcgi.Response);
  });
});

describe('node-fastcgi drop-in shows an app what node-fastcgi 2.0 showed it', () => {
  interface Seen {
    url: string | undefined;
    method: string | undefined;
    headers: Record<string, unknown>;
    rawHeaders: string[];
    params: Record<string, string>;
    cgiParams: Record<string, string>;
    // What an app can tell about the params object beyond its entries.
    shape: { prototype: string; sameAsSocketParams: boolean; hasOwnProperty: string };
    body: string;
  }

  // The same app on real node-fastcgi and on the drop-in, the same request bytes to both.
  async function seenBy(create: typeof fcgi.createServer, request: Buffer): Promise<Seen> {
    let seen: Seen | undefined;
    const server = create((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const r = req as unknown as { cgiParams: Record<string, string>; socket: { params: Record<string, string> } };
        seen = {
          url: req.url,
          method: req.method,
          headers: { ...req.headers },
          rawHeaders: [...req.rawHeaders],
          params: { ...r.socket.params },
          cgiParams: { ...r.cgiParams },
          shape: {
            prototype: Object.getPrototypeOf(r.cgiParams) === Object.prototype ? 'Object.prototype' : 'other',
            sameAsSocketParams: r.socket.params === r.cgiParams,
            hasOwnProperty: typeof r.cgiParams.hasOwnProperty,
          },
          body: Buffer.concat(chunks).toString(),
        };
        res.end('ok');
      });
    }) as fcgi.Server;
    const port = await listen(server);
    const peer = await TestPeer.connect({ port });
    await peer.send(request);
    await peer.waitForEnd(1);
    peer.destroy();
    return seen!;
  }

  it('UTF-8 params (a header value, PATH_INFO) and HTTP_CONTENT-LENGTH beside CONTENT_LENGTH', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const original = require('node-fastcgi') as { createServer: typeof fcgi.createServer };
    const request = buildRequest({
      params: [
        ['REQUEST_METHOD', 'POST'],
        ['REQUEST_URI', '/caf%C3%A9?q=1'],
        ['PATH_INFO', Buffer.from('/café ✓')],
        ['SCRIPT_NAME', '/index'],
        ['QUERY_STRING', 'q=1'],
        ['SERVER_PROTOCOL', 'HTTP/1.1'],
        ['CONTENT_LENGTH', '10'],
        ['CONTENT_TYPE', 'text/plain'],
        ['HTTP_CONTENT-LENGTH', '10'],
        ['HTTP_CONTENT-TYPE', 'text/plain'],
        ['HTTP_X_USER', Buffer.from('Jürgen')],
        ['HTTP_ACCEPT_LANGUAGE', 'de-DE'],
        ['HTTP_COOKIE', 'a=1; b=2'],
        ['HTTP_HOST', 'example.test'],
      ],
      stdin: '0123456789',
    });
    const expected = await seenBy(original.createServer, request);
    const actual = await seenBy(fcgi.createServer, request);
    expect(expected.headers['x-user']).toBe('Jürgen');
    expect(expected.params.PATH_INFO).toBe('/café ✓');
    expect(expected.headers['content-length']).toBe('10');
    expect(actual).toEqual(expected);
  });

  it('gives the params object node-fastcgi gave: Object.prototype behind it, a __proto__ param dropped', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const original = require('node-fastcgi') as { createServer: typeof fcgi.createServer };
    const request = buildRequest({
      params: [
        ['REQUEST_METHOD', 'GET'],
        ['REQUEST_URI', '/'],
        ['__proto__', 'x'],
        ['hasOwnProperty', 'y'],
        ['HTTP_HOST', 'example.test'],
      ],
    });
    const expected = await seenBy(original.createServer, request);
    const actual = await seenBy(fcgi.createServer, request);
    expect(expected.shape).toEqual({
      prototype: 'Object.prototype',
      sameAsSocketParams: true,
      hasOwnProperty: 'string',
    });
    expect(actual).toEqual(expected);
  });

  it('keeps working under Express with a body parser', async () => {
    const app = express();
    app.use(express.text());
    app.post('/*', (req, res) => {
      res.json({
        user: req.headers['x-user'],
        length: req.headers['content-length'],
        body: req.body as string,
        path: (req as unknown as { cgiParams: Record<string, string> }).cgiParams.PATH_INFO,
      });
    });
    const server = fcgi.createServer(app);
    const port = await listen(server);
    const response = await (
      await TestPeer.connect({ port })
    ).request({
      params: [
        ['REQUEST_METHOD', 'POST'],
        ['REQUEST_URI', '/x'],
        ['PATH_INFO', Buffer.from('/café')],
        ['CONTENT_LENGTH', '10'],
        ['CONTENT_TYPE', 'text/plain'],
        ['HTTP_CONTENT-LENGTH', '10'],
        ['HTTP_X_USER', Buffer.from('Jürgen')],
      ],
      stdin: '0123456789',
    });
    const parsed = parseCgiResponse(response.stdout);
    expect(parsed.status).toBe(200);
    expect(JSON.parse(parsed.body.toString())).toEqual({
      user: 'Jürgen',
      length: '10',
      body: '0123456789',
      path: '/café',
    });
  });
});
