// Caddy (Debian caddy 2.6.2) in front of the engine: the Caddyfile of docs/deployment.md, run in the foreground
// with `caddy run` in a temporary directory that also holds its storage (HOME, XDG_DATA_HOME, XDG_CONFIG_HOME).
// The app runs in its own process with one listener per route: TCP (its FCGI_WEB_SERVER_ADDRS=127.0.0.1 allows
// Caddy), a unix socket, mount: 'cgi' behind "split", mount: '/prefix' behind handle_path, and one whose
// FCGI_WEB_SERVER_ADDRS refuses 127.0.0.1.
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  App,
  Events,
  freePorts,
  httpRequest,
  param,
  readText,
  removeDir,
  tempDir,
  waitForLog,
  type EnvAnswer,
} from './harness';
import { caddy } from './recipes';
import {
  clientAbort,
  download,
  dupHeaders,
  echo,
  env,
  expectConcurrentAnswered,
  expectControlByteRejected,
  expectHalfDuplexStall,
  expectHead,
  expectHeaders,
  expectLateReadBounded,
  expectLongPollNotAborted,
  expectPeerRefused,
  expectReasonPhrasesReplaced,
  expectRedirects,
  expectStalledDownloadBounded,
  latin1,
  manyHeaders,
  MiB,
  tag,
  upload,
  utf8RoundTrip,
  withQuery,
} from './scenarios';
import { startRecipe, type RunningServer } from './servers';
import { describeServer } from './suite';

describeServer('Caddy in front of the engine', [{ binary: 'caddy', pkg: 'caddy' }], () => {
  let dir: string;
  let events: Events;
  let app: App;
  let server: RunningServer;
  let port: number;

  beforeAll(async () => {
    dir = tempDir('caddy');
    const [HTTP_PORT, APP_PORT, APP_PORT_CGI, APP_PORT_PREFIX, APP_PORT_DENY] = await freePorts(5);
    const APP_SOCKET = path.join(dir, 'app.sock');
    events = new Events(path.join(dir, 'events.log'));
    app = await App.start(
      events,
      [
        { listen: `tcp:${APP_PORT}`, name: 'main' },
        // Caddy runs as the user that started it; a unix peer is never in FCGI_WEB_SERVER_ADDRS.
        { listen: `unix:${APP_SOCKET}`, name: 'unix', socketMode: 0o660, webServerAddrs: null },
        { listen: `tcp:${APP_PORT_CGI}`, name: 'cgi', mount: 'cgi' },
        { listen: `tcp:${APP_PORT_PREFIX}`, name: 'prefix', mount: '/prefix' },
        { listen: `tcp:${APP_PORT_DENY}`, name: 'deny', webServerAddrs: ['10.9.8.7'] },
      ],
      { FCGI_WEB_SERVER_ADDRS: '127.0.0.1' },
    );
    // Caddy writes its storage and an autosave of the config under these: keep them in the temp dir.
    const caddyEnv = {
      ...process.env,
      HOME: dir,
      XDG_DATA_HOME: path.join(dir, 'data'),
      XDG_CONFIG_HOME: path.join(dir, 'config'),
    };
    server = await startRecipe(
      caddy,
      dir,
      { HTTP_PORT, APP_PORT, APP_PORT_CGI, APP_PORT_PREFIX, APP_PORT_DENY, APP_SOCKET },
      { waitFor: [HTTP_PORT!], errorLog: path.join(dir, 'error.log'), env: caddyEnv },
    );
    port = HTTP_PORT!;
  });

  afterAll(async () => {
    await server?.stop();
    await app?.stop();
    events?.killAll();
    if (dir !== undefined) removeDir(dir);
  });

  it('GET over TCP: CGI variables arrive, SCRIPT_NAME "" and PATH_INFO the path, one connection per request', async () => {
    const a = await env(port, '/some/pa%20th?x=1&y=%C3%A9');
    expect(a.listener).toBe('main');
    expect(a.method).toBe('GET');
    expect(a.url).toBe('/some/pa%20th?x=1&y=%C3%A9&do=env');
    expect(a.baseUrl).toBeNull();
    expect(param(a, 'REQUEST_URI')).toBe('/some/pa%20th?x=1&y=%C3%A9&do=env');
    expect(param(a, 'QUERY_STRING')).toBe('x=1&y=%C3%A9&do=env');
    expect(param(a, 'SERVER_PROTOCOL')).toBe('HTTP/1.1');
    expect(param(a, 'GATEWAY_INTERFACE')).toBe('CGI/1.1');
    expect(param(a, 'REMOTE_ADDR')).toBe('127.0.0.1');
    expect(param(a, 'SERVER_PORT')).toBe(String(port));
    expect(param(a, 'SERVER_SOFTWARE')).toMatch(/^Caddy\//);
    expect(param(a, 'SCRIPT_NAME')).toBe('');
    expect(param(a, 'PATH_INFO')).toBe('/some/pa th');
    // DOCUMENT_ROOT and SCRIPT_FILENAME come from the site root, by default the directory Caddy runs in.
    expect(param(a, 'DOCUMENT_ROOT')).toBe(dir);
    expect(param(a, 'SCRIPT_FILENAME')).toBe(dir);
    // A GET has CONTENT_LENGTH "0" (the engine passes it on as content-length: 0) and CONTENT_TYPE "".
    expect(param(a, 'CONTENT_LENGTH')).toBe('0');
    expect(a.headers['content-length']).toBe('0');
    expect(a.headers['content-type']).toBeUndefined();
    // Caddy's reverse_proxy adds X-Forwarded-For / -Proto / -Host, as params like any header.
    expect(a.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(a.headers['x-forwarded-proto']).toBe('http');
    expect(a.headers.host).toBe(`127.0.0.1:${port}`);
    // Caddy 2.6 never keeps a FastCGI connection: no FCGI_KEEP_CONN, a new connection per request.
    expect(a.keepConn).toBe(false);
    expect(a.requestId).toBe(1);
    const answers: EnvAnswer[] = [];
    for (let i = 0; i < 5; i++) answers.push(await env(port, `/again/${i}`));
    for (const b of answers) expect(b.keepConn).toBe(false);
    expect(new Set(answers.map((b) => b.connections)).size).toBe(5);
  });

  it('GET over a unix socket', async () => {
    const a = await env(port, '/unix/x');
    expect(a.listener).toBe('unix');
    expect(a.url).toBe('/unix/x?do=env');
  });

  it('1 MB and 16 MB both ways, over TCP and a unix socket: exact bytes', async () => {
    for (const base of ['/', '/unix/']) {
      await download(port, base, MiB);
      await upload(port, base, MiB);
    }
    await download(port, '/', 16 * MiB);
    await upload(port, '/', 16 * MiB);
  });

  it('chunked uploads: Caddy streams them with CONTENT_LENGTH "-1"; the app reads to the end of STDIN', async () => {
    const streamed = await upload(port, '/', 3 * MiB + 1, { chunked: true });
    expect(streamed.contentLength).toBe('-1');
    expect(streamed.transferEncoding).toBeNull();
  });

  it('echo (writing while reading) of 1 MB completes: it fits the socket buffers on the way', async () => {
    await echo(port, '/', MiB);
  });

  it('Caddy writes the whole body before reading: an echo of 32 MB stalls until write_timeout, then 504 and the app sees the abort', async () => {
    // The app writes each chunk back as it reads. Caddy 2.6's FastCGI client sends all of STDIN before it
    // reads a byte of the response (client.go Do), so once the socket buffers are full both sides wait; after
    // write_timeout (3 s) Caddy gives up and closes the connection, and the handler sees it.
    const { tag: t, done } = await expectHalfDuplexStall(port, '/halfduplex/', events, 'Caddy');
    const result = await done;
    if (!(result instanceof Error)) {
      expect(result.status).toBe(504);
      expect(result.length).toBeLessThan(32 * MiB);
    }
    await waitForLog(server.errorLog, new RegExp(`"msg":"write tcp [^"]*: i/o timeout".*${t}.*"status":504`));
  });

  it('a stalled client stalls the app: bounded writes and memory', async () => {
    await expectStalledDownloadBounded(port, '/', events);
  });

  it('an app that reads its body late holds its memory: 100 MB upload', async () => {
    await expectLateReadBounded(port, '/');
  });

  it('client aborts reach the handler mid-response; a silent long-poll is not aborted', async () => {
    expect(await clientAbort(port, '/', events)).toBeLessThan(5000);
    // Until the response header arrives Caddy 2.6's FastCGI transport is blocked reading the app and does not
    // watch the request's context: a client that leaves a silent long-poll is not passed on.
    await expectLongPollNotAborted(port, '/', events);
  });

  it("status codes: Caddy sends Go's reason phrase, and passes the CGI Status header on to the client", async () => {
    const results = await expectReasonPhrasesReplaced(port, '/');
    // Caddy 2.6 reads the status from the Status header but leaves the header in the response.
    expect(results.get(404)!.headers.status).toBe('404 Nope Not Here');
  });

  it('redirects: the status and Location the app set', async () => {
    await expectRedirects(port, '/', [
      [302, 'http://example.test/elsewhere?x=1'],
      [301, '/moved/here'],
      [307, 'relative/path'],
    ]);
  });

  it('duplicate headers: response lines stay separate; Caddy merges request duplicates with ", ", cookies too', async () => {
    const { r, a } = await dupHeaders(port, '/');
    expect(r.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'x-dup')).toHaveLength(2);
    expect(a.params.filter(([n]) => n === 'HTTP_X_DUP')).toEqual([['HTTP_X_DUP', 'a, b']]);
    expect(a.headers['x-dup']).toBe('a, b');
    // Go's header map joined with ", " (RFC 6265 wants "; "): a cookie parser reads c1 as "1, c2=2".
    expect(a.params.filter(([n]) => n === 'HTTP_COOKIE')).toEqual([['HTTP_COOKIE', 'c1=1, c2=2']]);
  });

  it('unicode and binary: UTF-8 path and header bytes both ways; a control byte in a header gets 400 from Caddy', async () => {
    const a = await utf8RoundTrip(port, '/caf%C3%A9/%E2%9C%93?do=utf8');
    expect(a.url).toBe('/caf%C3%A9/%E2%9C%93?do=utf8');
    expect(param(a, 'PATH_INFO')).toBe(latin1('/café/✓'));
    await expectControlByteRejected(port, '/');
  });

  it('200 request headers of 100 bytes arrive intact; a header over 64 KB is cut short by Caddy, silently', async () => {
    const headers = manyHeaders(200, 100);
    expectHeaders(await env(port, '/', headers), headers);
    const value = 'p'.repeat(60_000);
    expect((await env(port, '/', { 'X-Big': value })).headers['x-big']).toBe(value);
    // caddy v2.6.2 fastcgi/writer.go writePairs cuts a pair to maxWrite (65500) - 8 - the name's length
    // bytes: HTTP_X_BIG keeps 65482 of the 70000 bytes, and the request goes on.
    const cut = await env(port, '/', { 'X-Big': 'p'.repeat(70_000) });
    expect(cut.headers['x-big']).toBe('p'.repeat(65_500 - 8 - 'HTTP_X_BIG'.length));
  });

  it('STDERR is dropped: capture_stderr is accepted but Caddy 2.6.2 never turns it on', async () => {
    // caddy v2.6.2 modules/caddyhttp/reverseproxy/fastcgi/fastcgi.go builds its client without the
    // CaptureStderr field, so the "stderr" log entry of client.go is never written. The response is
    // unaffected; a later Caddy logs it (WARN, ERROR for a status >= 400).
    const m = tag('stderr-marker');
    const r = await httpRequest({ port, path: withQuery('/', { do: 'stderr', marker: m }) });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('stderr written\n');
    const t = tag('throw');
    expect((await httpRequest({ port, path: withQuery('/', { do: 'throw', marker: t }) })).status).toBe(500);
    // The app did fail (its own log has the stack it also sent as STDERR); Caddy's log has neither text, even
    // after the 500 was answered and logged.
    await events.waitFor(
      (e) => e.ev === 'log' && String(e.message).includes(`interop handler failure ${t}`),
      'the handler failure in the app log',
    );
    await delay(300);
    expect(readText(server.errorLog)).not.toContain(m);
    expect(readText(server.errorLog)).not.toContain(t);
  });

  it('HEAD: the app sees HEAD, the client gets headers and no body', async () => {
    await expectHead(port, '/');
  });

  it('50 concurrent requests: all answered', async () => {
    await expectConcurrentAnswered(port, '/');
  });

  it('FCGI_WEB_SERVER_ADDRS: listed peer served (every test above), unlisted peer closed at once (502)', async () => {
    await expectPeerRefused(port, '/denied/x', events, 502);
    // The app closes the connection at once: Caddy logs "EOF" when it was reading by then, or the failed
    // write ("broken pipe", "connection reset by peer") when it was still sending params or STDIN.
    await waitForLog(
      server.errorLog,
      /"msg":"(EOF|[^"]*(broken pipe|connection reset by peer))".*"uri":"\/denied\/x".*"status":502/,
    );
  });

  it('SCRIPT_NAME / PATH_INFO: split with mount cgi, handle_path with mount /prefix', async () => {
    const split = await env(port, '/split/a/b%20c');
    expect(split.listener).toBe('cgi');
    expect([param(split, 'SCRIPT_NAME'), param(split, 'PATH_INFO')]).toEqual(['/split', '/a/b c']);
    expect(split.url).toBe('/a/b%20c?do=env');
    expect(split.baseUrl).toBe('/split');
    expect(split.originalUrl).toBe('/split/a/b%20c?do=env');

    const prefix = await env(port, '/prefix/a/b%20c');
    expect(prefix.listener).toBe('prefix');
    // handle_path strips the prefix from PATH_INFO; REQUEST_URI keeps it.
    expect([param(prefix, 'SCRIPT_NAME'), param(prefix, 'PATH_INFO')]).toEqual(['', '/a/b c']);
    expect(param(prefix, 'REQUEST_URI')).toBe('/prefix/a/b%20c?do=env');
    expect(prefix.url).toBe('/a/b%20c?do=env');
    expect(prefix.baseUrl).toBe('/prefix');
  });
});
