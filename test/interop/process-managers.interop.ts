// Process managers that start the app with a listening socket on fd 0 (or systemd's fd 3) and speak no FastCGI
// themselves: spawn-fcgi, supervisord [fcgi-program], systemd socket activation (systemd-socket-activate, as
// systemd does it) and cgi-fcgi -start. libfcgi's cgi-fcgi is the web server here: a strict client whose whole
// environment becomes the params, in 8184-byte records that split pairs.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseCgiResponse, TestPeer } from '../helpers/fcgi-peer';
import { bodySha256, blocks } from '../fixtures/interop/data';
import {
  alive,
  appEnv,
  cgiEnv,
  cgiFcgi,
  Events,
  findBinary,
  freePorts,
  killPid,
  Proc,
  readText,
  removeDir,
  tempDir,
  waitForListen,
  writeWrapper,
  type EnvAnswer,
  type Listener,
} from './harness';
import { cgiFcgiStart, render, spawnFcgi, supervisor, systemd } from './recipes';
import { argv, writeRecipe } from './servers';
import { describeServer } from './suite';

const CGI_FCGI = { binary: 'cgi-fcgi', pkg: 'libfcgi-bin' };

function body(size: number, seed: number): Buffer {
  return Buffer.concat([...blocks(size, seed)]);
}

/** One request through cgi-fcgi; returns the parsed CGI response (and the exit code). */
async function request(
  address: string,
  uri: string,
  options: Parameters<typeof cgiEnv>[1] & { stdin?: Buffer } = {},
): Promise<{
  code: number | null;
  status: number;
  header(name: string): string | undefined;
  body: Buffer;
  stderr: string;
}> {
  const result = await cgiFcgi(address, cgiEnv(uri, options), options.stdin ?? '');
  if (result.code !== 0)
    return { code: result.code, status: 0, header: () => undefined, body: result.stdout, stderr: result.stderr };
  const cgi = parseCgiResponse(result.stdout);
  return { code: result.code, status: cgi.status, header: cgi.header, body: cgi.body, stderr: result.stderr };
}

async function envOf(address: string, uri: string, options: Parameters<typeof cgiEnv>[1] = {}): Promise<EnvAnswer> {
  const r = await request(address, uri, options);
  expect(r.code, r.stderr).toBe(0);
  expect(r.status).toBe(200);
  return JSON.parse(r.body.toString()) as EnvAnswer;
}

function pidsListening(events: Events): number[] {
  return events.find((e) => e.ev === 'listening').map((e) => e.pid);
}

async function waitForProcesses(events: Events, count: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pidsListening(events).length < count) {
    if (Date.now() > deadline) throw new Error(`expected ${count} app processes:\n${events.tail()}`);
    await delay(50);
  }
}

describeServer(
  'spawn-fcgi starting the engine (cgi-fcgi as the web server)',
  [{ binary: 'spawn-fcgi', pkg: 'spawn-fcgi' }, CGI_FCGI],
  () => {
    let dir: string;
    let events: Events;
    let run: string;
    let tcp: Proc;
    let port: number;
    let denyPort: number;
    const listeners: Listener[] = [{ listen: 'fd0', mount: 'cgi' }];

    beforeAll(async () => {
      dir = tempDir('spawn-fcgi');
      events = new Events(path.join(dir, 'events.log'));
      run = writeWrapper(path.join(dir, 'run.sh'), appEnv(events, listeners));
      [port, denyPort] = await freePorts(2);
      tcp = new Proc('spawn-fcgi', argv(render(spawnFcgi.command, { APP_PORT: port!, APP_RUN: run })), {
        env: { ...process.env, FCGI_WEB_SERVER_ADDRS: '127.0.0.1' },
      });
      await waitForListen(port!, 20_000, tcp);
      await waitForProcesses(events, 1);
    });

    afterAll(async () => {
      await tcp?.stop();
      events?.killAll();
      if (dir !== undefined) removeDir(dir);
    });

    it('-n execs the app in place with the TCP listener on fd 0; mount cgi follows SCRIPT_NAME / PATH_INFO', async () => {
      const a = await envOf(`127.0.0.1:${port}`, '/app/x%20y?q=1', { scriptName: '/app' });
      expect(a.pid).toBe(tcp.pid);
      expect(events.find((e) => e.ev === 'listening' && e.pid === tcp.pid)[0]!.fd0).toBe('socket');
      expect(a.url).toBe('/x%20y?q=1');
      expect(a.baseUrl).toBe('/app');
      expect(a.keepConn).toBe(false);
    });

    // cgi-fcgi breaks (exit 254, "unsupported version") when a record header of the response straddles two of
    // its reads: AppServerReadHandler does memcpy(&header + headerLen, ...), pointer arithmetic in units of the
    // whole header. The chance grows with the response size (and with load), so big responses go through the
    // suite's own FastCGI peer instead (test/helpers/fcgi-peer.ts; a recording proxy showed our records intact).
    it('1 MB up and 256 KB down through cgi-fcgi, and a 100 KB param split across PARAMS records: exact bytes', async () => {
      const size = 1 << 20;
      const up = await request(`127.0.0.1:${port}`, '/app/?do=upload', {
        scriptName: '/app',
        contentLength: size,
        stdin: body(size, 4),
      });
      expect(up.status).toBe(200);
      const answer = JSON.parse(up.body.toString()) as { bytes: number; sha256: string };
      expect(answer).toMatchObject({ bytes: size, sha256: bodySha256(size, 4) });
      const small = 256 * 1024;
      const down = await request(`127.0.0.1:${port}`, `/app/?do=download&size=${small}&seed=6`, { scriptName: '/app' });
      expect(down.body.length).toBe(small);
      expect(createHash('sha256').update(down.body).digest('hex')).toBe(bodySha256(small, 6));
      const echoed = await request(`127.0.0.1:${port}`, '/app/?do=echo', {
        scriptName: '/app',
        contentLength: small,
        stdin: body(small, 8),
      });
      expect(createHash('sha256').update(echoed.body).digest('hex')).toBe(bodySha256(small, 8));
      const big = 'v'.repeat(100_000);
      const a = await envOf(`127.0.0.1:${port}`, '/app/', { scriptName: '/app', extra: { HTTP_X_BIG: big } });
      expect(a.headers['x-big']).toBe(big);
    });

    it('16 MB echo (writing while reading) and 16 MB download to a full-duplex peer on the socket spawn-fcgi made', async () => {
      const size = 16 << 20;
      const peer = await TestPeer.connect({ port });
      try {
        const params = cgiEnv('/app/?do=echo', { scriptName: '/app', contentLength: size });
        const echoed = parseCgiResponse(
          (await peer.request({ params, stdin: body(size, 9), timeoutMs: 30_000 })).stdout,
        );
        expect(echoed.status).toBe(200);
        expect(echoed.body.length).toBe(size);
        expect(createHash('sha256').update(echoed.body).digest('hex')).toBe(bodySha256(size, 9));
      } finally {
        peer.destroy();
      }
      const peer2 = await TestPeer.connect({ port });
      try {
        const down = parseCgiResponse(
          (
            await peer2.request({
              params: cgiEnv(`/app/?do=download&size=${size}&seed=10`, { scriptName: '/app' }),
              timeoutMs: 30_000,
            })
          ).stdout,
        );
        expect(down.body.length).toBe(size);
        expect(createHash('sha256').update(down.body).digest('hex')).toBe(bodySha256(size, 10));
      } finally {
        peer2.destroy();
      }
    });

    it("STDERR reaches cgi-fcgi's stderr; the response is intact", async () => {
      const r = await request(`127.0.0.1:${port}`, '/app/?do=stderr&marker=spawn-stderr-marker', {
        scriptName: '/app',
      });
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe('stderr written\n');
      expect(r.stderr).toContain('spawn-stderr-marker');
    });

    it("FCGI_WEB_SERVER_ADDRS from spawn-fcgi's environment: an unlisted peer is refused", async () => {
      const deny = new Proc('spawn-fcgi-deny', argv(render(spawnFcgi.command, { APP_PORT: denyPort!, APP_RUN: run })), {
        env: { ...process.env, FCGI_WEB_SERVER_ADDRS: '10.9.8.7' },
      });
      try {
        await waitForListen(denyPort!, 20_000, deny);
        await events.waitFor((e) => e.ev === 'listening' && e.pid === deny.pid, 'the second app');
        const r = await cgiFcgi(`127.0.0.1:${denyPort}`, cgiEnv('/app/', { scriptName: '/app' }));
        expect(r.code).not.toBe(0);
        await events.waitFor(
          (e) => e.ev === 'log' && e.pid === deny.pid && String(e.message).includes('FCGI_ERR_PEER_NOT_ALLOWED'),
          'refused peer logged',
        );
      } finally {
        await deny.stop();
      }
    });

    it('unix socket variant: -s with -M sets the socket mode', async () => {
      const socket = path.join(dir, 'app.sock');
      const variant = spawnFcgi.variants![0]!.command;
      const unix = new Proc('spawn-fcgi-unix', argv(render(variant, { APP_SOCKET: socket, APP_RUN: run })));
      try {
        await waitForListen(socket, 20_000, unix);
        expect(fs.statSync(socket).mode & 0o777).toBe(0o660);
        const a = await envOf(socket, '/app/u', { scriptName: '/app' });
        expect(a.pid).toBe(unix.pid);
        expect(a.url).toBe('/u');
      } finally {
        await unix.stop();
      }
    });

    it('SIGTERM with a request in flight: it finishes, the app exits 0', async () => {
      const inflight = request(`127.0.0.1:${port}`, '/app/?do=slow&ms=1000&tag=spawn-sigterm', { scriptName: '/app' });
      await events.waitFor((e) => e.ev === 'request' && e.tag === 'spawn-sigterm', 'the slow request reached the app');
      tcp.signal('SIGTERM');
      expect((await inflight).status).toBe(200);
      expect((await tcp.exited).code).toBe(0);
    });
  },
);

describeServer(
  'supervisord [fcgi-program] starting the engine (cgi-fcgi as the web server)',
  [{ binary: 'supervisord', pkg: 'supervisor' }, CGI_FCGI],
  () => {
    let dir: string;
    let events: Events;
    let sup: Proc;
    let port: number;
    let socket: string;

    beforeAll(async () => {
      dir = tempDir('supervisor');
      events = new Events(path.join(dir, 'events.log'));
      const run = writeWrapper(path.join(dir, 'run.sh'), appEnv(events));
      [port] = await freePorts(1);
      socket = path.join(dir, 'app.sock');
      const { command } = writeRecipe(supervisor, dir, { APP_PORT: port!, APP_SOCKET: socket, APP_RUN: run });
      sup = new Proc('supervisord', argv(command), { cwd: dir });
      await waitForProcesses(events, 3);
    });

    afterAll(async () => {
      await sup?.stop();
      events?.killAll();
      if (dir !== undefined) removeDir(dir);
    });

    it('numprocs=2 processes share one TCP socket (fd 0); environment= reaches them', async () => {
      const tcpApps = events.find((e) => e.ev === 'listening' && e.webServerAddrs === '127.0.0.1');
      expect(tcpApps).toHaveLength(2);
      for (const e of tcpApps) expect(e.fd0).toBe('socket');
      // Both processes accept on the socket; which one takes a connection is the kernel's choice (one may take a
      // whole burst), so send bursts of concurrent slow requests until both have answered.
      const pids = new Set<number>();
      for (let burst = 0; burst < 20 && pids.size < 2; burst++) {
        const results = await Promise.all(
          Array.from({ length: 6 }, (_, i) => request(`127.0.0.1:${port}`, `/?do=slow&ms=150&tag=sup-${burst}-${i}`)),
        );
        for (const r of results) pids.add((JSON.parse(r.body.toString()) as { pid: number }).pid);
      }
      expect([...pids].sort()).toEqual(tcpApps.map((e) => e.pid).sort());
    });

    it('a unix socket with socket_mode', async () => {
      expect(fs.statSync(socket).mode & 0o777).toBe(0o660);
      const a = await envOf(socket, '/unix?x=1');
      const unixApp = events.find((e) => e.ev === 'listening' && e.webServerAddrs === null);
      expect(unixApp.map((e) => e.pid)).toContain(a.pid);
      expect(a.url).toBe('/unix?x=1');
    });

    it('stopping supervisord: SIGTERM to each process, the request in flight finishes, every process exits 0', async () => {
      const inflight = request(`127.0.0.1:${port}`, '/?do=slow&ms=1500&tag=sup-sigterm');
      await events.waitFor((e) => e.ev === 'request' && e.tag === 'sup-sigterm', 'the slow request reached an app');
      sup.signal('SIGTERM');
      const r = await inflight;
      expect(r.status).toBe(200);
      expect((await sup.exited).code).toBe(0);
      const log = readText(path.join(dir, 'supervisord.log'));
      expect(log).toMatch(/stopped: app_00 \(exit status 0\)/);
      expect(log).toMatch(/stopped: app_01 \(exit status 0\)/);
      expect(log).toMatch(/stopped: app_unix \(exit status 0\)/);
      for (const pid of pidsListening(events)) expect(alive(pid)).toBe(false);
    });
  },
);

describeServer(
  'systemd socket activation (systemd-socket-activate; units checked by systemd-analyze)',
  [{ binary: 'systemd-socket-activate', pkg: 'systemd' }, { binary: 'systemd-analyze', pkg: 'systemd' }, CGI_FCGI],
  () => {
    let dir: string;
    let events: Events;
    let activator: Proc;
    let socket: string;

    beforeAll(async () => {
      dir = tempDir('systemd');
      events = new Events(path.join(dir, 'events.log'));
      const run = writeWrapper(path.join(dir, 'run.sh'), appEnv(events));
      socket = path.join(dir, 'app.sock');
      const { command } = writeRecipe(systemd, dir, { APP_SOCKET: socket, APP_RUN: run, UNIT: 'myapp' });
      activator = new Proc('systemd-socket-activate', argv(command), { cwd: dir });
      await waitForListen(socket, 20_000, activator);
    });

    afterAll(async () => {
      await activator?.stop();
      events?.killAll();
      if (dir !== undefined) removeDir(dir);
    });

    it('the unit files pass systemd-analyze verify', () => {
      const out = execFileSync(
        findBinary('systemd-analyze')!,
        ['verify', '--man=no', path.join(dir, 'myapp.socket'), path.join(dir, 'myapp.service')],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
      expect(out).toBe('');
    });

    it('the first connection starts the app, which finds the socket through LISTEN_FDS / LISTEN_PID', async () => {
      const a = await envOf(socket, '/activated?x=1');
      expect(a.pid).toBe(activator.pid);
      expect(a.url).toBe('/activated?x=1');
    });

    it('SIGTERM with a request in flight: it finishes, the app exits 0', async () => {
      const inflight = request(socket, '/?do=slow&ms=1000&tag=systemd-sigterm');
      await events.waitFor(
        (e) => e.ev === 'request' && e.tag === 'systemd-sigterm',
        'the slow request reached the app',
      );
      activator.signal('SIGTERM');
      expect((await inflight).status).toBe(200);
      expect((await activator.exited).code).toBe(0);
    });
  },
);

describeServer('cgi-fcgi -start spawning the engine', [CGI_FCGI], () => {
  let dir: string;
  let events: Events;
  let socket: string;

  beforeAll(async () => {
    dir = tempDir('cgi-fcgi-start');
    events = new Events(path.join(dir, 'events.log'));
    const run = writeWrapper(path.join(dir, 'run.sh'), appEnv(events));
    socket = path.join(dir, 'app.sock');
    const starter = new Proc(
      'cgi-fcgi -start',
      argv(render(cgiFcgiStart.command, { APP_SOCKET: socket, APP_RUN: run })),
      { cwd: dir },
    );
    expect((await starter.exited).code).toBe(0);
    await waitForProcesses(events, 1);
  });

  afterAll(() => {
    events?.killAll();
    if (dir !== undefined) removeDir(dir);
  });

  it('the detached app serves on the socket cgi-fcgi created, then exits 0 on SIGTERM', async () => {
    const [pid] = pidsListening(events);
    const started = events.find((e) => e.ev === 'listening')[0]!;
    expect(started.fd0).toBe('socket');
    const a = await envOf(socket, '/started?y=2');
    expect(a.pid).toBe(pid);
    killPid(pid!, 'SIGTERM');
    await events.waitFor((e) => e.ev === 'exit' && e.pid === pid && e.code === 0, 'the app exits 0');
  });
});
