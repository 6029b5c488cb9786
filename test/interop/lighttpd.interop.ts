// lighttpd in front of the engine: the recipe of docs/deployment.md, run in the foreground (-D) in a temporary
// directory. The test runs one app process with four listeners (the root with mount: '/', a unix socket,
// mount: 'cgi' for "/app" and fix-root-scriptname, mount: '/slash' for the trailing-slash prefix); lighttpd
// itself spawns three more through bin-path (unix socket, TCP, and one whose FCGI_WEB_SERVER_ADDRS refuses it).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  alive,
  App,
  appEnv,
  Events,
  freePorts,
  httpRequest,
  param,
  removeDir,
  tempDir,
  waitForLog,
  writeWrapper,
  type EnvAnswer,
} from './harness';
import { lighttpd } from './recipes';
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
  expectReasonPhrasesReplaced,
  expectRedirects,
  expectStalledDownloadBounded,
  latin1,
  leave,
  manyHeaders,
  MiB,
  tag,
  upload,
  utf8RoundTrip,
  withQuery,
} from './scenarios';
import { startRecipe, type RunningServer } from './servers';
import { describeServer } from './suite';

describeServer('lighttpd in front of the engine', [{ binary: 'lighttpd', pkg: 'lighttpd' }], () => {
  let dir: string;
  let events: Events;
  let app: App;
  let server: RunningServer;
  let port: number;

  beforeAll(async () => {
    dir = tempDir('lighttpd');
    for (const d of ['www', 'tmp']) fs.mkdirSync(path.join(dir, d));
    const [HTTP_PORT, APP_PORT, APP_PORT_CGI, APP_PORT_PREFIX, SPAWN_PORT, SPAWN_PORT_DENY] = await freePorts(6);
    const APP_SOCKET = path.join(dir, 'app.sock');
    events = new Events(path.join(dir, 'events.log'));
    app = await App.start(events, [
      { listen: `tcp:${APP_PORT}`, name: 'main', mount: '/' },
      { listen: `unix:${APP_SOCKET}`, name: 'unix' },
      { listen: `tcp:${APP_PORT_CGI}`, name: 'cgi', mount: 'cgi' },
      { listen: `tcp:${APP_PORT_PREFIX}`, name: 'prefix', mount: '/slash' },
    ]);
    // What bin-path runs: a wrapper that execs node on the fixture, leaving fd 0 (the listening socket) alone.
    const APP_RUN = writeWrapper(path.join(dir, 'run.sh'), appEnv(events));
    server = await startRecipe(
      lighttpd,
      dir,
      { HTTP_PORT, APP_PORT, APP_PORT_CGI, APP_PORT_PREFIX, SPAWN_PORT, SPAWN_PORT_DENY, APP_SOCKET, APP_RUN },
      { waitFor: [HTTP_PORT!], errorLog: path.join(dir, 'error.log') },
    );
    port = HTTP_PORT!;
    // lighttpd spawns its three apps at startup.
    const deadline = Date.now() + 20_000;
    while (events.find((e) => e.ev === 'listening' && e.fd0 === 'socket').length < 3) {
      if (Date.now() > deadline)
        throw new Error(
          `lighttpd did not spawn its apps:\n${events.tail()}\n${fs.readFileSync(server.errorLog, 'utf8')}`,
        );
      await delay(50);
    }
  });

  afterAll(async () => {
    await server?.stop();
    await app?.stop();
    events?.killAll();
    if (dir !== undefined) removeDir(dir);
  });

  it('GET over TCP and a unix socket: CGI variables, one connection per request, never KEEP_CONN', async () => {
    const a = await env(port, '/some/path?x=1');
    expect(a.listener).toBe('main');
    expect(param(a, 'REQUEST_METHOD')).toBe('GET');
    expect(param(a, 'QUERY_STRING')).toBe('x=1&do=env');
    expect(param(a, 'SERVER_PROTOCOL')).toBe('HTTP/1.1');
    expect(param(a, 'REMOTE_ADDR')).toBe('127.0.0.1');
    expect(param(a, 'CONTENT_LENGTH')).toBe('0');
    expect(param(a, 'REDIRECT_STATUS')).toBe('200');
    expect(a.headers.host).toBe(`127.0.0.1:${port}`);
    expect(a.keepConn).toBe(false);
    expect(a.requestId).toBe(1);
    const b = await env(port, '/again');
    expect(b.connections).toBe(a.connections + 1);
    const u = await env(port, '/unix/x');
    expect(u.listener).toBe('unix');
  });

  it("bin-path spawns the app with a listening socket on fd 0 (unix and TCP), cwd = the wrapper's directory", async () => {
    const spawned = events.find((e) => e.ev === 'listening' && e.fd0 === 'socket');
    expect(spawned).toHaveLength(3);
    for (const e of spawned) {
      expect(e.ppid).toBe(server.proc.pid);
      expect(e.cwd).toBe(dir);
    }
    const a = await env(port, '/spawn/x');
    expect(spawned.map((e) => e.pid)).toContain(a.pid);
    expect(a.listener).toBe('fd0');
    const t = await env(port, '/spawntcp/x');
    expect(spawned.map((e) => e.pid)).toContain(t.pid);
    expect(t.pid).not.toBe(a.pid);
  });

  it('FCGI_WEB_SERVER_ADDRS from bin-environment: 127.0.0.1 allowed (/spawntcp/), unlisted refused (500)', async () => {
    const allowed = events.find((e) => e.ev === 'listening' && e.webServerAddrs === '127.0.0.1');
    expect(allowed).toHaveLength(1);
    expect((await env(port, '/spawntcp/allowed')).pid).toBe(allowed[0]!.pid);
    const r = await httpRequest({ port, path: '/spawndeny/x?do=env' });
    expect(r.status).toBeGreaterThanOrEqual(500);
    await events.waitFor(
      (e) => e.ev === 'log' && String(e.message).includes('FCGI_ERR_PEER_NOT_ALLOWED'),
      'refused peer logged',
    );
  });

  it('1 MB and 100 MB both ways, buffered (default) and streaming (stream-*-body 2): exact bytes', async () => {
    for (const base of ['/', '/unix/', '/spawn/', '/stream/']) {
      await download(port, base, MiB);
      await upload(port, base, MiB);
    }
    await download(port, '/stream/', 100 * MiB);
    await upload(port, '/stream/', 100 * MiB);
    await download(port, '/', 100 * MiB);
    await upload(port, '/', 100 * MiB);
  });

  it('chunked uploads: the real CONTENT_LENGTH when lighttpd buffers; 411 when it streams', async () => {
    const buffered = await upload(port, '/', 3 * MiB + 1, { chunked: true });
    expect(buffered.contentLength).toBe(String(3 * MiB + 1));
    // Refused when the body is still arriving as lighttpd starts the backend (a small body read along with
    // the headers is measured and passes).
    const refused = await httpRequest({
      port,
      path: '/stream/?do=upload',
      body: { size: 16 * MiB, seed: 1 },
      chunked: true,
    });
    expect(refused.status).toBe(411);
  });

  it('echo (writing while reading): 16 MB streamed both ways, and through the buffered default', async () => {
    await echo(port, '/stream/', 16 * MiB);
    await echo(port, '/', 16 * MiB);
  });

  it('a stalled client stalls the app with stream-response-body 2: bounded writes and memory', async () => {
    await expectStalledDownloadBounded(port, '/stream/', events);
  });

  it('an app that reads its body late holds its memory: 100 MB streamed upload', async () => {
    await expectLateReadBounded(port, '/stream/');
  });

  it('client aborts: seen on the next write with stream-response-body 2; lighttpd does not pass them on while it buffers, nor during a silent long-poll', async () => {
    expect(await clientAbort(port, '/stream/', events)).toBeLessThan(5000);
    // Buffered (the default): lighttpd collects the whole response before sending it, and does not watch the
    // client meanwhile: the handler runs to its end although nobody is listening.
    const buffered = await leave(port, '/', events, { max: MiB, leaveEarly: true });
    const done = await events.waitFor(
      (e) => e.ev === 'trickle-done' && e.tag === buffered,
      'the trickle runs to its end',
      15_000,
    );
    expect(done.aborted).toBe(false);
    await expectLongPollNotAborted(port, '/stream/', events);
  });

  it('status codes: lighttpd sends its own reason phrase', async () => {
    await expectReasonPhrasesReplaced(port, '/');
  });

  it('redirects: the status and Location the app set', async () => {
    await expectRedirects(port, '/');
  });

  it('duplicate headers: response lines stay separate; lighttpd merges request duplicates (cookies with "; ")', async () => {
    const { r, a } = await dupHeaders(port, '/');
    expect(r.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'x-dup')).toHaveLength(2);
    expect(a.params.filter(([n]) => n === 'HTTP_X_DUP')).toEqual([['HTTP_X_DUP', 'a, b']]);
    expect(a.headers['x-dup']).toBe('a, b');
    expect(a.headers.cookie).toBe('c1=1; c2=2');
  });

  it('unicode and binary: UTF-8 path and header bytes both ways; a control byte in a header gets 400 from lighttpd', async () => {
    const a = await utf8RoundTrip(port, '/caf%C3%A9/%E2%9C%93?do=utf8');
    expect(a.url).toBe('/caf%C3%A9/%E2%9C%93?do=utf8');
    expect(param(a, 'PATH_INFO')).toBe(latin1('/✓'));
    await expectControlByteRejected(port, '/');
  });

  it('200 request headers of 100 bytes arrive intact; 60 KB of one header passes, 70 KB is refused by lighttpd', async () => {
    const headers = manyHeaders(200, 100);
    expectHeaders(await env(port, '/', headers), headers);
    const value = 'p'.repeat(60_000);
    expect((await env(port, '/', { 'X-Big': value })).headers['x-big']).toBe(value);
    const tooBig = await httpRequest({ port, path: '/?do=env', headers: { 'X-Big': 'p'.repeat(70_000) } });
    expect(tooBig.status).toBe(431);
  });

  it('response headers: 60 KB pass; over 64 KB lighttpd answers 502', async () => {
    expect((await httpRequest({ port, path: withQuery('/', { do: 'bigheader', bytes: 60_000 }) })).status).toBe(200);
    expect((await httpRequest({ port, path: withQuery('/', { do: 'bigheader', lines: 150, each: 100 }) })).status).toBe(
      200,
    );
    expect((await httpRequest({ port, path: withQuery('/', { do: 'bigheader', bytes: 70_000 }) })).status).toBe(502);
    await waitForLog(server.errorLog, 'response headers too large');
  });

  it('STDERR lands in the error log; a throwing handler gives 500 with its stack logged', async () => {
    const m = tag('stderr-marker');
    const r = await httpRequest({ port, path: withQuery('/', { do: 'stderr', marker: m }) });
    expect(r.status).toBe(200);
    await waitForLog(server.errorLog, `FastCGI-stderr:${m}`);
    const big = tag('stderr-big');
    expect(
      (await httpRequest({ port, path: withQuery('/', { do: 'stderr', marker: big, size: 100_000 }) })).status,
    ).toBe(200);
    await waitForLog(server.errorLog, big);
    const t = tag('throw');
    expect((await httpRequest({ port, path: withQuery('/', { do: 'throw', marker: t }) })).status).toBe(500);
    await waitForLog(server.errorLog, `FastCGI-stderr:Error: interop handler failure ${t}`);
  });

  it('HEAD: the app sees HEAD, the client gets no body', async () => {
    await expectHead(port, '/');
  });

  it('50 concurrent requests: all answered', async () => {
    await expectConcurrentAnswered(port, '/');
  });

  it('authorizer mode: 200 passes the request on with the Variable- headers as params; 403 goes to the client', async () => {
    const denied = await httpRequest({ port, path: '/private/doc?do=env' });
    expect(denied.status).toBe(403);
    expect(denied.body.toString()).toBe('denied by the application\n');
    const auth = await events.waitFor(
      (e) => e.ev === 'authorize' && e.uri === '/private/doc?do=env',
      'authorizer request',
    );
    // FastCGI 1.0 §6.3: no body, no SCRIPT_NAME / PATH_INFO for an authorizer.
    expect(auth.scriptName).toBeNull();
    expect(auth.pathInfo).toBeNull();
    expect(auth.contentLength).toBeNull();
    const a = await env(port, '/private/doc', { 'X-Token': 'let-me-in' });
    expect(a.listener).toBe('main');
    expect(param(a, 'INTEROP_USER')).toBe('alice');
    expect(param(a, 'INTEROP_ROLE')).toBe('AUTHORIZER');
    expect(a.params.some(([n]) => n === 'HTTP_X_IGNORED' || n === 'X_IGNORED')).toBe(false);
  });

  it('SCRIPT_NAME / PATH_INFO: root-mount split fixed by mount "/", "/app" with mount cgi, trailing slash with mount "/slash", fix-root-scriptname', async () => {
    const root = await env(port, '/foo/bar');
    expect([param(root, 'SCRIPT_NAME'), param(root, 'PATH_INFO')]).toEqual(['/foo', '/bar']);
    expect(root.url).toBe('/foo/bar?do=env');
    expect(root.baseUrl).toBe('');

    const app = await env(port, '/app/x/y%20z');
    expect([param(app, 'SCRIPT_NAME'), param(app, 'PATH_INFO')]).toEqual(['/app', '/x/y z']);
    expect(app.url).toBe('/x/y%20z?do=env');
    expect(app.baseUrl).toBe('/app');
    // "/app" matches as a string: /application/x arrives as SCRIPT_NAME=/application.
    const application = await env(port, '/application/x');
    expect(application.baseUrl).toBe('/application');
    expect(application.url).toBe('/x?do=env');

    const slash = await env(port, '/slash/a/b');
    expect([param(slash, 'SCRIPT_NAME'), param(slash, 'PATH_INFO')]).toEqual(['/slash/a', '/b']);
    expect(slash.url).toBe('/a/b?do=env');
    expect(slash.baseUrl).toBe('/slash');

    const fixed = await env(port, '/fixroot/a/b');
    expect([param(fixed, 'SCRIPT_NAME'), param(fixed, 'PATH_INFO')]).toEqual(['', '/fixroot/a/b']);
    expect(fixed.url).toBe('/fixroot/a/b?do=env');
    expect(fixed.baseUrl).toBe('');
  });

  it('SIGTERM to a spawned app with a request in flight: it finishes, the app exits 0, lighttpd spawns a new one', async () => {
    const before = await env(port, '/spawn/who');
    const t = tag('sigterm');
    const inflight = httpRequest({ port, path: withQuery('/spawn/', { do: 'slow', ms: 1000, tag: t }) });
    await events.waitFor((e) => e.ev === 'request' && e.tag === t, 'the slow request reached the spawned app');
    process.kill(before.pid, 'SIGTERM');
    const r = await inflight;
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body.toString()) as { pid: number }).pid).toBe(before.pid);
    await events.waitFor((e) => e.ev === 'exit' && e.pid === before.pid && e.code === 0, 'the spawned app exits 0');
    const deadline = Date.now() + 5000;
    while (alive(before.pid) && Date.now() < deadline) await delay(50);
    // lighttpd notices the dead backend and starts another.
    let after: EnvAnswer | undefined;
    for (let i = 0; i < 40 && after === undefined; i++) {
      const res = await httpRequest({ port, path: '/spawn/again?do=env' });
      if (res.status === 200) after = JSON.parse(res.body.toString()) as EnvAnswer;
      else await delay(250);
    }
    expect(after?.pid).toBeDefined();
    expect(after!.pid).not.toBe(before.pid);
  });
});
