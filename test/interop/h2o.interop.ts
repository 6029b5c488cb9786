// h2o (Debian h2o 2.2.5) in front of the engine: the recipe of docs/deployment.md, run in the foreground in a
// temporary directory. The app runs in its own process with one listener per path: TCP (its
// FCGI_WEB_SERVER_ADDRS=127.0.0.1 allows h2o), a unix socket, mount: '/prefix' for the prefix path, and one
// whose FCGI_WEB_SERVER_ADDRS refuses 127.0.0.1.
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bodySha256 } from '../fixtures/interop/data';
import { App, Events, freePorts, httpRequest, param, removeDir, tempDir, waitForLog, type EnvAnswer } from './harness';
import { h2o } from './recipes';
import {
  clientAbort,
  download,
  dupHeaders,
  echo,
  env,
  expectConcurrentAnswered,
  expectControlByteRejected,
  expectHead,
  expectLongPollNotAborted,
  expectHeaders,
  expectPeerRefused,
  expectReasonPhrasesKept,
  expectRedirects,
  latin1,
  manyHeaders,
  MiB,
  REASON_PHRASES,
  tag,
  upload,
  utf8RoundTrip,
  withQuery,
} from './scenarios';
import { startRecipe, type RunningServer } from './servers';
import { describeServer } from './suite';

describeServer('h2o in front of the engine', [{ binary: 'h2o', pkg: 'h2o' }], () => {
  let dir: string;
  let events: Events;
  let app: App;
  let server: RunningServer;
  let port: number;

  beforeAll(async () => {
    dir = tempDir('h2o');
    const [HTTP_PORT, APP_PORT, APP_PORT_PREFIX, APP_PORT_DENY] = await freePorts(4);
    const APP_SOCKET = path.join(dir, 'app.sock');
    events = new Events(path.join(dir, 'events.log'));
    app = await App.start(
      events,
      [
        { listen: `tcp:${APP_PORT}`, name: 'main' },
        // h2o runs as nobody: the socket must be world-writable; a unix peer is never in FCGI_WEB_SERVER_ADDRS.
        { listen: `unix:${APP_SOCKET}`, name: 'unix', socketMode: 0o666, webServerAddrs: null },
        { listen: `tcp:${APP_PORT_PREFIX}`, name: 'prefix', mount: '/prefix' },
        { listen: `tcp:${APP_PORT_DENY}`, name: 'deny', webServerAddrs: ['10.9.8.7'] },
      ],
      { FCGI_WEB_SERVER_ADDRS: '127.0.0.1' },
    );
    server = await startRecipe(
      h2o,
      dir,
      { HTTP_PORT, APP_PORT, APP_PORT_PREFIX, APP_PORT_DENY, APP_SOCKET },
      { waitFor: [HTTP_PORT!], errorLog: path.join(dir, 'error.log') },
    );
    port = HTTP_PORT!;
  });

  afterAll(async () => {
    await server?.stop();
    await app?.stop();
    events?.killAll();
    if (dir !== undefined) removeDir(dir);
  });

  it('GET over TCP: CGI variables arrive, SCRIPT_NAME "" and PATH_INFO the whole path, one connection per request', async () => {
    const a = await env(port, '/some/pa%20th?x=1&y=%C3%A9');
    expect(a.listener).toBe('main');
    expect(a.method).toBe('GET');
    expect(a.url).toBe('/some/pa%20th?x=1&y=%C3%A9&do=env');
    expect(a.baseUrl).toBeNull();
    expect(param(a, 'REQUEST_METHOD')).toBe('GET');
    expect(param(a, 'REQUEST_URI')).toBe('/some/pa%20th?x=1&y=%C3%A9&do=env');
    expect(param(a, 'QUERY_STRING')).toBe('x=1&y=%C3%A9&do=env');
    expect(param(a, 'SERVER_PROTOCOL')).toBe('HTTP/1.1');
    expect(param(a, 'REMOTE_ADDR')).toBe('127.0.0.1');
    expect(param(a, 'SERVER_PORT')).toBe(String(port));
    expect(param(a, 'SERVER_SOFTWARE')).toMatch(/^h2o\//);
    expect(param(a, 'SCRIPT_NAME')).toBe('');
    expect(param(a, 'PATH_INFO')).toBe('/some/pa th');
    // h2o sends no GATEWAY_INTERFACE, and no CONTENT_LENGTH / CONTENT_TYPE on a GET.
    expect(param(a, 'GATEWAY_INTERFACE')).toBeUndefined();
    expect(param(a, 'CONTENT_LENGTH')).toBeUndefined();
    expect(a.headers.host).toBe(`127.0.0.1:${port}`);
    expect(a.keepConn).toBe(false);
    expect(a.requestId).toBe(1);
    const b = await env(port, '/again');
    expect(b.connections).toBeGreaterThan(a.connections);
  });

  it('GET over a unix socket', async () => {
    const a = await env(port, '/unix/x');
    expect(a.listener).toBe('unix');
    expect(a.url).toBe('/unix/x?do=env');
  });

  it('fastcgi.timeout.keepalive: 100 requests on one FastCGI connection with FCGI_KEEP_CONN, request id 1 each time', async () => {
    const answers: EnvAnswer[] = [];
    for (let i = 0; i < 100; i++) answers.push(await env(port, `/keep/${i}`));
    for (const a of answers) {
      expect(a.keepConn).toBe(true);
      expect(a.requestId).toBe(1);
    }
    expect(new Set(answers.map((a) => a.connections)).size).toBe(1);
  });

  it('1 MB and 16 MB both ways, over TCP and a unix socket: exact bytes', async () => {
    for (const base of ['/', '/unix/']) {
      await download(port, base, MiB);
      await upload(port, base, MiB);
    }
    await download(port, '/', 16 * MiB);
    await upload(port, '/', 16 * MiB);
  });

  it('chunked uploads: h2o reads the whole body first and sends its real CONTENT_LENGTH', async () => {
    const buffered = await upload(port, '/', 3 * MiB + 1, { chunked: true });
    expect(buffered.contentLength).toBe(String(3 * MiB + 1));
    expect(buffered.transferEncoding).toBeNull();
  });

  it('echo (writing while reading): the body is all in before the app starts, so 16 MB comes back whole', async () => {
    await echo(port, '/', 16 * MiB);
  });

  it('h2o absorbs the whole response: the app finishes a 32 MB download while the client reads nothing', async () => {
    // h2o reads the FastCGI response as fast as the app writes it and buffers what the client has not taken
    // (large buffers spill to files under temp-buffer-path): a slow client never slows the app.
    const t = tag('absorbed');
    const size = 32 * MiB;
    const result = await httpRequest({
      port,
      path: withQuery('/', { do: 'download', size, seed: 2, tag: t }),
      hashOnly: true,
      onResponse: async () => {
        await events.waitFor(
          (e) => e.ev === 'download-done' && e.tag === t,
          'download-done while the client reads nothing',
        );
      },
    });
    expect(result.length).toBe(size);
    expect(result.sha256).toBe(bodySha256(size, 2));
  });

  it('client aborts reach the handler mid-response; a silent long-poll is not aborted', async () => {
    expect(await clientAbort(port, '/', events)).toBeLessThan(5000);
    // Until the app's response header arrives h2o does not watch the client: a client that leaves a silent
    // long-poll is noticed only when the response is written, and the poll runs to its end.
    await expectLongPollNotAborted(port, '/', events);
  });

  it('status codes keep the reason phrase the engine sends', async () => {
    await expectReasonPhrasesKept(port, '/', [...REASON_PHRASES, [418, "I'm a teapot"]]);
  });

  it('redirects: the status and Location the app set', async () => {
    await expectRedirects(port, '/', [
      [302, 'http://example.test/elsewhere?x=1'],
      [301, '/moved/here'],
      [307, 'relative/path'],
    ]);
  });

  it('duplicate headers: response lines stay separate; X-Dup arrives as two params, h2o joins cookies with ";"', async () => {
    const { r, a } = await dupHeaders(port, '/');
    expect(r.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'x-dup')).toHaveLength(2);
    expect(a.params.filter(([n]) => n === 'HTTP_X_DUP')).toHaveLength(2);
    expect(a.headers['x-dup']).toBe('a, b');
    // h2o merges the Cookie lines itself, with ";" and no space (RFC 6265 says "; "); one HTTP_COOKIE param.
    expect(a.params.filter(([n]) => n === 'HTTP_COOKIE')).toEqual([['HTTP_COOKIE', 'c1=1;c2=2']]);
    expect(a.headers.cookie).toBe('c1=1;c2=2');
  });

  it('unicode and binary: UTF-8 path and header bytes both ways; a control byte in a header gets 400 from h2o', async () => {
    const a = await utf8RoundTrip(port, '/caf%C3%A9/%E2%9C%93?do=utf8');
    expect(a.url).toBe('/caf%C3%A9/%E2%9C%93?do=utf8');
    // PATH_INFO is the decoded path: its UTF-8 bytes, as a latin1 string.
    expect(param(a, 'PATH_INFO')).toBe(latin1('/café/✓'));
    await expectControlByteRejected(port, '/');
  });

  it('h2o takes at most 100 request header lines (more: 400); a 70 KB header passes (params over 64 KiB)', async () => {
    // node:http adds Host and Connection: 98 of ours make 100 lines.
    const headers = manyHeaders(98, 100);
    expectHeaders(await env(port, '/', headers), headers);
    const tooMany = await httpRequest({ port, path: '/?do=env', headers: manyHeaders(99, 100) });
    expect(tooMany.status).toBe(400);
    const value = 'p'.repeat(70_000);
    expect((await env(port, '/', { 'X-Big': value })).headers['x-big']).toBe(value);
  });

  it('STDERR lands in the error log; a throwing handler gives 500 with its stack logged', async () => {
    const m = tag('stderr-marker');
    const r = await httpRequest({ port, path: withQuery('/', { do: 'stderr', marker: m }) });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('stderr written\n');
    // One line per STDERR record, after the request's path cut to 32 characters and "...".
    await waitForLog(server.errorLog, `[lib/handler/fastcgi.c] in request:/?do=stderr&marker=stderr-mar...:${m}`);
    const big = tag('stderr-big');
    expect(
      (await httpRequest({ port, path: withQuery('/', { do: 'stderr', marker: big, size: 100_000 }) })).status,
    ).toBe(200);
    await waitForLog(server.errorLog, big);
    const t = tag('throw');
    expect((await httpRequest({ port, path: withQuery('/', { do: 'throw', marker: t }) })).status).toBe(500);
    await waitForLog(
      server.errorLog,
      new RegExp(`\\[lib/handler/fastcgi\\.c\\] in request:.*:Error: interop handler failure ${t}`),
    );
  });

  it('HEAD: the app sees HEAD, the client gets headers and no body', async () => {
    await expectHead(port, '/');
  });

  it('50 concurrent requests: all answered', async () => {
    await expectConcurrentAnswered(port, '/');
  });

  it('FCGI_WEB_SERVER_ADDRS: listed peer served (every test above), unlisted peer closed at once (503 from h2o)', async () => {
    await expectPeerRefused(port, '/denied/x', events, 503);
  });

  it('SCRIPT_NAME / PATH_INFO under a prefix path: SCRIPT_NAME "", mount "/prefix" gives req.url under it', async () => {
    const prefix = await env(port, '/prefix/a/b%20c');
    expect(prefix.listener).toBe('prefix');
    expect([param(prefix, 'SCRIPT_NAME'), param(prefix, 'PATH_INFO')]).toEqual(['', '/prefix/a/b c']);
    expect(prefix.url).toBe('/a/b%20c?do=env');
    expect(prefix.baseUrl).toBe('/prefix');
    expect(prefix.originalUrl).toBe('/prefix/a/b%20c?do=env');
  });
});
