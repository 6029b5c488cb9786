// Apache 2.4 mod_fcgid spawning the engine: the recipe of docs/deployment.md, run in the foreground in a temporary
// server root. mod_fcgid starts the app on demand (a wrapper that execs node on the fixture) with a listening
// unix socket on fd 0, as User (www-data when the suite runs as root), one request per process at a time.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
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
import { apacheFcgid } from './recipes';
import {
  clientAbort,
  download,
  dupHeaders,
  echo,
  env,
  expectControlByteRejected,
  expectHead,
  expectHeaders,
  expectLongPollNotAborted,
  expectReasonPhrasesKept,
  expectRedirects,
  expectStalledDownloadBounded,
  manyHeaders,
  MiB,
  tag,
  upload,
  utf8RoundTrip,
  withQuery,
} from './scenarios';
import { startRecipe, type RunningServer } from './servers';
import { describeServer } from './suite';

const ROOT_USER = process.getuid?.() === 0;

describeServer(
  'Apache mod_fcgid spawning the engine',
  [
    { binary: 'apache2', pkg: 'apache2' },
    { file: '/usr/lib/apache2/modules/mod_fcgid.so', pkg: 'libapache2-mod-fcgid' },
  ],
  () => {
    let dir: string;
    let appDir: string;
    let events: Events;
    let server: RunningServer;
    let port: number;
    const base = '/fcgid/run.sh';

    beforeAll(async () => {
      dir = tempDir('apache-fcgid');
      appDir = path.join(dir, 'app');
      for (const d of ['htdocs', 'app', 'fcgidsock']) fs.mkdirSync(path.join(dir, d), { mode: 0o755 });
      // As root, Apache's children and the apps run as www-data: they need the IPC directory.
      if (ROOT_USER) execFileSync('chown', ['www-data:www-data', path.join(dir, 'fcgidsock')]);
      const [HTTP_PORT] = await freePorts(1);
      events = new Events(path.join(dir, 'events.log'));
      const APP_RUN = writeWrapper(
        path.join(appDir, 'run.sh'),
        appEnv(events, [{ listen: 'fd0', name: 'fcgid', mount: 'cgi' }]),
      );
      writeWrapper(path.join(appDir, 'deny.sh'), appEnv(events, [{ listen: 'fd0', name: 'deny' }]));
      server = await startRecipe(
        apacheFcgid,
        dir,
        { HTTP_PORT, APP_DIR: appDir, APP_RUN },
        { waitFor: [HTTP_PORT!], errorLog: path.join(dir, 'error.log') },
      );
      port = HTTP_PORT!;
    });

    afterAll(async () => {
      await server?.stop();
      events?.killAll();
      if (dir !== undefined) removeDir(dir);
    });

    it('spawns the app on demand with a listening unix socket on fd 0, as User, cwd = the script directory', async () => {
      const a = await env(port, `${base}/x/y`);
      expect(a.listener).toBe('fcgid');
      const started = events.find((e) => e.ev === 'listening' && e.pid === a.pid)[0]!;
      expect(started.fd0).toBe('socket');
      expect(started.cwd).toBe(appDir);
      if (ROOT_USER) expect(started.uid).toBe(33);
      expect(param(a, 'HTTP_CONNECTION')).toBe('close');
      expect(a.keepConn).toBe(false);
      expect(a.requestId).toBe(1);
      // The next request goes to the same (idle) process, on a new connection.
      const b = await env(port, `${base}/again`);
      expect(b.pid).toBe(a.pid);
      expect(b.connections).toBe(a.connections + 1);
    });

    it('SCRIPT_NAME is the script and PATH_INFO the rest: mount cgi gives the app its own paths', async () => {
      const a = await env(port, `${base}/x/y%20z`);
      expect([param(a, 'SCRIPT_NAME'), param(a, 'PATH_INFO')]).toEqual([base, '/x/y z']);
      expect(a.url).toBe('/x/y%20z?do=env');
      expect(a.baseUrl).toBe(base);
      expect(a.originalUrl).toBe(`${base}/x/y%20z?do=env`);
      const bare = await env(port, base);
      expect(param(bare, 'PATH_INFO')).toBeUndefined();
      expect(bare.url).toBe('/?do=env');
      expect(bare.baseUrl).toBe(base);
    });

    it('1 MB both ways, 100 MB down and 32 MB up (mod_fcgid spools request bodies): exact bytes', async () => {
      await download(port, `${base}/`, MiB);
      await upload(port, `${base}/`, MiB);
      await download(port, `${base}/`, 100 * MiB);
      await upload(port, `${base}/`, 32 * MiB);
    });

    it('chunked uploads arrive de-chunked with the real CONTENT_LENGTH', async () => {
      const answer = await upload(port, `${base}/`, 3 * MiB + 1, { chunked: true });
      expect(answer.contentLength).toBe(String(3 * MiB + 1));
      expect(answer.transferEncoding).toBeNull();
    });

    it('echo (writing while reading) completes while the body fits the buffers: mod_fcgid writes the whole body before it reads', async () => {
      // mod_fcgid sends all of STDIN before it reads STDOUT: an app that writes back more than the socket
      // buffers hold before it has read the body waits for mod_fcgid, which waits for it (until FcgidIOTimeout).
      await echo(port, `${base}/`, 256 * 1024);
      await echo(port, `${base}/`, 256 * 1024, { chunked: true });
    });

    it('a stalled client stalls the app: bounded writes and memory', async () => {
      await expectStalledDownloadBounded(port, `${base}/`, events);
    });

    it("client aborts: seen once the output passes mod_fcgid's buffer; a silent long-poll is not aborted", async () => {
      expect(await clientAbort(port, `${base}/`, events, { chunk: 256 * 1024 })).toBeLessThan(5000);
      await expectLongPollNotAborted(port, `${base}/`, events);
    });

    it('status codes keep the reason phrase; redirects keep status and Location', async () => {
      const codes: [number, string][] = [
        [200, 'OK'],
        [201, 'Created'],
        [204, 'No Content'],
        [404, 'Nope Not Here'],
        [500, 'Broken On Purpose'],
      ];
      await expectReasonPhrasesKept(port, `${base}/`, codes);
      await expectRedirects(port, `${base}/`, [
        [302, 'http://example.test/elsewhere?x=1'],
        [302, '/local/path'],
        [301, '/moved/here'],
      ]);
    });

    it('duplicate headers merged as Apache does; unicode both ways; a control byte gets 400', async () => {
      const { r, a } = await dupHeaders(port, `${base}/`);
      expect(r.headers['x-dup']).toBe('one, two');
      expect(a.headers['x-dup']).toBe('a, b');
      expect(a.headers.cookie).toBe('c1=1, c2=2');
      const ua = await utf8RoundTrip(port, `${base}/caf%C3%A9?do=utf8`);
      expect(ua.url).toBe('/caf%C3%A9?do=utf8');
      await expectControlByteRejected(port, `${base}/`);
    });

    it('200 request headers pass; params over 64 KiB fail in mod_fcgid (one PARAMS record): 500', async () => {
      const headers = manyHeaders(200, 100);
      expectHeaders(await env(port, `${base}/`, headers), headers);
      const big = await httpRequest({ port, path: `${base}/?do=env`, headers: manyHeaders(5, 15_000) });
      expect(big.status).toBe(500);
    });

    it('response headers: 8000-byte lines pass, longer ones give 500', async () => {
      expect((await httpRequest({ port, path: withQuery(`${base}/`, { do: 'bigheader', bytes: 8000 }) })).status).toBe(
        200,
      );
      expect((await httpRequest({ port, path: withQuery(`${base}/`, { do: 'bigheader', bytes: 9000 }) })).status).toBe(
        500,
      );
    });

    it('STDERR lands in the error log ("mod_fcgid: stderr:"); a throwing handler gives 500', async () => {
      const m = tag('stderr-marker');
      expect((await httpRequest({ port, path: withQuery(`${base}/`, { do: 'stderr', marker: m }) })).status).toBe(200);
      await waitForLog(server.errorLog, `mod_fcgid: stderr: ${m}`);
      const t = tag('throw');
      expect((await httpRequest({ port, path: withQuery(`${base}/`, { do: 'throw', marker: t }) })).status).toBe(500);
      await waitForLog(server.errorLog, `mod_fcgid: stderr: Error: interop handler failure ${t}`);
    });

    it('HEAD: the app sees HEAD, the client gets no body', async () => {
      await expectHead(port, `${base}/`);
    });

    it('concurrent requests are spread over more processes (FcgidMaxProcessesPerClass 4)', async () => {
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          httpRequest({ port, path: withQuery(`${base}/c/${i}`, { do: 'slow', ms: 300 }) }),
        ),
      );
      expect(results.map((r) => r.status)).toEqual(Array(12).fill(200));
      const pids = new Set(results.map((r) => (JSON.parse(r.body.toString()) as { pid: number }).pid));
      expect(pids.size).toBeGreaterThan(1);
      expect(pids.size).toBeLessThanOrEqual(4);
    });

    it("FCGI_WEB_SERVER_ADDRS (FcgidCmdOptions InitialEnv) refuses mod_fcgid's unix connections: 500", async () => {
      const r = await httpRequest({ port, path: '/fcgid/deny.sh/x?do=env' });
      expect(r.status).toBe(500);
      await events.waitFor(
        (e) => e.ev === 'log' && e.listener === 'deny' && String(e.message).includes('non-TCP peer'),
        'refused unix peer logged',
      );
    });

    it('FcgidAuthenticator + FcgidAuthorizer: 401 without credentials or without access, Variable- headers reach the app', async () => {
      const none = await httpRequest({ port, path: `${base}/private/doc?do=env` });
      expect(none.status).toBe(401);
      const basic = (user: string): string => `Basic ${Buffer.from(`${user}:secret`).toString('base64')}`;
      // The authorizer's 403 becomes 401 (mod_fcgid answers a failed authorization with HTTP_UNAUTHORIZED).
      const carol = await httpRequest({
        port,
        path: `${base}/private/doc?do=env`,
        headers: { Authorization: basic('carol') },
      });
      expect(carol.status).toBe(401);
      await waitForLog(
        server.errorLog,
        'Authorization of user carol to access /fcgid/run.sh/private/doc failed, reason: script returned status 403',
      );
      const roles = events.find((e) => e.ev === 'authorize' && e.user === 'carol').map((e) => e.apacheRole);
      expect(roles).toEqual(['AUTHENTICATOR', 'AUTHORIZER']);
      const alice = await env(port, `${base}/private/doc`, { Authorization: basic('alice') });
      expect(param(alice, 'REMOTE_USER')).toBe('alice');
      // Both phases answered with the same Variable- headers: mod_fcgid merges them into one value.
      expect(param(alice, 'INTEROP_USER')).toBe('alice, alice');
      expect(param(alice, 'INTEROP_ROLE')).toBe('AUTHENTICATOR, AUTHORIZER');
    });

    it('SIGTERM to the app with a request in flight: it finishes, the app exits 0, a new process takes over', async () => {
      const t = tag('sigterm');
      const inflight = httpRequest({ port, path: withQuery(`${base}/`, { do: 'slow', ms: 1000, tag: t }) });
      const request = await events.waitFor(
        (e) => e.ev === 'request' && e.tag === t,
        'the slow request reached the app',
      );
      process.kill(request.pid, 'SIGTERM');
      const r = await inflight;
      expect(r.status).toBe(200);
      await events.waitFor((e) => e.ev === 'exit' && e.pid === request.pid && e.code === 0, 'the app exits 0');
      // mod_fcgid learns of the exit late: it may route one more request to the gone process (500, "End of
      // script output before headers"); then it spawns a new one.
      let after: EnvAnswer | undefined;
      const statuses: number[] = [];
      for (let i = 0; i < 10 && after === undefined; i++) {
        const res = await httpRequest({ port, path: `${base}/after?do=env` });
        statuses.push(res.status);
        if (res.status === 200) after = JSON.parse(res.body.toString()) as EnvAnswer;
      }
      expect(statuses.filter((s) => s !== 200).length, `statuses ${statuses.join(', ')}`).toBeLessThanOrEqual(1);
      expect(after!.pid).not.toBe(request.pid);
    });
  },
);
