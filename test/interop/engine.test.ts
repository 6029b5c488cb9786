// Engine behaviour the interop suite depends on, checked without a web server (so it runs in the default
// `npm test`): the `mount` option (SCRIPT_NAME / PATH_INFO as each real server sends them, taken from the
// interop runs), and the fixes the interop runs led to: CONTENT_TYPE "" is no header, HTTP_X_PART_2 is X-Part-2,
// and server.close() does not wait closeTimeout for a peer that pools idle connections without reading them.
import * as net from 'node:net';
import { once } from 'node:events';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Decoder } from '../../src/wire/decoder';
import type { Params } from '../../src/wire/params';
import { encodeBeginRequest, encodeStream } from '../../src/wire/records';
import { encodeParams } from '../../src/wire/pairs';
import { Flag, RecordType, Role } from '../../src/wire/constants';
import { headersFromParams, resolveRequestPath } from '../../src/server/http-message';
import { resolveMount } from '../../src/server/options';
import { createServer } from '../../src/server/server';
import { InvalidArgumentError } from '../../src/errors';

/** Params as the decoder makes them; values are byte strings (latin1), as web servers send bytes. */
function paramsOf(pairs: Record<string, string> | [string, string][]): Params {
  let out: Params | undefined;
  const decoder = new Decoder({
    onRecord() {},
    onParams: (_id, params) => (out = params),
    onError: (error) => {
      throw error;
    },
  });
  const encoded = (Array.isArray(pairs) ? pairs : Object.entries(pairs)).map(([k, v]): [Buffer, Buffer] => [
    Buffer.from(k, 'latin1'),
    Buffer.from(v, 'latin1'),
  ]);
  decoder.push(Buffer.concat([encodeBeginRequest(1, Role.RESPONDER), encodeParams(1, encoded)]));
  if (out === undefined) throw new Error('no params decoded');
  return out;
}

function path(
  mount: string | undefined,
  pairs: Record<string, string>,
): { url: string; baseUrl: string; originalUrl: string } {
  return resolveRequestPath(paramsOf(pairs), resolveMount(mount));
}

const latin1 = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

describe('mount option: req.url, req.baseUrl, req.originalUrl', () => {
  it('unset: REQUEST_URI whole, or SCRIPT_NAME + PATH_INFO + query without it', () => {
    expect(path(undefined, { REQUEST_URI: '/a/b?x=1', SCRIPT_NAME: '/a', PATH_INFO: '/b' })).toEqual({
      url: '/a/b?x=1',
      baseUrl: '',
      originalUrl: '/a/b?x=1',
    });
    expect(path(undefined, { SCRIPT_NAME: '/a', PATH_INFO: '/b', QUERY_STRING: 'x=1' }).url).toBe('/a/b?x=1');
  });

  it('a prefix is cut off REQUEST_URI at a segment boundary, whatever SCRIPT_NAME says', () => {
    // nginx without split_path_info / Apache ProxyPass: SCRIPT_NAME is the whole path.
    expect(path('/app', { REQUEST_URI: '/app/x/y%20z?q=1', SCRIPT_NAME: '/app/x/y z' })).toEqual({
      url: '/x/y%20z?q=1',
      baseUrl: '/app',
      originalUrl: '/app/x/y%20z?q=1',
    });
    // lighttpd "/app/": SCRIPT_NAME=/app/x PATH_INFO=/y.
    expect(path('/app/', { REQUEST_URI: '/app/x/y', SCRIPT_NAME: '/app/x', PATH_INFO: '/y' }).url).toBe('/x/y');
    expect(path('/app', { REQUEST_URI: '/app' }).url).toBe('/');
    expect(path('/app', { REQUEST_URI: '/app?q' }).url).toBe('/?q');
    expect(path('/app', { REQUEST_URI: '/app/' }).url).toBe('/');
    // Not under the prefix (lighttpd's "/app" also takes /application): left whole.
    expect(path('/app', { REQUEST_URI: '/application/x' })).toEqual({
      url: '/application/x',
      baseUrl: '',
      originalUrl: '/application/x',
    });
    // A prefix the client percent-encoded, and a non-ASCII prefix.
    expect(path('/my app', { REQUEST_URI: '/my%20app/x' }).url).toBe('/x');
    expect(path('/café', { REQUEST_URI: '/caf%C3%A9/x' })).toMatchObject({ url: '/x', baseUrl: '/café' });
  });

  it("'/' is the site root: lighttpd's root split (SCRIPT_NAME=/foo PATH_INFO=/bar) gives the whole path", () => {
    expect(path('/', { REQUEST_URI: '/foo/bar?x', SCRIPT_NAME: '/foo', PATH_INFO: '/bar' })).toEqual({
      url: '/foo/bar?x',
      baseUrl: '',
      originalUrl: '/foo/bar?x',
    });
  });

  it("'cgi' trusts SCRIPT_NAME and PATH_INFO, raw from REQUEST_URI when it agrees", () => {
    // nginx split_path_info, Apache proxy-fcgi-pathinfo, mod_fcgid: PATH_INFO decoded, REQUEST_URI raw.
    expect(path('cgi', { REQUEST_URI: '/pi/a/b%20c?x=1', SCRIPT_NAME: '/pi', PATH_INFO: '/a/b c' })).toEqual({
      url: '/a/b%20c?x=1',
      baseUrl: '/pi',
      originalUrl: '/pi/a/b%20c?x=1',
    });
    expect(path('cgi', { REQUEST_URI: '/fcgid/run.sh', SCRIPT_NAME: '/fcgid/run.sh' })).toMatchObject({
      url: '/',
      baseUrl: '/fcgid/run.sh',
    });
    // UTF-8 bytes: params are byte strings, so the comparison is on bytes too.
    expect(path('cgi', { REQUEST_URI: '/app/caf%C3%A9', SCRIPT_NAME: '/app', PATH_INFO: latin1('/café') }).url).toBe(
      '/caf%C3%A9',
    );
    // lighttpd fix-root-scriptname: SCRIPT_NAME "".
    expect(path('cgi', { REQUEST_URI: '/a/b', SCRIPT_NAME: '', PATH_INFO: '/a/b' })).toMatchObject({
      url: '/a/b',
      baseUrl: '',
    });
    // A rewrite (REQUEST_URI is the client's, SCRIPT_NAME the target's): PATH_INFO, re-encoded.
    expect(path('cgi', { REQUEST_URI: '/news?x=1', SCRIPT_NAME: '/app.fcgi', PATH_INFO: '/news item' })).toMatchObject({
      url: '/news%20item?x=1',
      baseUrl: '/app.fcgi',
    });
    // nginx normalises $uri (//): REQUEST_URI no longer agrees, PATH_INFO is used.
    expect(path('cgi', { REQUEST_URI: '/split//a', SCRIPT_NAME: '/split', PATH_INFO: '/a' }).url).toBe('/a');
  });

  it('rejects a mount that is neither cgi nor a path', () => {
    expect(() => resolveMount('app')).toThrow(InvalidArgumentError);
    expect(() => resolveMount('/app?x')).toThrow(InvalidArgumentError);
    expect(resolveMount('/')).toBe('');
    expect(resolveMount('/a//')).toBe('/a');
  });

  it('is applied by the server: req.url, req.baseUrl, req.originalUrl', async () => {
    const server = createServer({ mount: '/app' }, (req, res) =>
      res.end(JSON.stringify({ url: req.url, baseUrl: req.baseUrl, originalUrl: req.originalUrl })),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.write(
      Buffer.concat([
        encodeBeginRequest(1, Role.RESPONDER),
        encodeParams(1, [['REQUEST_URI', '/app/x?y=1']]),
        encodeStream(RecordType.STDIN, 1, Buffer.alloc(0)),
      ]),
    );
    await once(socket, 'end');
    socket.destroy();
    const out = Buffer.concat(chunks).toString('latin1');
    expect(out).toContain('{"url":"/x?y=1","baseUrl":"/app","originalUrl":"/app/x?y=1"}');
  });
});

describe('request headers from params', () => {
  it('CONTENT_TYPE "" (nginx on every GET) is no Content-Type header', () => {
    const { headers } = headersFromParams(paramsOf({ CONTENT_TYPE: '', CONTENT_LENGTH: '', HTTP_HOST: 'h' }));
    expect(headers['content-type']).toBeUndefined();
    expect(headers['content-length']).toBeUndefined();
    expect(headersFromParams(paramsOf({ CONTENT_TYPE: 'text/plain' })).headers['content-type']).toBe('text/plain');
  });

  it('every underscore of an HTTP_ name was a dash, digits included', () => {
    const { headers, rawHeaders } = headersFromParams(
      paramsOf({ HTTP_X_MANY_0: 'a', HTTP_X_PART_2B: 'b', HTTP_ACCEPT_LANGUAGE: 'c' }),
    );
    expect(headers).toEqual({ 'x-many-0': 'a', 'x-part-2b': 'b', 'accept-language': 'c' });
    expect(rawHeaders).toEqual(['X-Many-0', 'a', 'X-Part-2b', 'b', 'Accept-Language', 'c']);
  });

  it('joins duplicates (cookies with "; "), known names and others alike, in a plain object as node:http gives', () => {
    const { headers, rawHeaders } = headersFromParams(
      paramsOf([
        ['HTTP_COOKIE', 'a=1'],
        ['HTTP_ACCEPT', 'text/html'],
        ['HTTP_X_TRACE', 't1'],
        ['HTTP_COOKIE', 'b=2'],
        ['HTTP_ACCEPT', '*/*'],
        ['HTTP_X_TRACE', 't2'],
        ['HTTP_CONSTRUCTOR', 'c'],
        ['HTTP_TOSTRING', 'd'],
        ['HTTP_CONTENT_TYPE', 'ignored/when-CONTENT_TYPE-is-there'],
        ['HTTP_CONTENT-LENGTH', '99'],
        ['CONTENT_TYPE', 'text/plain'],
        ['CONTENT_LENGTH', '5'],
        ['HTTP_', 'nameless'],
        ['SERVER_NAME', 'not a header'],
      ]),
    );
    expect(Object.getPrototypeOf(headers)).toBe(Object.prototype);
    expect({ ...headers }).toEqual({
      cookie: 'a=1; b=2',
      accept: 'text/html, */*',
      'x-trace': 't1, t2',
      constructor: 'c',
      tostring: 'd',
      'content-type': 'text/plain',
      'content-length': '5',
    });
    expect(rawHeaders).toEqual([
      ...['Cookie', 'a=1', 'Accept', 'text/html', 'X-Trace', 't1', 'Cookie', 'b=2', 'Accept', '*/*'],
      ...['X-Trace', 't2', 'Constructor', 'c', 'Tostring', 'd', 'Content-Type', 'text/plain', 'Content-Length', '5'],
    ]);
  });
});

describe('server.close() with a keep-conn connection the web server never reads again (Apache enablereuse=on)', () => {
  it('does not wait closeTimeout for the peer to answer its FIN', async () => {
    const server = createServer({ closeTimeout: 30_000 }, (_req, res) => res.end('ok'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    // A pooling peer: keeps its side open and reads nothing more once the response is in.
    const socket = net.connect({
      port: (server.address() as net.AddressInfo).port,
      host: '127.0.0.1',
      allowHalfOpen: true,
    });
    onTestFinished(() => {
      socket.destroy();
    });
    await once(socket, 'connect');
    const response = once(socket, 'data');
    socket.write(
      Buffer.concat([
        encodeBeginRequest(1, Role.RESPONDER, Flag.KEEP_CONN),
        encodeParams(1, [['REQUEST_URI', '/']]),
        encodeStream(RecordType.STDIN, 1, Buffer.alloc(0)),
      ]),
    );
    await response;
    socket.pause();
    const started = Date.now();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
