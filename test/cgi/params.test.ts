import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BadPathError, cgiParamsFor, splitUri, toolParams, type ScriptMapping } from '../../src/cgi/params';

type Outcome = { params: Record<string, string>; port: number; remotePort: number } | { error: Error };

// Sends raw HTTP/1.1 bytes to a node:http server and returns the params built from the request it parsed.
async function paramsFor(
  head: string,
  mapping: ScriptMapping = { documentRoot: '/srv/www' },
  mount?: { baseUrl: string; url: string },
): Promise<Outcome> {
  let outcome: Outcome | null = null;
  const server = createServer((req: IncomingMessage, res) => {
    if (mount !== undefined) {
      // What Express does for app.use('/mount', handler).
      Object.assign(req, { originalUrl: req.url, baseUrl: mount.baseUrl });
      req.url = mount.url;
    }
    try {
      outcome = {
        params: cgiParamsFor(req, mapping),
        port: (server.address() as AddressInfo).port,
        remotePort: req.socket.remotePort!,
      };
    } catch (error) {
      outcome = { error: error as Error };
    }
    res.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => {
    server.closeAllConnections();
    server.close();
  });
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
  socket.write(head.replace(/\n/g, '\r\n') + '\r\n');
  await once(socket, 'data');
  socket.destroy();
  return outcome!;
}

function ok(outcome: Outcome): Record<string, string> {
  if ('error' in outcome) throw outcome.error;
  return outcome.params;
}

describe('cgiParamsFor', () => {
  it('sets the RFC 3875 and PHP variables for a plain GET', async () => {
    const outcome = await paramsFor('GET /app/index.php?a=1&b=%20 HTTP/1.1\nHost: example.org:8080\n');
    const params = ok(outcome);
    if ('error' in outcome) return;
    expect(params).toMatchObject({
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_PROTOCOL: 'HTTP/1.1',
      REQUEST_METHOD: 'GET',
      REQUEST_URI: '/app/index.php?a=1&b=%20',
      QUERY_STRING: 'a=1&b=%20',
      SCRIPT_NAME: '/app/index.php',
      SCRIPT_FILENAME: '/srv/www/app/index.php',
      DOCUMENT_ROOT: '/srv/www',
      DOCUMENT_URI: '/app/index.php',
      REMOTE_ADDR: '127.0.0.1',
      REMOTE_PORT: String(outcome.remotePort),
      SERVER_ADDR: '127.0.0.1',
      SERVER_PORT: String(outcome.port),
      SERVER_NAME: 'example.org',
      REQUEST_SCHEME: 'http',
      REDIRECT_STATUS: '200',
      HTTP_HOST: 'example.org:8080',
    });
    expect(params.PATH_INFO).toBeUndefined();
    expect(params.HTTPS).toBeUndefined();
    expect(params.CONTENT_TYPE).toBeUndefined();
  });

  it('splits PATH_INFO after the .php segment, uses the index for directories and the front controller for the rest', async () => {
    const split = ok(await paramsFor('GET /api.php/users/7?x HTTP/1.1\nHost: h\n'));
    expect(split).toMatchObject({
      SCRIPT_NAME: '/api.php',
      PATH_INFO: '/users/7',
      PATH_TRANSLATED: '/srv/www/users/7',
      DOCUMENT_URI: '/api.php/users/7',
    });
    const directory = ok(
      await paramsFor('GET /docs/ HTTP/1.1\nHost: h\n', { documentRoot: '/srv/www/', index: 'main.php' }),
    );
    expect(directory).toMatchObject({ SCRIPT_NAME: '/docs/main.php', SCRIPT_FILENAME: '/srv/www/docs/main.php' });
    const pretty = ok(
      await paramsFor('GET /users/7 HTTP/1.1\nHost: h\n', { documentRoot: '/srv/www', frontController: '/index.php' }),
    );
    expect(pretty).toMatchObject({
      SCRIPT_NAME: '/index.php',
      SCRIPT_FILENAME: '/srv/www/index.php',
      REQUEST_URI: '/users/7',
    });
    const plain = ok(await paramsFor('GET /style.css HTTP/1.1\nHost: h\n'));
    expect(plain.SCRIPT_NAME).toBe('/style.css');
    // Not a .php segment: `.phpx` is no script.
    expect(ok(await paramsFor('GET /a.phpx/b HTTP/1.1\nHost: h\n')).PATH_INFO).toBeUndefined();
  });

  it('decodes percent-escapes to the bytes they name, and never leaves the document root', async () => {
    const utf8 = ok(await paramsFor('GET /caf%C3%A9.php HTTP/1.1\nHost: h\n', { documentRoot: '/srv/wéb' }));
    // Byte strings: UTF-8 bytes one char each, as they go on the wire.
    expect(Buffer.from(utf8.SCRIPT_FILENAME!, 'latin1').toString('utf8')).toBe('/srv/wéb/café.php');
    expect(utf8.REQUEST_URI).toBe('/caf%C3%A9.php');
    const climb = ok(await paramsFor('GET /../../etc/%2e%2e/passwd.php HTTP/1.1\nHost: h\n'));
    expect(climb.SCRIPT_FILENAME).toBe('/srv/www/passwd.php');
    const nul = await paramsFor('GET /a%00.php HTTP/1.1\nHost: h\n');
    expect('error' in nul && nul.error).toBeInstanceOf(BadPathError);
    expect(ok(await paramsFor('GET /a%zz.php HTTP/1.1\nHost: h\n')).SCRIPT_NAME).toBe('/a%zz.php');
  });

  it('passes headers as HTTP_*, minus hop-by-hop ones, Proxy (httpoxy) and names with underscores', async () => {
    const params = ok(
      await paramsFor(
        [
          'POST /form.php HTTP/1.1',
          'Host: h',
          'Content-Type: text/plain',
          'Content-Length: 0',
          'Proxy: http://evil:8080',
          'Connection: keep-alive, X-Hop',
          'X-Hop: gone',
          'Keep-Alive: timeout=5',
          'TE: trailers',
          'X_Spoofed: 1',
          'X-Forwarded-For: 10.0.0.1',
          'Cookie: a=1',
          'Cookie: b=2',
          'Accept: text/html',
          'Accept: application/json',
          '',
        ].join('\n'),
      ),
    );
    expect(params.HTTP_PROXY).toBeUndefined();
    expect(params.HTTP_X_HOP).toBeUndefined();
    expect(params.HTTP_CONNECTION).toBeUndefined();
    expect(params.HTTP_KEEP_ALIVE).toBeUndefined();
    expect(params.HTTP_TE).toBeUndefined();
    expect(params.HTTP_X_SPOOFED).toBeUndefined();
    expect(params.HTTP_CONTENT_TYPE).toBeUndefined();
    expect(params.HTTP_CONTENT_LENGTH).toBeUndefined();
    expect(params).toMatchObject({
      CONTENT_TYPE: 'text/plain',
      HTTP_X_FORWARDED_FOR: '10.0.0.1',
      HTTP_COOKIE: 'a=1; b=2',
      HTTP_ACCEPT: 'text/html, application/json',
    });
  });

  it('names the script under the mount point when Express mounts the handler', async () => {
    const params = ok(
      await paramsFor(
        'GET /php/app.php/x?q HTTP/1.1\nHost: h\n',
        { documentRoot: '/srv/www' },
        { baseUrl: '/php', url: '/app.php/x?q' },
      ),
    );
    expect(params).toMatchObject({
      SCRIPT_NAME: '/php/app.php',
      SCRIPT_FILENAME: '/srv/www/app.php',
      PATH_INFO: '/x',
      REQUEST_URI: '/php/app.php/x?q',
      QUERY_STRING: 'q',
    });
  });

  it('reads an IPv6 Host and keeps the brackets in SERVER_NAME', async () => {
    expect(ok(await paramsFor('GET / HTTP/1.1\nHost: [::1]:8080\n')).SERVER_NAME).toBe('[::1]');
  });
});

describe('toolParams', () => {
  it('builds what nginx would send for a request to localhost from 127.0.0.1, headers as HTTP_*', () => {
    const params = toolParams({
      software: 'tool',
      method: 'POST',
      uri: '/a/b.php?x=1&y',
      contentLength: 3,
      contentType: 'application/octet-stream',
      headers: [
        ['X-Trace', 'abc'],
        ['content-type', 'text/csv'],
      ],
    });
    expect(Object.fromEntries(params)).toEqual({
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_PROTOCOL: 'HTTP/1.1',
      SERVER_SOFTWARE: 'tool',
      SERVER_NAME: 'localhost',
      SERVER_PORT: '80',
      REMOTE_ADDR: '127.0.0.1',
      REQUEST_SCHEME: 'http',
      REQUEST_METHOD: 'POST',
      REQUEST_URI: '/a/b.php?x=1&y',
      SCRIPT_NAME: '/a/b.php',
      DOCUMENT_URI: '/a/b.php',
      QUERY_STRING: 'x=1&y',
      HTTP_HOST: 'localhost',
      CONTENT_LENGTH: '3',
      CONTENT_TYPE: 'text/csv',
      HTTP_X_TRACE: 'abc',
    });
    expect(toolParams({ software: 'tool', method: 'GET', uri: '/' }).has('CONTENT_LENGTH')).toBe(false);
  });

  it('splits a request-target at its first ?', () => {
    expect(splitUri('/a?b?c')).toEqual({ path: '/a', query: 'b?c' });
    expect(splitUri('/a')).toEqual({ path: '/a', query: '' });
  });
});
