// nginx (Debian nginx-light) in front of the engine: the recipe of docs/deployment.md, run in the foreground in
// a temporary directory. The app runs in its own process with one listener per location variant: TCP (its
// FCGI_WEB_SERVER_ADDRS=127.0.0.1 allows nginx), a unix socket, mount: 'cgi' behind fastcgi_split_path_info,
// mount: '/prefix' behind a plain prefix location, and one whose FCGI_WEB_SERVER_ADDRS refuses 127.0.0.1.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  App,
  Events,
  freePorts,
  httpRequest,
  param,
  rawHttp,
  readText,
  removeDir,
  tempDir,
  waitForLog,
  type Listener,
} from './harness';
import { nginx } from './recipes';
import {
  clientAbort,
  download,
  dupHeaders,
  echo,
  env,
  expectConcurrentAnswered,
  expectHead,
  expectHeaders,
  expectHalfDuplexStall,
  expectLateReadBounded,
  expectPeerRefused,
  expectReasonPhrasesKept,
  expectRedirects,
  expectStalledDownloadBounded,
  latin1,
  manyHeaders,
  MiB,
  REASON_PHRASES,
  REDIRECTS,
  tag,
  upload,
  utf8RoundTrip,
  withQuery,
} from './scenarios';
import { startRecipe, type RunningServer } from './servers';
import { describeServer } from './suite';

describeServer('nginx in front of the engine', [{ binary: 'nginx', pkg: 'nginx-light' }], () => {
  let dir: string;
  let events: Events;
  let app: App;
  let server: RunningServer;
  let port: number;
  let bigPort: number;
  let appPort: number;
  let listeners: Listener[];
  const appEnv = { FCGI_WEB_SERVER_ADDRS: '127.0.0.1' };

  beforeAll(async () => {
    dir = tempDir('nginx');
    fs.mkdirSync(path.join(dir, 'tmp'));
    const [HTTP_PORT, HTTP_PORT_BIG, APP_PORT, APP_PORT_CGI, APP_PORT_PREFIX, APP_PORT_DENY] = await freePorts(6);
    const APP_SOCKET = path.join(dir, 'app.sock');
    events = new Events(path.join(dir, 'events.log'));
    listeners = [
      { listen: `tcp:${APP_PORT}`, name: 'main' },
      // nginx's workers run as nobody: the socket must be world-writable; a unix peer is never in FCGI_WEB_SERVER_ADDRS.
      { listen: `unix:${APP_SOCKET}`, name: 'unix', socketMode: 0o666, webServerAddrs: null },
      { listen: `tcp:${APP_PORT_CGI}`, name: 'cgi', mount: 'cgi' },
      { listen: `tcp:${APP_PORT_PREFIX}`, name: 'prefix', mount: '/prefix' },
      { listen: `tcp:${APP_PORT_DENY}`, name: 'deny', webServerAddrs: ['10.9.8.7'] },
    ];
    app = await App.start(events, listeners, appEnv);
    server = await startRecipe(
      nginx,
      dir,
      { HTTP_PORT, HTTP_PORT_BIG, APP_PORT, APP_PORT_CGI, APP_PORT_PREFIX, APP_PORT_DENY, APP_SOCKET },
      { waitFor: [HTTP_PORT!, HTTP_PORT_BIG!], errorLog: path.join(dir, 'error.log') },
    );
    port = HTTP_PORT!;
    bigPort = HTTP_PORT_BIG!;
    appPort = APP_PORT!;
  });

  afterAll(async () => {
    await server?.stop();
    await app?.stop();
    events?.killAll();
    if (dir !== undefined) removeDir(dir);
  });

  it('GET over TCP: CGI variables arrive, req.url is REQUEST_URI, one connection per request', async () => {
    const a = await env(port, '/some/path?x=1&y=%C3%A9');
    expect(a.listener).toBe('main');
    expect(a.method).toBe('GET');
    expect(a.url).toBe('/some/path?x=1&y=%C3%A9&do=env');
    expect(param(a, 'REQUEST_METHOD')).toBe('GET');
    expect(param(a, 'QUERY_STRING')).toBe('x=1&y=%C3%A9&do=env');
    expect(param(a, 'SERVER_PROTOCOL')).toBe('HTTP/1.1');
    expect(param(a, 'GATEWAY_INTERFACE')).toBe('CGI/1.1');
    expect(param(a, 'REMOTE_ADDR')).toBe('127.0.0.1');
    expect(param(a, 'SERVER_PORT')).toBe(String(port));
    // Debian's fastcgi_params: HTTP_HOST is $host (no port), SCRIPT_NAME the whole path, no PATH_INFO.
    expect(a.headers.host).toBe('127.0.0.1');
    expect(param(a, 'SCRIPT_NAME')).toBe('/some/path');
    expect(param(a, 'PATH_INFO')).toBeUndefined();
    // CONTENT_TYPE "" and CONTENT_LENGTH "" on a GET are no headers at all.
    expect(param(a, 'CONTENT_TYPE')).toBe('');
    expect(a.headers['content-type']).toBeUndefined();
    expect(a.headers['content-length']).toBeUndefined();
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

  it('fastcgi_keep_conn on + upstream keepalive: 100 requests on one FastCGI connection, request id 1 each time', async () => {
    const answers = [];
    for (let i = 0; i < 100; i++) answers.push(await env(port, `/keep/${i}`));
    for (const a of answers) {
      expect(a.keepConn).toBe(true);
      expect(a.requestId).toBe(1);
    }
    // The app counts the connections it accepted: the same count for all 100 means one connection.
    expect(new Set(answers.map((a) => a.connections)).size).toBe(1);
  });

  it('1 MB both ways, over TCP and a unix socket, buffered and streaming: exact bytes', async () => {
    for (const base of ['/', '/unix/', '/stream/']) {
      await download(port, base, MiB);
      await upload(port, base, MiB);
    }
  });

  it('100 MB both ways, buffered (nginx spools to its temp files) and streaming', async () => {
    await download(port, '/stream/', 100 * MiB);
    const streamed = await upload(port, '/stream/', 100 * MiB);
    expect(streamed.contentLength).toBe(String(100 * MiB));
    await download(port, '/', 100 * MiB);
    await upload(port, '/', 100 * MiB);
  });

  it('chunked uploads: real CONTENT_LENGTH when nginx buffers, "" when it streams; the app reads to STDIN EOF', async () => {
    const buffered = await upload(port, '/', MiB, { chunked: true });
    expect(buffered.contentLength).toBe(String(MiB));
    const streamed = await upload(port, '/stream/', 3 * MiB + 5, { chunked: true });
    expect(streamed.contentLength).toBe('');
    expect(streamed.transferEncoding).toBe('chunked');
  });

  it('echo (writing while reading) completes while the body fits the buffers on the way', async () => {
    await echo(port, '/stream/', MiB);
    await echo(port, '/stream/', MiB, { chunked: true });
    await echo(port, '/', MiB);
  });

  it('nginx is half-duplex: an app that answers before reading a 32 MB body stalls until fastcgi_read_timeout, then sees the abort', async () => {
    // The app writes each chunk back as it reads. nginx stops forwarding the request body when the response
    // header arrives (ngx_http_upstream_send_response), so the echo stalls with part of the body read; after
    // fastcgi_read_timeout (3 s) nginx gives up and closes the connection, and the handler sees it.
    const { done } = await expectHalfDuplexStall(port, '/halfduplex/', events, 'nginx');
    await waitForLog(
      server.errorLog,
      /upstream timed out \(110: Connection timed out\) while reading upstream.*halfduplex/,
    );
    const result = await done;
    // The client gets a cut response (or an error): never the 32 MB.
    if (!(result instanceof Error)) expect(result.length).toBeLessThan(32 * MiB);
  });

  it('a stalled client stalls the app when nginx does not buffer (fastcgi_buffering off): bounded writes and memory', async () => {
    await expectStalledDownloadBounded(port, '/stream/', events);
  });

  it('with buffering on (the default) nginx absorbs the whole response: the app finishes while the client is stalled', async () => {
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
  });

  it('an app that reads its body late holds its memory: 100 MB upload through the streaming location', async () => {
    await expectLateReadBounded(port, '/stream/');
  });

  it('client aborts reach the handler: mid-response and during a long-poll', async () => {
    expect(await clientAbort(port, '/', events)).toBeLessThan(5000);
    expect(await clientAbort(port, '/stream/', events)).toBeLessThan(5000);
    expect(await clientAbort(port, '/', events, { action: 'longpoll' })).toBeLessThan(5000);
  });

  it('status codes keep the reason phrase the engine sends', async () => {
    await expectReasonPhrasesKept(port, '/', [...REASON_PHRASES, [418, "I'm a teapot"]]);
  });

  it('redirects: the status and Location the app set', async () => {
    await expectRedirects(port, '/', [...REDIRECTS, [307, 'relative/path']]);
  });

  it('duplicate headers: response lines stay separate; request duplicates arrive as duplicate params, joined by the engine', async () => {
    const { r, a } = await dupHeaders(port, '/');
    expect(r.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'x-dup')).toHaveLength(2);
    expect(a.params.filter(([n]) => n === 'HTTP_X_DUP')).toHaveLength(2);
    expect(a.headers['x-dup']).toBe('a, b');
    expect(a.headers.cookie).toBe('c1=1; c2=2');
  });

  it('unicode and binary: UTF-8 path and header bytes both ways, a control byte in a request header value', async () => {
    const a = await utf8RoundTrip(port, '/caf%C3%A9/%E2%9C%93?do=utf8&q=%E2%9C%93');
    expect(a.url).toBe('/caf%C3%A9/%E2%9C%93?do=utf8&q=%E2%9C%93');
    // nginx decodes $fastcgi_script_name: the raw bytes of the path, as a latin1 string.
    expect(param(a, 'SCRIPT_NAME')).toBe(latin1('/café/✓'));
    const raw = await rawHttp(port, 'GET /?do=env HTTP/1.1\r\nHost: x\r\nX-Ctl: a\x01b\r\nConnection: close\r\n\r\n');
    expect(raw.statusLine).toBe('HTTP/1.1 200 OK');
    const rawEnv = JSON.parse(raw.body.toString()) as import('./harness').EnvAnswer;
    expect(rawEnv.headers['x-ctl']).toBe('a\x01b');
  });

  it('200 request headers of 100 bytes arrive intact', async () => {
    const headers = manyHeaders(200, 100);
    const a = await env(port, '/', headers);
    expectHeaders(a, headers);
  });

  it("params near 64 KiB pass in nginx's single PARAMS record; over 64 KiB nginx fails the request itself (500)", async () => {
    const value = 'p'.repeat(60_000);
    const a = await env(bigPort, '/', { 'X-Big': value });
    expect(a.headers['x-big']).toBe(value);
    // On the main server a header line over 8 KB (large_client_header_buffers) is refused before that.
    expect((await httpRequest({ port, path: '/?do=env', headers: { 'X-Big': 'p'.repeat(10_000) } })).status).toBe(400);
    const tooBig = await httpRequest({ port: bigPort, path: '/?do=env', headers: { 'X-Big': 'p'.repeat(70_000) } });
    expect(tooBig.status).toBe(500);
    await waitForLog(server.errorLog, 'fastcgi request record is too big');
  });

  it('response headers: 3 KB pass, 5 KB exceed fastcgi_buffer_size (one page): 502 "upstream sent too big header"', async () => {
    expect((await httpRequest({ port, path: withQuery('/', { do: 'bigheader', bytes: 3000 }) })).status).toBe(200);
    expect((await httpRequest({ port, path: withQuery('/', { do: 'bigheader', lines: 30, each: 90 }) })).status).toBe(
      200,
    );
    expect((await httpRequest({ port, path: withQuery('/', { do: 'bigheader', bytes: 5000 }) })).status).toBe(502);
    await waitForLog(server.errorLog, 'upstream sent too big header');
  });

  it('STDERR lands in the error log; a throwing handler gives 500 with its stack logged', async () => {
    const m = tag('stderr-marker');
    const r = await httpRequest({ port, path: withQuery('/', { do: 'stderr', marker: m }) });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('stderr written\n');
    await waitForLog(server.errorLog, `FastCGI sent in stderr: "${m}"`);
    const big = tag('stderr-big');
    const r2 = await httpRequest({ port, path: withQuery('/', { do: 'stderr', marker: big, size: 100_000 }) });
    expect(r2.status).toBe(200);
    await waitForLog(server.errorLog, big);
    const t = tag('throw');
    const thrown = await httpRequest({ port, path: withQuery('/', { do: 'throw', marker: t }) });
    expect(thrown.status).toBe(500);
    await waitForLog(server.errorLog, new RegExp(`FastCGI sent in stderr: "Error: interop handler failure ${t}`));
  });

  it('HEAD: the app sees HEAD, the client gets headers and no body', async () => {
    await expectHead(port, '/');
  });

  it('50 concurrent requests: 50 connections, all answered', async () => {
    await expectConcurrentAnswered(port, '/');
  });

  it('FCGI_WEB_SERVER_ADDRS: listed peer served (every test above), unlisted peer closed at once (502)', async () => {
    await expectPeerRefused(port, '/denied/x', events, 502);
    expect(readText(server.errorLog)).toMatch(/Connection reset by peer|upstream prematurely closed/);
  });

  it('HTTP sent to the FastCGI port (proxy_pass instead of fastcgi_pass) is refused with a message naming the cause', async () => {
    const r = await httpRequest({ port: appPort, path: '/' }).catch((e: Error) => e);
    expect(r).toBeInstanceOf(Error);
    const logged = await events.waitFor(
      (e) => e.ev === 'log' && String(e.message).includes('FCGI_ERR_BAD_VERSION'),
      'bad version logged',
    );
    expect(logged.message).toMatch(/invalid record version 71 at offset 0 \(the peer speaks HTTP/);
  });

  it('SCRIPT_NAME / PATH_INFO: root location, fastcgi_split_path_info with mount cgi, prefix location with mount /prefix', async () => {
    const root = await env(port, '/a/b%20c');
    expect(root.url).toBe('/a/b%20c?do=env');
    expect(root.baseUrl).toBeNull();

    const split = await env(port, '/split/a/b%20c');
    expect(split.listener).toBe('cgi');
    expect(param(split, 'SCRIPT_NAME')).toBe('/split');
    expect(param(split, 'PATH_INFO')).toBe('/a/b c');
    expect(split.url).toBe('/a/b%20c?do=env');
    expect(split.baseUrl).toBe('/split');
    expect(split.originalUrl).toBe('/split/a/b%20c?do=env');

    const prefix = await env(port, '/prefix/a/b');
    expect(prefix.listener).toBe('prefix');
    expect(param(prefix, 'SCRIPT_NAME')).toBe('/prefix/a/b');
    expect(prefix.url).toBe('/a/b?do=env');
    expect(prefix.baseUrl).toBe('/prefix');
    const prefixRoot = await env(port, '/prefix/');
    expect(prefixRoot.url).toBe('/?do=env');
  });

  it('SIGTERM with requests in flight: they finish, idle keep-alive connections close, the app exits 0', async () => {
    await env(port, '/keep/before-sigterm'); // nginx now holds an idle FastCGI connection to the app
    const t = tag('sigterm');
    const inflight = httpRequest({ port, path: withQuery('/', { do: 'slow', ms: 1500, tag: t }) });
    await events.waitFor((e) => e.ev === 'request' && e.tag === t, 'the slow request reached the app');
    const signalled = Date.now();
    app.proc.signal('SIGTERM');
    const r = await inflight;
    expect(r.status).toBe(200);
    const exit = await app.proc.exited;
    expect(exit.code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(5000);
    // Restart for whatever runs after this test.
    app = await App.start(events, listeners, appEnv);
  });
});
