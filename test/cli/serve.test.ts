// `fastcgi-engine serve` as a process, spoken to by TestPeer over a unix socket in a temp dir.
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { TestPeer, parseCgiResponse } from '../helpers/fcgi-peer';
import { findBinary, requireBinary } from '../helpers/binaries';
import { createClient } from '../../src/index';
import { ErrorCode, FastCGIError } from '../../src/errors';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { APPS, MAIN, ROOT, answers, runCli, start, startServe, tempDir, waitFor } from './helpers';

async function get(
  socket: string,
  uri: string,
  method = 'GET',
  body?: string,
): Promise<{ status: number; body: string }> {
  const peer = await TestPeer.connect(socket);
  try {
    const path = uri.split('?')[0]!;
    const response = await peer.request({
      params: {
        REQUEST_METHOD: method,
        REQUEST_URI: uri,
        SCRIPT_NAME: path,
        QUERY_STRING: uri.split('?')[1] ?? '',
        SERVER_PROTOCOL: 'HTTP/1.1',
        HTTP_HOST: 'localhost',
        CONTENT_LENGTH: String(body?.length ?? 0),
      },
      stdin: body,
      timeoutMs: 10_000,
    });
    const cgi = parseCgiResponse(response.stdout);
    return { status: cgi.status, body: cgi.body.toString() };
  } finally {
    peer.destroy();
  }
}

function pidOf(body: string): string {
  return /pid=(\d+)/.exec(body)![1]!;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

describe('serve: detecting the kind of application', () => {
  it.each([
    ['node-handler.mjs', '/hello', 200, /^node GET \/hello pid=\d+$/],
    ['fetch-object.mjs', '/missing', 404, /^fetch GET \/missing body=$/],
    ['fetch-function.mjs', '/x', 503, /^fetch-fn \/x$/],
    ['express-app.cjs', '/', 200, /^express here$/],
    ['koa-app.cjs', '/', 200, /^koa here$/],
  ])('%s', async (app, uri, status, body) => {
    const server = await startServe(app);
    const response = await get(server.socket, uri);
    expect(response.status).toBe(status);
    expect(response.body).toMatch(body);
  });

  it('loads only what it serves: a (req, res) app brings in neither the fetch API nor the gateway and its client', async () => {
    // A serve process's heap is what V8 sizes its collections by: the command's unused parts in it took a 1 MB
    // upload from 1.25 to 2.2 ms of CPU (README, "End to end").
    const server = await startServe('loaded-modules.cjs');
    const loaded = (await get(server.socket, '/')).body.split('\n');
    expect(loaded).toContain('server/server');
    expect(loaded.filter((module) => /^(server\/fetch|gateway\/|client\/|php\/)/.test(module))).toEqual([]);
  });

  it('passes the request body to a fetch handler', async () => {
    const server = await startServe('fetch-object.mjs');
    expect((await get(server.socket, '/p', 'POST', 'abc')).body).toBe('fetch POST /p body=abc');
  });
});

describe('serve: where it listens', () => {
  it('run by hand with no address: says what is wrong and the three ways to run, exit 2', async () => {
    const result = await runCli(['serve', `${APPS}/node-handler.mjs`]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('fd 0');
    expect(result.stderr).toContain('Run it in one of three ways');
    expect(result.stderr).toContain('--socket');
  });

  it.each([[[] as string[]], [['--workers', '2']]])(
    'spawned with a listening socket as fd 0 (spawn-fcgi style) %j',
    async (extra) => {
      const path = join(tempDir(), 'fd0.sock');
      const listener = net.createServer();
      await new Promise<void>((r) => listener.listen(path, r));
      const fd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
      const running = start(['serve', join(APPS, 'node-handler.mjs'), ...extra], { stdio: [fd, 'pipe', 'pipe'] });
      // The child holds its own copy of the socket; closing ours would unlink the path, so move it aside meanwhile.
      renameSync(path, `${path}.aside`);
      await new Promise<void>((r) => listener.close(() => r()));
      renameSync(`${path}.aside`, path);
      await waitFor(() => running.stderr().includes('listening on'), 15_000, 'serve to listen on fd 0');
      expect(running.stderr()).toContain('inherited fd 0');
      expect((await get(path, '/fd0')).body).toMatch(/^node GET \/fd0 pid=\d+$/);
      running.child.kill('SIGTERM');
      expect(await running.exited).toBe(0);
    },
  );

  it('--workers 2 on an inherited fd 0: the shared socket stays non-blocking, so no worker sleeps in accept()', async () => {
    const path = join(tempDir(), 'fd0.sock');
    const listener = net.createServer();
    await new Promise<void>((r) => listener.listen(path, r));
    const fd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
    const running = start(['serve', join(APPS, 'node-handler.mjs'), '--workers', '2'], { stdio: [fd, 'pipe', 'pipe'] });
    renameSync(path, `${path}.aside`);
    await new Promise<void>((r) => listener.close(() => r()));
    renameSync(`${path}.aside`, path);
    await waitFor(() => running.stderr().includes('listening on'), 15_000, 'serve to listen on fd 0');
    // O_NONBLOCK belongs to the socket every process shares. Workers given it as stdin left it blocking: the
    // worker that lost the race for a connection then slept in accept(), serving nothing it had accepted until
    // the next connection came, and missed the primary's 'shutdown' until killed at --drain-timeout.
    const fdinfo = `/proc/${running.child.pid}/fdinfo/0`;
    if (existsSync(fdinfo))
      expect(Number.parseInt(/flags:\s*(\d+)/.exec(readFileSync(fdinfo, 'utf8'))![1]!, 8) & 0o4000).not.toBe(0);
    for (let i = 0; i < 10; i++)
      expect((await get(path, `/n${i}`)).body).toMatch(new RegExp(`^node GET /n${i} pid=\\d+$`));
    running.child.kill('SIGTERM');
    expect(await exitsWithin(running, 10_000, 'SIGTERM')).toBe(0);
  });

  it.skipIf(!existsSync('/proc/self/fdinfo/0')).each([[[] as string[]], [['--workers', '1']]])(
    '%j: two processes on one inherited socket (supervisord numprocs=2): one stopping leaves it non-blocking for the other',
    async (extra) => {
      const path = join(tempDir(), 'fd0.sock');
      const listener = net.createServer();
      await new Promise<void>((r) => listener.listen(path, r));
      const fd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
      const [first, second] = [0, 1].map(() =>
        start(['serve', join(APPS, 'node-handler.mjs'), ...extra], { stdio: [fd, 'pipe', 'pipe'] }),
      );
      renameSync(path, `${path}.aside`);
      await new Promise<void>((r) => listener.close(() => r()));
      renameSync(`${path}.aside`, path);
      await waitFor(
        () => first!.stderr().includes('listening on') && second!.stderr().includes('listening on'),
        20_000,
        'both to listen',
      );
      const nonBlocking = (pid: number): boolean =>
        (Number.parseInt(/flags:\s*(\d+)/.exec(readFileSync(`/proc/${pid}/fdinfo/0`, 'utf8'))![1]!, 8) & 0o4000) !== 0;
      expect(nonBlocking(second!.child.pid!)).toBe(true);
      // Node restores the flags stdin had at start (blocking: so a process manager spawns it) as it exits, for
      // the socket every process shares, unless the engine closed fd 0 first.
      first!.child.kill('SIGTERM');
      expect(await first!.exited).toBe(0);
      expect(nonBlocking(second!.child.pid!)).toBe(true);
      for (let i = 0; i < 5; i++) expect((await get(path, `/n${i}`)).body).toMatch(/^node GET \/n\d pid=\d+$/);
      second!.child.kill('SIGTERM');
      expect(await exitsWithin(second!, 10_000, 'SIGTERM')).toBe(0);
    },
  );

  it('applies --socket-mode', async () => {
    const { statSync } = await import('node:fs');
    const server = await startServe('node-handler.mjs', ['--socket-mode', '0600']);
    expect(statSync(server.socket).mode & 0o777).toBe(0o600);
  });

  it.each([[[] as string[]], [['--workers', '1']]])(
    '%j: a stale socket file is replaced, a live one refused with exit 2',
    async (extra) => {
      const dir = tempDir();
      const path = join(dir, 'app.sock');
      // A process that dies while listening leaves its socket file behind, refusing connections.
      await new Promise((resolve) => {
        const child = spawn(process.execPath, [
          '-e',
          `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
        ]);
        child.once('exit', resolve);
      });
      expect(await answers(path)).toBe(false);
      const server = start(['serve', join(APPS, 'node-handler.mjs'), '--socket', path, ...extra]);
      await waitFor(() => server.stderr().includes('listening on'), 15_000, 'serve to replace the stale socket');
      expect(await answers(path)).toBe(true);
      // A second one on the same path finds it alive.
      const second = await runCli(['serve', join(APPS, 'node-handler.mjs'), '--socket', path, ...extra]);
      expect(second.code).toBe(2);
      expect(second.stderr).toContain(`another process is listening on ${path}`);
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    },
  );

  it('--http starts the gateway in front', async () => {
    const port = await freePort();
    const server = await startServe('fetch-object.mjs', ['--http', String(port)]);
    await waitFor(() => server.stderr().includes('HTTP gateway'), 10_000, 'gateway');
    const response = await fetch(`http://127.0.0.1:${port}/via-http`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('fetch GET /via-http body=');
  });

  it.each([
    [['serve'], 'missing <module>'],
    [['serve', 'x.mjs', '--port', 'abc'], '--port expects a whole number'],
    [['serve', 'x.mjs', '--port', '9000', '--socket', '/tmp/x'], 'not both'],
    [['serve', 'x.mjs', '--bogus'], 'Unknown option'],
    [['serve', 'x.mjs', '--max-requests', '5'], '--max-requests needs --workers'],
    [['serve', 'x.mjs', '--http', '8080'], '--http needs --socket or --port'],
    [['nonsense'], "unknown command 'nonsense'"],
  ])('bad arguments %j: exit 2', async (args, message) => {
    const result = await runCli(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });

  it('--help exits 0', async () => {
    const result = await runCli(['serve', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('--workers');
  });
});

describe('serve: lifecycle', () => {
  it('SIGTERM lets the in-flight request finish, then exits 0', async () => {
    const server = await startServe('node-handler.mjs');
    const pending = get(server.socket, '/slow?ms=600');
    await new Promise((r) => setTimeout(r, 150));
    server.child.kill('SIGTERM');
    expect((await pending).status).toBe(200);
    expect(await server.exited).toBe(0);
  });

  it('--workers: requests are shared, a crashed worker is restarted', async () => {
    const server = await startServe('node-handler.mjs', ['--workers', '2']);
    const pids = new Set<string>();
    // The workers accept from the shared socket as the kernel wakes them: both within a few requests.
    await waitFor(
      async () => pids.add(pidOf((await get(server.socket, '/')).body)).size === 2,
      10_000,
      'both workers to answer',
    );
    await get(server.socket, '/crash').catch(() => undefined);
    await waitFor(() => server.stderr().includes('restarting in'), 10_000, 'restart');
    // The replacement needs a moment to load; until then the surviving worker answers.
    await waitFor(
      async () => {
        const pid = await get(server.socket, '/').then(
          (r) => pidOf(r.body),
          () => null,
        );
        return pid !== null && !pids.has(pid);
      },
      20_000,
      'a new worker',
    );
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  });

  it('--max-requests recycles workers without failing a request', async () => {
    const server = await startServe('node-handler.mjs', ['--workers', '1', '--max-requests', '3']);
    const pids = new Set<string>();
    let requests = 0;
    // Every request must succeed while workers are replaced; replacements take a moment to load.
    await waitFor(
      async () => {
        pids.add(pidOf((await get(server.socket, '/')).body));
        requests++;
        await new Promise((r) => setTimeout(r, 100));
        return pids.size >= 3;
      },
      20_000,
      'two recycles',
    );
    expect(requests).toBeGreaterThanOrEqual(7);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  });

  it('SIGHUP replaces every worker with no dropped request', async () => {
    const server = await startServe('node-handler.mjs', ['--workers', '2']);
    const before = new Set<string>();
    for (let i = 0; i < 4; i++) before.add(pidOf((await get(server.socket, '/')).body));
    const slow = get(server.socket, '/slow?ms=500');
    await new Promise((r) => setTimeout(r, 100));
    server.child.kill('SIGHUP');
    let done = false;
    let failures = 0;
    const errors: string[] = [];
    let served = 0;
    const load = (async () => {
      while (!done) {
        try {
          await get(server.socket, '/');
          served++;
        } catch (error) {
          failures++;
          errors.push((error as Error).message);
        }
      }
    })();
    await waitFor(() => server.stderr().includes('reload done'), 15_000, 'reload');
    done = true;
    await load;
    expect((await slow).status).toBe(200);
    expect(errors).toEqual([]);
    expect(failures).toBe(0);
    expect(served).toBeGreaterThan(0);
    const after = new Set<string>();
    for (let i = 0; i < 4; i++) after.add(pidOf((await get(server.socket, '/')).body));
    for (const pid of after) expect(before.has(pid)).toBe(false);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(await answers(server.socket)).toBe(false);
  });

  it('SIGHUP with a keep-conn client: kept connections are drained, the old workers exit, nothing served is lost', async () => {
    const server = await startServe('tagged.mjs', ['--workers', '2']);
    let client = createClient({ address: server.socket, poolSize: 4 });
    onTestFinished(() => client.close());
    let sequence = 0;
    const failed: string[] = []; // attempts the client saw fail (then retried, as nginx retries a kept connection)
    const unexpected: string[] = [];
    /** One request, retried on a fresh attempt when its kept connection was closed under it (nginx does). */
    const fetchTagged = async (query = ''): Promise<{ tag: string; pid: string }> => {
      for (;;) {
        const tag = `t${++sequence}`;
        try {
          const response = await client.request({
            params: { REQUEST_METHOD: 'GET', REQUEST_URI: `/?tag=${tag}${query}`, SCRIPT_NAME: '/' },
          });
          const text = await response.text();
          expect(text).toBe(`tag=${tag} pid=${/pid=(\d+)/.exec(text)?.[1]}`);
          return { tag, pid: pidOf(text) };
        } catch (error) {
          if (error instanceof FastCGIError && error.code === ErrorCode.BACKEND_CLOSED) failed.push(tag);
          else {
            unexpected.push(String(error));
            throw error;
          }
        }
      }
    };
    // Concurrent requests open several kept connections; within a few batches some land on each worker.
    const batch = async (into: Set<string>): Promise<void> => {
      for (const { pid } of await Promise.all(Array.from({ length: 8 }, () => fetchTagged('&ms=50')))) into.add(pid);
    };
    // The workers accept from the shared socket themselves (SCHED_NONE): a pool's connections, opened in one
    // burst, may all land on one worker, and a kept pool never reconnects. A fresh client (a fresh pool) until
    // one holds connections to both.
    const before = new Set<string>();
    await waitFor(
      async () => {
        before.clear();
        await batch(before);
        if (before.size === 2) return true;
        await client.close();
        client = createClient({ address: server.socket, poolSize: 4 });
        return false;
      },
      20_000,
      'kept connections to both workers',
    );
    // A slow request in flight on a kept connection when its worker retires.
    const slow = fetchTagged('&ms=700');
    await waitFor(() => server.stderr().includes(`served t${sequence} `), 5000, 'the slow request to reach a worker');
    server.child.kill('SIGHUP');
    let done = false;
    const succeeded: string[] = [];
    const loops = [0, 1, 2, 3].map(async () => {
      while (!done) succeeded.push((await fetchTagged()).tag);
    });
    // Kept connections must not hold the old workers: the reload ends long before --drain-timeout (30 s).
    await waitFor(() => server.stderr().includes('reload done'), 15_000, 'reload');
    done = true;
    await Promise.all(loops);
    const slowResult = await slow;
    expect(before.has(slowResult.pid)).toBe(true);
    expect(unexpected).toEqual([]);
    expect(succeeded.length).toBeGreaterThan(0);
    const after = new Set<string>();
    await batch(after);
    for (const pid of after) expect(before.has(pid)).toBe(false);
    await client.close();
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const served = [...server.stderr().matchAll(/^served (\S+) pid=\d+$/gm)].map((m) => m[1]!);
    // Each answered request ran exactly once; an attempt that failed never reached the application (the
    // server reads nothing after closing a connection), so retrying it was safe.
    for (const tag of [slowResult.tag, ...succeeded]) expect(served.filter((t) => t === tag)).toEqual([tag]);
    for (const tag of failed) expect(served).not.toContain(tag);
  });

  it('under systemd socket activation with --workers 2: both workers serve, SIGTERM drains and exits 0', async (context) => {
    const activate = requireBinary(
      context,
      findBinary('systemd-socket-activate'),
      'systemd-socket-activate',
      'systemd',
    );
    const socket = join(tempDir(), 'app.sock');
    // As a .socket unit would: systemd-socket-activate binds the socket, and on the first connection execs the
    // command with it as fd 3 (LISTEN_FDS=1, LISTEN_PID = its own pid, which the exec keeps).
    const child = spawn(
      activate,
      [
        '-l',
        socket,
        process.execPath,
        '--import',
        'tsx',
        MAIN,
        'serve',
        join(APPS, 'node-handler.mjs'),
        '--workers',
        '2',
      ],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    await waitFor(
      () => stderr.includes('Listening on') || child.exitCode !== null,
      10_000,
      'systemd-socket-activate to listen',
    );
    // The first connection starts the service.
    const first = get(socket, '/first');
    await waitFor(
      () => stderr.includes('listening on') || child.exitCode !== null,
      20_000,
      `serve to start:\n${stderr}`,
    );
    expect(stderr).toContain(`fastcgi-engine serve[${child.pid}]: listening on inherited fd 3 with 2 workers`);
    const pids = new Set<string>([pidOf((await first).body)]);
    await waitFor(
      async () => pids.add(pidOf((await get(socket, '/')).body)).size === 2,
      10_000,
      'both workers to answer',
    );
    expect(pids.has(String(child.pid))).toBe(false);
    const pending = get(socket, '/slow?ms=600');
    await new Promise((r) => setTimeout(r, 150));
    child.kill('SIGTERM');
    expect((await pending).status).toBe(200);
    expect(await exited).toBe(0);
    expect(stderr).toContain('SIGTERM: draining the workers');
  });
});

/** Resolves with the exit code, or rejects when the process is still up after `ms`. */
function exitsWithin(server: { exited: Promise<number | null> }, ms: number, what: string): Promise<number | null> {
  return Promise.race([
    server.exited,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still running ${ms} ms after ${what}`)), ms)),
  ]);
}

describe('serve: an application that holds more than the FastCGI server', () => {
  it.each([[[] as string[]], [['--workers', '2']]])(
    '%j: a server the module starts while it loads is named in a warning with the fix',
    async (extra) => {
      const server = await startServe('express-listens.cjs', extra);
      const pattern =
        /warning: \S+express-listens\.cjs started a server of its own on 127\.0\.0\.1:(\d+) while it loaded/g;
      await waitFor(
        () => [...server.stderr().matchAll(pattern)].length === Math.max(1, Number(extra[1] ?? 1)),
        15_000,
        'the warning',
      );
      expect(server.stderr()).toContain('if (require.main === module) app.listen(...)');
      expect(server.stderr()).toContain('import.meta.url');
      // The address named is the stray server's: it answers HTTP there, besides FastCGI on the socket.
      const port = [...server.stderr().matchAll(pattern)][0]![1]!;
      expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('express here');
      expect((await get(server.socket, '/')).body).toBe('express here');
      server.child.kill('SIGTERM');
      expect(await exitsWithin(server, 10_000, 'SIGTERM')).toBe(0);
    },
  );

  it('says nothing about an application that starts no server of its own', async () => {
    const server = await startServe('express-app.cjs');
    expect((await get(server.socket, '/')).body).toBe('express here');
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.stderr()).not.toContain('warning');
  });

  // Before, the process drained and then stayed up for as long as the application held a timer, a pool or a
  // server (alone: for good; a worker: until the primary killed it after --drain-timeout, 30 s here).
  it.each([[[] as string[]], [['--workers', '2']]])(
    '%j: SIGTERM lets the request in flight finish, then exits 0 though the application holds a timer',
    async (extra) => {
      const server = await startServe('holds-timer.mjs', extra);
      const pending = get(server.socket, '/slow?ms=600');
      await new Promise((r) => setTimeout(r, 150));
      server.child.kill('SIGTERM');
      expect((await pending).body).toMatch(/^timer \/slow pid=\d+$/);
      expect(await exitsWithin(server, 10_000, 'the drain')).toBe(0);
    },
  );

  it.each([[[] as string[]], [['--workers', '1']]])(
    '%j: past --drain-timeout the request is cut and the process exits 0',
    async (extra) => {
      const server = await startServe('holds-timer.mjs', ['--drain-timeout', '300ms', ...extra]);
      const pending = get(server.socket, '/slow?ms=20000').then(
        () => 'answered',
        () => 'cut',
      );
      await new Promise((r) => setTimeout(r, 150));
      server.child.kill('SIGTERM');
      expect(await exitsWithin(server, 10_000, 'SIGTERM with --drain-timeout 300ms')).toBe(0);
      expect(await pending).toBe('cut');
    },
  );
});
