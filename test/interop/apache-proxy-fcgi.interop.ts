// Apache 2.4 mod_proxy_fcgi in front of the engine: the recipe of docs/deployment.md, run in the foreground in a
// temporary server root. The app runs in its own process: mount: '/tcp' on the main listener (Apache sends the
// whole path as SCRIPT_NAME), a second TCP listener for the enablereuse=on worker, a unix socket, mount: 'cgi'
// behind proxy-fcgi-pathinfo, and one whose FCGI_WEB_SERVER_ADDRS refuses 127.0.0.1.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  App,
  childPids,
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
import { apacheProxyFcgi } from './recipes';
import {
  clientAbort,
  download,
  dupHeaders,
  echo,
  env,
  expectConcurrentAnswered,
  expectControlByteRejected,
  expectHead,
  expectHeaders,
  expectLateReadBounded,
  expectLongPollNotAborted,
  expectPeerRefused,
  expectReasonPhrasesKept,
  expectRedirects,
  expectStalledDownloadBounded,
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

describeServer(
  'Apache mod_proxy_fcgi in front of the engine',
  [
    { binary: 'apache2', pkg: 'apache2' },
    { file: '/usr/lib/apache2/modules/mod_proxy_fcgi.so', pkg: 'apache2' },
  ],
  () => {
    let dir: string;
    let events: Events;
    let app: App;
    let server: RunningServer;
    let port: number;

    beforeAll(async () => {
      dir = tempDir('apache-proxy');
      fs.mkdirSync(path.join(dir, 'htdocs'));
      const [HTTP_PORT, APP_PORT, APP_PORT_REUSE, APP_PORT_CGI, APP_PORT_DENY] = await freePorts(5);
      const APP_SOCKET = path.join(dir, 'app.sock');
      events = new Events(path.join(dir, 'events.log'));
      app = await App.start(events, [
        { listen: `tcp:${APP_PORT}`, name: 'main', mount: '/tcp' },
        { listen: `tcp:${APP_PORT_REUSE}`, name: 'reuse', mount: '/reuse' },
        // Apache's children run as www-data.
        { listen: `unix:${APP_SOCKET}`, name: 'unix', socketMode: 0o666 },
        { listen: `tcp:${APP_PORT_CGI}`, name: 'cgi', mount: 'cgi' },
        { listen: `tcp:${APP_PORT_DENY}`, name: 'deny', webServerAddrs: ['10.9.8.7'] },
      ]);
      server = await startRecipe(
        apacheProxyFcgi,
        dir,
        { HTTP_PORT, APP_PORT, APP_PORT_REUSE, APP_PORT_CGI, APP_PORT_DENY, APP_SOCKET },
        { waitFor: [HTTP_PORT!], errorLog: path.join(dir, 'error.log') },
      );
      port = HTTP_PORT!;
    });

    afterAll(async () => {
      await server?.stop();
      await app?.stop();
      if (dir !== undefined) removeDir(dir);
    });

    it('GET over TCP and a unix socket: CGI variables, one connection per request without enablereuse', async () => {
      const a = await env(port, '/tcp/some/path?x=1');
      expect(a.listener).toBe('main');
      expect(param(a, 'REQUEST_METHOD')).toBe('GET');
      expect(param(a, 'QUERY_STRING')).toBe('x=1&do=env');
      expect(param(a, 'SERVER_PROTOCOL')).toBe('HTTP/1.1');
      expect(param(a, 'REMOTE_ADDR')).toBe('127.0.0.1');
      expect(param(a, 'SCRIPT_FILENAME')).toMatch(/^proxy:fcgi:\/\/127\.0\.0\.1:\d+\/some\/path$/);
      expect(a.headers.host).toBe(`127.0.0.1:${port}`);
      expect(a.keepConn).toBe(false);
      expect(a.requestId).toBe(1);
      const b = await env(port, '/tcp/again');
      expect(b.connections).toBe(a.connections + 1);
      expect((await env(port, '/unix/x')).listener).toBe('unix');
    });

    it('enablereuse=on: FCGI_KEEP_CONN, 100 requests over the pool of the one Apache child, request id 1', async () => {
      const answers: EnvAnswer[] = [];
      for (let i = 0; i < 100; i++) answers.push(await env(port, `/reuse/${i}`, { Connection: 'close' }));
      for (const a of answers) {
        expect(a.keepConn).toBe(true);
        expect(a.requestId).toBe(1);
      }
      // Each Apache child keeps its own pool: for all 100 requests the app accepted at most one connection
      // per child process.
      const accepted = answers[answers.length - 1]!.connections - answers[0]!.connections + 1;
      const children = childPids(server.proc.pid).length;
      expect(children).toBeGreaterThan(0);
      expect(accepted).toBeLessThanOrEqual(children);
    });

    it('1 MB and 100 MB both ways: exact bytes (Apache streams both ways)', async () => {
      for (const base of ['/tcp/', '/unix/', '/reuse/']) {
        await download(port, base, MiB);
        await upload(port, base, MiB);
      }
      await download(port, '/tcp/', 100 * MiB);
      await upload(port, '/tcp/', 100 * MiB);
    });

    it('chunked uploads: CONTENT_LENGTH when the body fits the 16 KB prefetch, else absent with HTTP_TRANSFER_ENCODING', async () => {
      const small = await upload(port, '/tcp/', 1000, { chunked: true });
      expect(small.contentLength).toBe('1000');
      const large = await upload(port, '/tcp/', 3 * MiB + 1, { chunked: true });
      expect(large.contentLength).toBeNull();
      expect(large.transferEncoding).toBe('chunked');
    });

    it('echo (writing while reading): 16 MB, with Content-Length and chunked', async () => {
      await echo(port, '/tcp/', 16 * MiB);
      await echo(port, '/tcp/', 16 * MiB, { chunked: true });
    });

    it('a stalled client stalls the app (Apache passes backpressure): bounded writes and memory', async () => {
      await expectStalledDownloadBounded(port, '/tcp/', events);
    });

    it('an app that reads its body late holds its memory: 100 MB upload', async () => {
      await expectLateReadBounded(port, '/tcp/');
    });

    it('client aborts: seen once a write fails (big writes); a silent long-poll is not aborted (Apache reads the backend only)', async () => {
      expect(await clientAbort(port, '/tcp/', events, { chunk: 256 * 1024 })).toBeLessThan(5000);
      await expectLongPollNotAborted(port, '/tcp/', events);
    });

    it('status codes keep the reason phrase the engine sends', async () => {
      await expectReasonPhrasesKept(port, '/tcp/', REASON_PHRASES);
    });

    it('redirects: the status and Location the app set', async () => {
      await expectRedirects(port, '/tcp/');
    });

    it('duplicate headers: Apache merges response duplicates except Set-Cookie, and request duplicates, cookies with ", "', async () => {
      const { r, a } = await dupHeaders(port, '/tcp/');
      expect(r.headers['x-dup']).toBe('one, two');
      expect(a.headers['x-dup']).toBe('a, b');
      expect(a.headers.cookie).toBe('c1=1, c2=2');
    });

    it('unicode and binary: UTF-8 path and header bytes both ways; a control byte in a header gets 400 from Apache', async () => {
      const a = await utf8RoundTrip(port, '/tcp/caf%C3%A9/%E2%9C%93?do=utf8');
      expect(a.url).toBe('/caf%C3%A9/%E2%9C%93?do=utf8');
      expect(a.originalUrl).toBe('/tcp/caf%C3%A9/%E2%9C%93?do=utf8');
      await expectControlByteRejected(port, '/tcp/');
    });

    it('200 request headers; params over 64 KiB in several ≤16 KB records reassemble; a single variable over 16 KB is dropped (AH02536)', async () => {
      const headers = manyHeaders(200, 100);
      expectHeaders(await env(port, '/tcp/', headers), headers);
      // Five 15 KB headers: 75 KB of params, in several PARAMS records.
      const big = manyHeaders(5, 15_000);
      const a = await env(port, '/tcp/', big);
      expectHeaders(a, big);
      expect(a.params.reduce((n, [k, v]) => n + k.length + v.length, 0)).toBeGreaterThan(65_535);
      const dropped = await env(port, '/tcp/', { 'X-Huge': 'h'.repeat(20_000) });
      expect(dropped.headers['x-huge']).toBeUndefined();
      await waitForLog(server.errorLog, 'AH02536');
    });

    it('response headers: 8000-byte lines pass, a longer line gives 500 (AH01070)', async () => {
      expect((await httpRequest({ port, path: withQuery('/tcp/', { do: 'bigheader', bytes: 8000 }) })).status).toBe(
        200,
      );
      expect(
        (await httpRequest({ port, path: withQuery('/tcp/', { do: 'bigheader', lines: 150, each: 100 }) })).status,
      ).toBe(200);
      expect((await httpRequest({ port, path: withQuery('/tcp/', { do: 'bigheader', bytes: 9000 }) })).status).toBe(
        500,
      );
      await waitForLog(server.errorLog, 'AH01070');
    });

    it('STDERR lands in the error log (AH01071); a throwing handler gives 500 with its stack logged', async () => {
      const m = tag('stderr-marker');
      expect((await httpRequest({ port, path: withQuery('/tcp/', { do: 'stderr', marker: m }) })).status).toBe(200);
      await waitForLog(server.errorLog, `AH01071: Got error '${m}`);
      const t = tag('throw');
      expect((await httpRequest({ port, path: withQuery('/tcp/', { do: 'throw', marker: t }) })).status).toBe(500);
      await waitForLog(server.errorLog, `Got error 'Error: interop handler failure ${t}`);
    });

    it('HEAD: the app sees HEAD, the client gets no body', async () => {
      await expectHead(port, '/tcp/');
    });

    it('50 concurrent requests: all answered', async () => {
      await expectConcurrentAnswered(port, '/tcp/');
    });

    it('FCGI_WEB_SERVER_ADDRS: an unlisted peer is closed at once (503, AH01075)', async () => {
      await expectPeerRefused(port, '/denied/x', events, 503);
      expect(readText(server.errorLog)).toMatch(/AH01075|AH01067/);
    });

    it('SCRIPT_NAME / PATH_INFO: whole-path SCRIPT_NAME fixed by mount "/tcp"; proxy-fcgi-pathinfo with mount cgi', async () => {
      const whole = await env(port, '/tcp/a/b%20c');
      expect(param(whole, 'SCRIPT_NAME')).toBe('/tcp/a/b c');
      expect(param(whole, 'PATH_INFO')).toBeUndefined();
      expect(whole.url).toBe('/a/b%20c?do=env');
      expect(whole.baseUrl).toBe('/tcp');
      expect(whole.originalUrl).toBe('/tcp/a/b%20c?do=env');
      const root = await env(port, '/tcp/');
      expect(root.url).toBe('/?do=env');

      const pi = await env(port, '/pi/a/b%20c');
      expect([param(pi, 'SCRIPT_NAME'), param(pi, 'PATH_INFO')]).toEqual(['/pi', '/a/b c']);
      expect(pi.url).toBe('/a/b%20c?do=env');
      expect(pi.baseUrl).toBe('/pi');
    });

    it('SIGTERM with requests in flight and idle reused connections: the request finishes, the app exits 0 at once', async () => {
      await env(port, '/reuse/before-sigterm'); // Apache now pools an idle connection to the app
      const t = tag('sigterm');
      const inflight = httpRequest({ port, path: withQuery('/tcp/', { do: 'slow', ms: 1500, tag: t }) });
      await events.waitFor((e) => e.ev === 'request' && e.tag === t, 'the slow request reached the app');
      const signalled = Date.now();
      app.proc.signal('SIGTERM');
      expect((await inflight).status).toBe(200);
      expect((await app.proc.exited).code).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(5000);
    });
  },
);
