import { describe, expect, it } from 'vitest';
import express from 'express';
import Koa from 'koa';
import { createHash } from 'node:crypto';
import { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from '../../src/server/server';
import { parseCgiResponse } from '../helpers/fcgi-peer';
import { recordingLogger, start } from './harness';

const nginxParams = (extra: Record<string, string> = {}): Record<string, string> => ({
  GATEWAY_INTERFACE: 'CGI/1.1',
  SERVER_SOFTWARE: 'nginx/1.22.1',
  REQUEST_METHOD: 'GET',
  REQUEST_URI: '/hello/world?x=1&y=%C3%A9',
  SCRIPT_NAME: '/hello/world',
  QUERY_STRING: 'x=1&y=%C3%A9',
  SERVER_PROTOCOL: 'HTTP/1.1',
  REQUEST_SCHEME: 'http',
  REMOTE_ADDR: '192.0.2.7',
  REMOTE_PORT: '51234',
  SERVER_ADDR: '127.0.0.1',
  SERVER_PORT: '8080',
  SERVER_NAME: 'example.test',
  HTTP_HOST: 'example.test:8080',
  HTTP_USER_AGENT: 'curl/8.0',
  HTTP_ACCEPT: '*/*',
  ...extra,
});

describe('http.IncomingMessage from CGI params', () => {
  it('takes CONTENT_LENGTH / CONTENT_TYPE over HTTP_CONTENT-LENGTH / HTTP_CONTENT-TYPE in any spelling, so body parsers see one length', async () => {
    let headers: Record<string, unknown> = {};
    const { peer } = await start(
      createServer((req, res) => {
        headers = { ...req.headers };
        req.resume();
        req.on('end', () => res.end());
      }),
    );
    const p = await peer();
    await p.request({
      params: [
        ['REQUEST_METHOD', 'POST'],
        ['REQUEST_URI', '/'],
        ['CONTENT_LENGTH', '10'],
        ['CONTENT_TYPE', 'text/plain'],
        ['HTTP_CONTENT-LENGTH', '10'],
        ['HTTP_Content-Type', 'text/plain'],
      ],
      stdin: '0123456789',
    });
    expect(headers['content-length']).toBe('10');
    expect(headers['content-type']).toBe('text/plain');
  });

  it('takes httpVersion from SERVER_PROTOCOL (HTTP/1.1 when absent or not HTTP/x.y)', async () => {
    const seen: string[] = [];
    const { peer } = await start(
      createServer((req, res) => {
        seen.push(`${req.httpVersion} ${req.httpVersionMajor} ${req.httpVersionMinor}`);
        res.end();
      }),
    );
    for (const protocol of ['HTTP/1.0', 'HTTP/2.0', 'http/1.1', 'HTTP/1.1', 'INCLUDED', undefined]) {
      const params: [string, string][] = [['REQUEST_URI', '/']];
      if (protocol !== undefined) params.push(['SERVER_PROTOCOL', protocol]);
      await (await peer()).request({ params });
    }
    expect(seen).toEqual(['1.0 1 0', '2.0 2 0', '1.1 1 1', '1.1 1 1', '1.1 1 1', '1.1 1 1']);
  });

  it('builds method, url, httpVersion, headers and socket addresses', async () => {
    let seen: Record<string, unknown> = {};
    const { peer } = await start(
      createServer((req, res) => {
        expect(req).toBeInstanceOf(IncomingMessage);
        expect(res).toBeInstanceOf(ServerResponse);
        seen = {
          method: req.method,
          url: req.url,
          httpVersion: req.httpVersion,
          headers: { ...req.headers },
          rawHeaders: req.rawHeaders,
          remoteAddress: req.socket.remoteAddress,
          remotePort: req.socket.remotePort,
          localPort: req.socket.localPort,
        };
        res.end();
      }),
    );
    const p = await peer();
    await p.request({
      params: [
        ...Object.entries(nginxParams()),
        ['CONTENT_TYPE', 'text/plain'],
        ['CONTENT_LENGTH', '0'],
        ['HTTP_CONTENT_TYPE', 'ignored/dup'],
        ['HTTP_COOKIE', 'a=1'],
        ['HTTP_COOKIE', 'b=2'],
        ['HTTP_X_DUP', 'one'],
        ['HTTP_X_DUP', 'two'],
      ],
    });
    expect(seen).toEqual({
      method: 'GET',
      url: '/hello/world?x=1&y=%C3%A9',
      httpVersion: '1.1',
      headers: {
        host: 'example.test:8080',
        'user-agent': 'curl/8.0',
        accept: '*/*',
        'content-type': 'text/plain',
        'content-length': '0',
        cookie: 'a=1; b=2',
        'x-dup': 'one, two',
      },
      rawHeaders: [
        'Host',
        'example.test:8080',
        'User-Agent',
        'curl/8.0',
        'Accept',
        '*/*',
        'Content-Type',
        'text/plain',
        'Content-Length',
        '0',
        'Cookie',
        'a=1',
        'Cookie',
        'b=2',
        'X-Dup',
        'one',
        'X-Dup',
        'two',
      ],
      remoteAddress: '192.0.2.7',
      remotePort: 51234,
      localPort: 8080,
    });
  });

  it('falls back to SCRIPT_NAME + PATH_INFO + ?QUERY_STRING without REQUEST_URI, and drops non-numeric CONTENT_LENGTH', async () => {
    const urls: string[] = [];
    const lengths: (string | undefined)[] = [];
    const { peer } = await start(
      createServer((req, res) => {
        urls.push(req.url!);
        lengths.push(req.headers['content-length']);
        res.end();
      }),
    );
    const p = await peer();
    await p.request({ params: { SCRIPT_NAME: '/app', PATH_INFO: '/a/b', QUERY_STRING: 'q=1', CONTENT_LENGTH: '' } });
    const q = await peer();
    await q.request({ params: { SCRIPT_NAME: '', PATH_INFO: '', CONTENT_LENGTH: '-1' } });
    expect(urls).toEqual(['/app/a/b?q=1', '/']);
    expect(lengths).toEqual([undefined, undefined]);
  });

  it('never copies params into process.env (httpoxy)', async () => {
    const before = process.env.HTTP_PROXY;
    const { peer } = await start(createServer((_req, res) => res.end(String(process.env.HTTP_PROXY))));
    const response = await (
      await peer()
    ).request({ params: { REQUEST_METHOD: 'GET', HTTP_PROXY: 'http://evil.test' } });
    expect(parseCgiResponse(response.stdout).body.toString()).toBe(String(before));
    expect(process.env.HTTP_PROXY).toBe(before);
  });

  it('streams a POST body through req with the bytes intact', async () => {
    const body = Buffer.alloc(300_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7919) & 0xff;
    const { peer } = await start(
      createServer((req, res) => {
        const hash = createHash('sha256');
        req.on('data', (c: Buffer) => hash.update(c));
        req.on('end', () => res.end(hash.digest('hex')));
      }),
    );
    const response = await (
      await peer()
    ).request({ params: { REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(body.length) }, stdin: body });
    expect(parseCgiResponse(response.stdout).body.toString()).toBe(createHash('sha256').update(body).digest('hex'));
  });
});

describe('http.ServerResponse as CGI output', () => {
  it('writes a Status line with a reason, no Date/Connection, and Content-Length only when exact', async () => {
    const { peer } = await start(
      createServer((req, res) => {
        if (req.url === '/known') {
          res.statusCode = 201;
          res.end('created');
        } else {
          res.writeHead(404, { 'Content-Type': 'text/plain' });
          res.write('not ');
          res.end('found');
        }
      }),
    );
    const known = parseCgiResponse((await (await peer()).request({ params: { REQUEST_URI: '/known' } })).stdout);
    expect([known.status, known.reason, known.header('content-length'), known.body.toString()]).toEqual([
      201,
      'Created',
      '7',
      'created',
    ]);
    expect(known.header('date')).toBeUndefined();
    expect(known.header('connection')).toBeUndefined();
    const streamed = (await (await peer()).request({ params: { REQUEST_URI: '/streamed' } })).stdout.toString('latin1');
    expect(streamed.startsWith('Status: 404 Not Found\r\n')).toBe(true);
    expect(streamed).not.toMatch(/content-length|transfer-encoding/i);
    expect(parseCgiResponse(Buffer.from(streamed, 'latin1')).body.toString()).toBe('not found');
  });

  it('never sends Transfer-Encoding or chunked framing, even when the handler sets it', async () => {
    const { peer } = await start(
      createServer((_req, res) => {
        res.setHeader('Transfer-Encoding', 'chunked');
        res.write('a');
        res.end('b');
      }),
    );
    const text = (await (await peer()).request({})).stdout.toString('latin1');
    expect(text).not.toMatch(/transfer-encoding/i);
    expect(parseCgiResponse(Buffer.from(text, 'latin1')).body.toString()).toBe('ab');
  });

  it('keeps duplicate Set-Cookie headers and sends no body for HEAD', async () => {
    const { peer } = await start(
      createServer((_req, res) => {
        res.setHeader('Set-Cookie', ['a=1', 'b=2']);
        res.end('body');
      }),
    );
    const get = parseCgiResponse((await (await peer()).request({ params: { REQUEST_METHOD: 'GET' } })).stdout);
    expect(get.headers.filter(([n]) => n.toLowerCase() === 'set-cookie').map(([, v]) => v)).toEqual(['a=1', 'b=2']);
    const head = parseCgiResponse((await (await peer()).request({ params: { REQUEST_METHOD: 'HEAD' } })).stdout);
    expect(head.body.length).toBe(0);
  });

  it('carries its FastCGI methods on the instance, so a prototype swap (Express) keeps them', async () => {
    const names = [
      '_storeHeader',
      '_finish',
      'setVariable',
      'allow',
      'deny',
      'writeContinue',
      'writeProcessing',
      'writeEarlyHints',
    ];
    let own: Record<string, boolean> = {};
    const { peer } = await start(
      createServer((_req, res) => {
        const proto = Object.getPrototypeOf(res) as Record<string, unknown>;
        own = Object.fromEntries(
          names.map((name) => [
            name,
            Object.hasOwn(res, name) && (res as unknown as Record<string, unknown>)[name] === proto[name],
          ]),
        );
        // What Express does to every response: its own prototype, inheriting from http.ServerResponse.
        Object.setPrototypeOf(res, Object.create(ServerResponse.prototype) as object);
        res.statusCode = 201;
        res.end('swapped');
      }),
    );
    const answer = parseCgiResponse((await (await peer()).request({})).stdout);
    expect(own).toEqual(Object.fromEntries(names.map((name) => [name, true])));
    // Node's own _storeHeader would have written an HTTP status line and Date / Connection headers.
    expect([answer.status, answer.header('date'), answer.body.toString()]).toEqual([201, undefined, 'swapped']);
  });

  it('answers 500 and logs the stack when a handler throws, and keeps serving', async () => {
    const logger = recordingLogger();
    const { peer } = await start(
      createServer({ logger }, (req, res) => {
        if (req.url === '/boom') throw new Error('kaboom');
        res.end('fine');
      }),
    );
    const boom = await (await peer()).request({ params: { REQUEST_URI: '/boom' } });
    expect(parseCgiResponse(boom.stdout).status).toBe(500);
    expect(boom.stderr.toString()).toMatch(/Error: kaboom\n\s+at /);
    expect(logger.messages.some((m) => m.startsWith('error: ') && m.includes('kaboom'))).toBe(true);
    const fine = await (await peer()).request({ params: { REQUEST_URI: '/fine' } });
    expect(parseCgiResponse(fine.stdout).body.toString()).toBe('fine');
  });
});

describe('frameworks', () => {
  it('serves an unmodified Express app: routing, params, query, json body, req.ip, cookies, redirects', async () => {
    const app = express();
    app.use(express.json());
    app.get('/users/:id', (req, res) => {
      res.json({ id: req.params.id, q: req.query.q, ip: req.ip, host: req.hostname, protocol: req.protocol });
    });
    app.post('/echo', (req, res) => {
      res.cookie('seen', '1').status(201).json(req.body);
    });
    app.get('/go', (_req, res) => res.redirect('/users/1'));
    const { peer } = await start(createServer(app));
    const get = parseCgiResponse(
      (await (await peer()).request({ params: nginxParams({ REQUEST_URI: '/users/42?q=hi', HTTPS: 'on' }) })).stdout,
    );
    expect(get.status).toBe(200);
    expect(JSON.parse(get.body.toString())).toEqual({
      id: '42',
      q: 'hi',
      ip: '192.0.2.7',
      host: 'example.test',
      protocol: 'https',
    });
    const json = Buffer.from(JSON.stringify({ a: [1, 2], b: 'é' }));
    const post = parseCgiResponse(
      (
        await (
          await peer()
        ).request({
          params: nginxParams({
            REQUEST_METHOD: 'POST',
            REQUEST_URI: '/echo',
            CONTENT_TYPE: 'application/json',
            CONTENT_LENGTH: String(json.length),
          }),
          stdin: json,
        })
      ).stdout,
    );
    expect(post.status).toBe(201);
    expect(post.header('set-cookie')).toMatch(/^seen=1/);
    expect(JSON.parse(post.body.toString())).toEqual({ a: [1, 2], b: 'é' });
    const go = parseCgiResponse((await (await peer()).request({ params: nginxParams({ REQUEST_URI: '/go' }) })).stdout);
    expect([go.status, go.reason, go.header('location')]).toEqual([302, 'Found', '/users/1']);
  });

  it('serves an unmodified Koa app, including an async error turned into a 500', async () => {
    const app = new Koa();
    app.silent = true;
    app.use(async (ctx) => {
      if (ctx.path === '/fail') throw new Error('koa failure');
      ctx.set('X-Path', ctx.path);
      ctx.body = { method: ctx.method, query: ctx.query };
    });
    const { peer } = await start(createServer(app.callback()));
    const ok = parseCgiResponse(
      (await (await peer()).request({ params: nginxParams({ REQUEST_URI: '/k?z=9' }) })).stdout,
    );
    expect([ok.status, ok.header('x-path')]).toEqual([200, '/k']);
    expect(JSON.parse(ok.body.toString())).toEqual({ method: 'GET', query: { z: '9' } });
    const fail = parseCgiResponse(
      (await (await peer()).request({ params: nginxParams({ REQUEST_URI: '/fail' }) })).stdout,
    );
    expect(fail.status).toBe(500);
  });
});
