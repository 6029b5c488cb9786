// Where the application listens: TCP, unix sockets (mode, stale files, live owners, non-sockets), a socket
// inherited on fd 0 or from systemd the way web servers and process managers hand one over (real child
// processes), SIGTERM during a request, and the FCGI_WEB_SERVER_ADDRS allow-list (FastCGI 1.0 §3.2).
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createServer, type RequestListener, type Server } from '../../src/server/server';
import type { ServerOptions } from '../../src/server/options';
import { HOW_TO_RUN, inheritedListenFd } from '../../src/server/listen';
import { ErrorCode, FastCGIError, ListenError } from '../../src/errors';
import { within } from '../helpers/async';
import { TestPeer, parseCgiResponse, type PeerClosed } from '../helpers/fcgi-peer';

const root = path.join(__dirname, '..', '..');
const FIXTURE = path.join(root, 'test', 'fixtures', 'apps', 'hello.ts');
/** How the fixture runs: TypeScript through tsx, as a real separate Node process. */
const APP_ARGV = ['--import', 'tsx', FIXTURE];

// ---- helpers -------------------------------------------------------------------------------------------------

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcgi-listen-'));
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Captured {
  warnings: string[];
  errors: string[];
}

function captureLogger(): Captured & { logger: NonNullable<ServerOptions['logger']> } {
  const warnings: string[] = [];
  const errors: string[] = [];
  return { warnings, errors, logger: { warn: (m) => warnings.push(m), error: (m) => errors.push(m) } };
}

const hello: RequestListener = (req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end(`hello ${req.url}\n`);
};

/** A server with the hello handler, closed (connections destroyed) when the test ends. */
function makeServer(options: ServerOptions = {}): Server {
  const server = createServer(options, hello);
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        if (!server.listening) return resolve();
        server.close(() => resolve());
      }),
  );
  return server;
}

/** listen() and wait for 'listening'; rejects with the 'error' instead. */
function listen(server: Server, ...args: unknown[]): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(...args);
  });
}

/** listen() that must fail: resolves with the 'error', rejects if the server starts listening. */
function listenError(server: Server, ...args: unknown[]): Promise<Error> {
  return listen(server, ...args).then(
    () => {
      throw new Error(`listen(${args.map((a) => JSON.stringify(a)).join(', ')}) succeeded; expected an error`);
    },
    (error: Error) => error,
  );
}

function tcpPort(server: net.Server): number {
  return (server.address() as net.AddressInfo).port;
}

type Address = string | { port: number; host?: string };

/** One GET through a fresh TestPeer; the peer is destroyed when the test ends. */
async function get(address: Address, url = '/'): Promise<{ status: number; body: string }> {
  const peer = await TestPeer.connect(address);
  onTestFinished(() => peer.destroy());
  const response = await peer.request({ params: { REQUEST_METHOD: 'GET', REQUEST_URI: url, SCRIPT_NAME: url } });
  const cgi = parseCgiResponse(response.stdout);
  return { status: cgi.status, body: cgi.body.toString('utf8') };
}

function expectListenError(error: unknown, code: string): asserts error is ListenError {
  expect(error).toBeInstanceOf(ListenError);
  expect(error).toBeInstanceOf(FastCGIError);
  expect((error as ListenError).code).toBe(code);
}

// ---- the fixture app as a child process --------------------------------------------------------------------

interface AppEvent {
  event: string;
  [key: string]: unknown;
}

/** A running fixture app: its JSON-line events, stderr, and exit. Killed (SIGKILL) if still alive at test end. */
class App {
  readonly events: AppEvent[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #buffered = '';
  #waiters: Array<{ name: string; resolve(e: AppEvent): void }> = [];

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => this.#onStdout(chunk));
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    onTestFinished(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await this.exited;
      }
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  #onStdout(chunk: string): void {
    this.#buffered += chunk;
    let newline: number;
    while ((newline = this.#buffered.indexOf('\n')) !== -1) {
      const line = this.#buffered.slice(0, newline);
      this.#buffered = this.#buffered.slice(newline + 1);
      let event: AppEvent;
      try {
        event = JSON.parse(line) as AppEvent;
      } catch {
        event = { event: 'stdout', line };
      }
      this.events.push(event);
      for (const waiter of [...this.#waiters]) {
        if (waiter.name === event.event) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          waiter.resolve(event);
        }
      }
    }
  }

  /** The first event of that name (already seen or still to come); fails if the app exits or time runs out. */
  waitFor(name: string, timeoutMs = 15_000): Promise<AppEvent> {
    const seen = this.events.find((e) => e.event === name);
    if (seen !== undefined) return Promise.resolve(seen);
    const arrived = new Promise<AppEvent>((resolve) => this.#waiters.push({ name, resolve }));
    const died = this.exited.then(async ({ code, signal }) => {
      await delay(50); // let the last stdout lines in
      const late = this.events.find((e) => e.event === name);
      if (late !== undefined) return late;
      throw new Error(`the app exited (code ${code}, signal ${signal}) before '${name}'; ${this.describe()}`);
    });
    return within(Promise.race([arrived, died]), timeoutMs, `app event '${name}'; ${this.describe()}`);
  }

  describe(): string {
    return `events ${JSON.stringify(this.events)}, stderr ${JSON.stringify(this.stderr.slice(-2000))}`;
  }
}

/** Runs the fixture app with the given stdio (fd 0 is what the test hands over) and extra environment. */
function spawnApp(stdio: StdioOptions, env: Record<string, string> = {}): App {
  return new App(spawn(process.execPath, APP_ARGV, { cwd: root, stdio, env: { ...process.env, ...env } }));
}

/** Runs the fixture app through `sh -c SCRIPT NODE ARGV...` ($0 is node, "$@" its arguments), for what only a shell can set up before exec. */
function spawnAppViaShell(script: string, stdio: StdioOptions, env: Record<string, string> = {}): App {
  return new App(
    spawn('/bin/sh', ['-c', script, process.execPath, ...APP_ARGV], {
      cwd: root,
      stdio,
      env: { ...process.env, ...env },
    }),
  );
}

/** A listening TCP socket on 127.0.0.1 made in this process, to hand to a child; `release()` closes our copy. */
async function listeningTcpSocket(): Promise<{ fd: number; port: number; release(): void }> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  expect(fd).toBeGreaterThan(2);
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    server.close();
  };
  onTestFinished(release);
  return { fd, port: tcpPort(server), release };
}

// ---- listen on an address ---------------------------------------------------------------------------------------

describe('listen on an address', () => {
  it("listen(port, '127.0.0.1') serves a request", async () => {
    const server = makeServer();
    await listen(server, 0, '127.0.0.1');
    const port = tcpPort(server);
    expect(server.address()).toMatchObject({ address: '127.0.0.1', port });
    const { status, body } = await get({ port }, '/tcp');
    expect(status).toBe(200);
    expect(body).toBe('hello /tcp\n');
  });

  it('listen(port, host, callback) runs the callback once listening', async () => {
    const server = makeServer();
    const listening = new Promise<boolean>((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.listening)));
    expect(await within(listening, 5000, 'listen callback')).toBe(true);
  });

  it('listen(unixPath) serves a request', async () => {
    const socketPath = path.join(tempDir(), 'app.sock');
    const server = makeServer();
    await listen(server, socketPath);
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
    const { status, body } = await get(socketPath, '/unix');
    expect(status).toBe(200);
    expect(body).toBe('hello /unix\n');
  });

  it('listen({ path }) serves a request too', async () => {
    const socketPath = path.join(tempDir(), 'app.sock');
    const server = makeServer();
    await listen(server, { path: socketPath });
    expect((await get(socketPath, '/object')).body).toBe('hello /object\n');
  });

  it('socketMode 0o660 gives the socket file mode 0660, already in the listen callback', async () => {
    const socketPath = path.join(tempDir(), 'app.sock');
    const server = makeServer({ socketMode: 0o660 });
    // The listen callback is when a deployment script would hand the path to the web server.
    const modeInCallback = new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve(fs.statSync(socketPath).mode & 0o777));
    });
    expect((await within(modeInCallback, 5000, 'listen callback')).toString(8)).toBe('660');
    expect((fs.statSync(socketPath).mode & 0o777).toString(8)).toBe('660');
    expect((await get(socketPath)).status).toBe(200);
  });

  it('without socketMode the socket file gets the mode a plain net.Server gets (the umask decides)', async () => {
    const dir = tempDir();
    const socketPath = path.join(dir, 'app.sock');
    const server = makeServer();
    await listen(server, socketPath);
    const plainPath = path.join(dir, 'plain.sock');
    const plain = net.createServer();
    await new Promise<void>((resolve) => plain.listen(plainPath, () => resolve()));
    const plainMode = fs.statSync(plainPath).mode & 0o777;
    await new Promise<void>((resolve) => plain.close(() => resolve()));
    expect((fs.statSync(socketPath).mode & 0o777).toString(8)).toBe(plainMode.toString(8));
  });

  it('a net.Server that closes normally removes its socket file (so stale files come only from dead processes)', async () => {
    const socketPath = path.join(tempDir(), 'plain.sock');
    const plain = net.createServer();
    await new Promise<void>((resolve) => plain.listen(socketPath, () => resolve()));
    expect(fs.existsSync(socketPath)).toBe(true);
    await new Promise<void>((resolve) => plain.close(() => resolve()));
    expect(fs.existsSync(socketPath)).toBe(false);
  });

  it('replaces a stale socket file left by a process that was SIGKILLed', async () => {
    const socketPath = path.join(tempDir(), 'stale.sock');
    const owner = spawn(
      process.execPath,
      ['-e', "require('net').createServer().listen(process.argv[1], () => console.log('ready'))", socketPath],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const ownerExit = new Promise<NodeJS.Signals | null>((resolve) =>
      owner.once('exit', (_code, signal) => resolve(signal)),
    );
    onTestFinished(() => {
      if (owner.exitCode === null && owner.signalCode === null) owner.kill('SIGKILL');
    });
    await within(
      new Promise<void>((resolve) => owner.stdout!.once('data', () => resolve())),
      10_000,
      'socket owner ready',
    );
    owner.kill('SIGKILL');
    expect(await within(ownerExit, 10_000, 'socket owner exit')).toBe('SIGKILL');
    // The file is still there, and nothing answers on it.
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
    const refused = await new Promise<string | undefined>((resolve) => {
      const probe = net.connect(socketPath);
      probe.once('connect', () => {
        probe.destroy();
        resolve('connected');
      });
      probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code));
    });
    expect(refused).toBe('ECONNREFUSED');

    const server = makeServer();
    await listen(server, socketPath);
    const { status, body } = await get(socketPath, '/after-stale');
    expect(status).toBe(200);
    expect(body).toBe('hello /after-stale\n');
  });

  it('refuses a path where another server is live (FCGI_ERR_ADDRESS_IN_USE), and the other keeps working', async () => {
    const socketPath = path.join(tempDir(), 'live.sock');
    const other = makeServer();
    await listen(other, socketPath);
    const inode = fs.lstatSync(socketPath).ino;

    const ours = makeServer();
    const error = await within(listenError(ours, socketPath), 5000, 'listen error');
    expectListenError(error, ErrorCode.ADDRESS_IN_USE);
    expect(error.message).toContain(socketPath);
    expect(ours.listening).toBe(false);

    expect(fs.lstatSync(socketPath).ino).toBe(inode);
    expect(other.listening).toBe(true);
    const { status, body } = await get(socketPath, '/still-there');
    expect(status).toBe(200);
    expect(body).toBe('hello /still-there\n');
  });

  it('refuses a path that is a regular file and leaves the file untouched', async () => {
    const filePath = path.join(tempDir(), 'data.txt');
    fs.writeFileSync(filePath, 'precious data\n', { mode: 0o640 });
    const before = fs.statSync(filePath);

    const server = makeServer({ socketMode: 0o600 });
    const error = await within(listenError(server, filePath), 5000, 'listen error');
    expectListenError(error, ErrorCode.ADDRESS_IN_USE);
    expect(error.message).toContain(filePath);
    expect(error.message).toMatch(/not a socket/);

    const after = fs.statSync(filePath);
    expect(fs.readFileSync(filePath, 'utf8')).toBe('precious data\n');
    expect(after.ino).toBe(before.ino);
    expect(after.mode).toBe(before.mode);
    expect(after.mtimeMs).toBe(before.mtimeMs);
  });

  it('close() right after listen(unixPath) leaves nothing listening (as with net.Server)', async () => {
    const socketPath = path.join(tempDir(), 'app.sock');
    const server = makeServer();
    let listened = false;
    server.on('listening', () => (listened = true));
    const errors: Error[] = [];
    server.on('error', (error) => errors.push(error));
    server.listen(socketPath);
    await within(new Promise<void>((resolve) => server.close(() => resolve())), 5000, 'the close callback');
    await delay(200); // the socket-path check is a local lstat + connect(): long finished by now
    expect(listened).toBe(false);
    expect(server.listening).toBe(false);
    expect(fs.existsSync(socketPath)).toBe(false);
    expect(errors).toEqual([]);
  });

  it('close() right after listen(path) on a live path does not report the abandoned attempt', async () => {
    const socketPath = path.join(tempDir(), 'live.sock');
    const other = makeServer();
    await listen(other, socketPath);
    const server = makeServer();
    const errors: Error[] = [];
    server.on('error', (error) => errors.push(error));
    server.listen(socketPath);
    server.close();
    await delay(200);
    expect(errors).toEqual([]);
    expect(server.listening).toBe(false);
    expect((await get(socketPath)).status).toBe(200);
  });

  it('refuses a path that is a directory and leaves it in place', async () => {
    const dirPath = path.join(tempDir(), 'sub');
    fs.mkdirSync(dirPath);
    fs.writeFileSync(path.join(dirPath, 'keep'), 'x');
    const error = await within(listenError(makeServer(), dirPath), 5000, 'listen error');
    expectListenError(error, ErrorCode.ADDRESS_IN_USE);
    expect(fs.readFileSync(path.join(dirPath, 'keep'), 'utf8')).toBe('x');
  });
});

// ---- inherited sockets ---------------------------------------------------------------------------------------

describe('listen() with no address: the socket a web server or systemd hands over', () => {
  it('serves on a listening TCP socket passed as fd 0 (spawn-fcgi / supervisor / lighttpd style)', async () => {
    const socket = await listeningTcpSocket();
    const app = spawnApp([socket.fd, 'pipe', 'pipe']);
    socket.release(); // the child holds its own copy; ours must not accept connections meant for it
    const listening = await app.waitFor('listening');
    expect(listening.pid).toBe(app.pid);

    const first = await get({ port: socket.port }, '/one');
    expect(first.status).toBe(200);
    expect(first.body).toBe(`hello from ${app.pid} /one\n`);
    const second = await get({ port: socket.port }, '/two');
    expect(second.body).toBe(`hello from ${app.pid} /two\n`);

    app.child.kill('SIGTERM');
    expect(await within(app.exited, 10_000, 'app exit')).toEqual({ code: 0, signal: null });
  });

  it('serves on a listening unix socket passed as fd 0 (mod_fcgid / lighttpd bin-path style)', async () => {
    const dir = tempDir();
    const made = path.join(dir, 'made.sock');
    const served = path.join(dir, 'app.sock');
    const parent = net.createServer();
    await new Promise<void>((resolve) => parent.listen(made, () => resolve()));
    // Closing our handle unlinks the path it was bound to; move the file so the child's socket stays reachable.
    fs.renameSync(made, served);
    const fd = (parent as unknown as { _handle: { fd: number } })._handle.fd;
    const app = spawnApp([fd, 'pipe', 'pipe'], { FIXTURE_LISTEN_CALLBACK: '1' }); // server.listen(callback)
    parent.close();
    await app.waitFor('listening');
    await app.waitFor('listen-callback');
    const { status, body } = await get(served, '/unix-fd0');
    expect(status).toBe(200);
    expect(body).toBe(`hello from ${app.pid} /unix-fd0\n`);
  });

  it('with fd 0 a pipe from a shell: FCGI_ERR_INHERITED_SOCKET saying so, with the three ways to run', async () => {
    const app = spawnAppViaShell(': | exec "$0" "$@"', ['pipe', 'pipe', 'pipe']);
    const error = await app.waitFor('error');
    expect(error.code).toBe(ErrorCode.INHERITED_SOCKET);
    expect(error.name).toBe('ListenError');
    expect(error.message).toContain('fd 0 is a pipe');
    expect(error.message).toContain(HOW_TO_RUN);
    expect(error.message).toMatch(/fd 0[\s\S]*unix socket[\s\S]*TCP port/);
    expect((await within(app.exited, 10_000, 'app exit')).code).toBe(3);
    expect(app.events.some((e) => e.event === 'listening')).toBe(false);
  });

  it("with fd 0 Node's default stdio (a connected socketpair): FCGI_ERR_INHERITED_SOCKET, 'connected socket', the three ways", async () => {
    const app = spawnApp(['pipe', 'pipe', 'pipe']);
    const error = await app.waitFor('error');
    expect(error.code).toBe(ErrorCode.INHERITED_SOCKET);
    expect(error.message).toContain('connected socket');
    expect(error.message).toContain(HOW_TO_RUN);
    expect(error.cause).toBe('EINVAL');
    expect((await within(app.exited, 10_000, 'app exit')).code).toBe(3);
  });

  it('with fd 0 /dev/null (run by hand, stdin ignored): FCGI_ERR_INHERITED_SOCKET naming a device', async () => {
    const app = spawnApp(['ignore', 'pipe', 'pipe']);
    const error = await app.waitFor('error');
    expect(error.code).toBe(ErrorCode.INHERITED_SOCKET);
    expect(error.message).toContain('fd 0 is a terminal or device');
    expect(error.message).toContain(HOW_TO_RUN);
  });

  it('with fd 0 a regular file: FCGI_ERR_INHERITED_SOCKET naming a file', async () => {
    const file = path.join(tempDir(), 'input.txt');
    fs.writeFileSync(file, 'not a socket\n');
    const fd = fs.openSync(file, 'r');
    onTestFinished(() => fs.closeSync(fd));
    const app = spawnApp([fd, 'pipe', 'pipe']);
    const error = await app.waitFor('error');
    expect(error.code).toBe(ErrorCode.INHERITED_SOCKET);
    expect(error.message).toContain('fd 0 is a file');
  });

  it("with fd 0 a connected TCP socket (a wrapper replaced stdin): EINVAL becomes 'connected socket'", async () => {
    const acceptor = net.createServer();
    const accepted: net.Socket[] = [];
    acceptor.on('connection', (s) => accepted.push(s));
    await new Promise<void>((resolve) => acceptor.listen(0, '127.0.0.1', () => resolve()));
    onTestFinished(() => {
      for (const s of accepted) s.destroy();
      acceptor.close();
    });
    const client = net.connect(tcpPort(acceptor), '127.0.0.1');
    onTestFinished(() => {
      client.destroy();
    });
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    const fd = (client as unknown as { _handle: { fd: number } })._handle.fd;

    const app = spawnApp([fd, 'pipe', 'pipe']);
    const error = await app.waitFor('error');
    expect(error.code).toBe(ErrorCode.INHERITED_SOCKET);
    expect(error.message).toContain('fd 0 is a connected socket');
    expect(error.message).toContain(HOW_TO_RUN);
    expect(error.cause).toBe('EINVAL');
  });

  it('systemd socket activation: LISTEN_PID = the pid, LISTEN_FDS=1, the socket on fd 3', async () => {
    const socket = await listeningTcpSocket();
    // sh sets LISTEN_PID to its own pid and execs node, which keeps that pid: what systemd does after fork.
    const app = spawnAppViaShell('LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"', ['ignore', 'pipe', 'pipe', socket.fd]);
    socket.release();
    await app.waitFor('listening');
    const { status, body } = await get({ port: socket.port }, '/systemd');
    expect(status).toBe(200);
    expect(body).toBe(`hello from ${app.pid} /systemd\n`);
  });

  it("systemd variables meant for another process (LISTEN_PID mismatch) are ignored: fd 0's rules apply", async () => {
    const socket = await listeningTcpSocket();
    // fd 3 is a good listening socket, but LISTEN_PID names someone else; fd 0 is /dev/null.
    const app = spawnApp(['ignore', 'pipe', 'pipe', socket.fd], { LISTEN_PID: '1', LISTEN_FDS: '1' });
    socket.release();
    const error = await app.waitFor('error');
    expect(error.code).toBe(ErrorCode.INHERITED_SOCKET);
    expect(error.message).toContain('fd 0 is a terminal or device');
  });

  describe('inheritedListenFd(env)', () => {
    /** What the fd-0 rules say in this process: an fd, or an error code. */
    function outcome(env: NodeJS.ProcessEnv): number | string {
      try {
        return inheritedListenFd(env);
      } catch (error) {
        expect(error).toBeInstanceOf(ListenError);
        return (error as ListenError).code;
      }
    }

    it('returns 3 (SD_LISTEN_FDS_START) when LISTEN_PID is this process and LISTEN_FDS >= 1', () => {
      expect(inheritedListenFd({ LISTEN_PID: String(process.pid), LISTEN_FDS: '1' })).toBe(3);
      expect(inheritedListenFd({ LISTEN_PID: String(process.pid), LISTEN_FDS: '2' })).toBe(3);
    });

    it('falls back to the fd 0 rules for another pid, LISTEN_FDS=0, or a missing LISTEN_FDS', () => {
      const fd0 = outcome({});
      expect(outcome({ LISTEN_PID: String(process.pid + 1), LISTEN_FDS: '1' })).toBe(fd0);
      expect(outcome({ LISTEN_PID: String(process.pid), LISTEN_FDS: '0' })).toBe(fd0);
      expect(outcome({ LISTEN_PID: String(process.pid) })).toBe(fd0);
      expect(outcome({ LISTEN_FDS: '1' })).toBe(fd0);
    });
  });
});

// ---- SIGTERM ------------------------------------------------------------------------------------------------------

describe('SIGTERM (FastCGI 1.0 §7: the process manager asks the app to exit)', () => {
  it('lets an in-flight slow request complete, then the app exits 0', async () => {
    const socket = await listeningTcpSocket();
    const app = spawnApp([socket.fd, 'pipe', 'pipe']);
    socket.release();
    await app.waitFor('listening');

    const peer = await TestPeer.connect({ port: socket.port });
    onTestFinished(() => peer.destroy());
    // The handler waits for SIGTERM and then takes another 300 ms: certainly in flight when the signal comes.
    const pending = peer.request({
      params: { REQUEST_METHOD: 'GET', REQUEST_URI: '/until-sigterm?ms=300' },
      timeoutMs: 10_000,
    });
    await app.waitFor('request');
    app.child.kill('SIGTERM');
    const sigterm = await app.waitFor('sigterm');
    expect(sigterm.connections).toBe(1);

    const response = await pending;
    expect(response.protocolStatus).toBe(0);
    const cgi = parseCgiResponse(response.stdout);
    expect(cgi.status).toBe(200);
    expect(cgi.body.toString()).toBe(`hello from ${app.pid} /until-sigterm?ms=300\n`);
    // The connection (no KEEP_CONN) is closed by the app after END_REQUEST; then the app exits 0.
    expect((await within(peer.closed, 10_000, 'connection close')).how).toBe('fin');
    expect(await within(app.exited, 10_000, 'app exit')).toEqual({ code: 0, signal: null });
    const order = app.events.map((e) => e.event).filter((e) => e !== 'request' && e !== 'listening');
    expect(order).toEqual(['sigterm', 'response', 'closed']);
  });

  it('an idle app exits 0 at once on SIGTERM', async () => {
    const socket = await listeningTcpSocket();
    const app = spawnApp([socket.fd, 'pipe', 'pipe']);
    socket.release();
    await app.waitFor('listening');
    app.child.kill('SIGTERM');
    expect(await within(app.exited, 10_000, 'app exit')).toEqual({ code: 0, signal: null });
  });
});

// ---- FCGI_WEB_SERVER_ADDRS ------------------------------------------------------------------------------------

/** Expect the server to close the connection at once, without sending a byte. */
async function expectRefused(address: Address): Promise<PeerClosed> {
  const peer = await TestPeer.connect(address);
  onTestFinished(() => peer.destroy());
  // The request may or may not make it out before the close; either way no answer may come back.
  peer.request({ params: { REQUEST_METHOD: 'GET', REQUEST_URI: '/' }, timeoutMs: 5000 }).catch(() => undefined);
  const closed = await within(peer.closed, 5000, 'the server to close a refused connection');
  expect(peer.bytesReceived).toBe(0);
  expect(peer.records).toHaveLength(0);
  return closed;
}

async function ipv6Available(): Promise<boolean> {
  const probe = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(0, '::1', () => resolve());
    });
    return true;
  } catch {
    return false;
  } finally {
    if (probe.listening) probe.close();
  }
}

describe('FCGI_WEB_SERVER_ADDRS (FastCGI 1.0 §3.2)', () => {
  it("webServerAddrs '127.0.0.1' serves a peer from 127.0.0.1", async () => {
    const log = captureLogger();
    const server = makeServer({ webServerAddrs: '127.0.0.1', logger: log.logger });
    await listen(server, 0, '127.0.0.1');
    expect((await get({ port: tcpPort(server) }, '/allowed')).body).toBe('hello /allowed\n');
    expect(log.warnings).toEqual([]);
  });

  it('a comma-separated list with spaces, and an array, both match', async () => {
    const server = makeServer({ webServerAddrs: '10.0.0.1, 127.0.0.1', logger: captureLogger().logger });
    await listen(server, 0, '127.0.0.1');
    expect((await get({ port: tcpPort(server) })).status).toBe(200);
    const server2 = makeServer({ webServerAddrs: ['10.0.0.1', '127.0.0.1'], logger: captureLogger().logger });
    await listen(server2, 0, '127.0.0.1');
    expect((await get({ port: tcpPort(server2) })).status).toBe(200);
  });

  it("webServerAddrs '10.0.0.1' closes a 127.0.0.1 peer at once, without a response, and logs a warning", async () => {
    const log = captureLogger();
    const server = makeServer({ webServerAddrs: '10.0.0.1', logger: log.logger });
    const handled: string[] = [];
    server.on('request', (req) => handled.push(String(req.url)));
    await listen(server, 0, '127.0.0.1');
    await expectRefused({ port: tcpPort(server) });
    expect(handled).toEqual([]);
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]).toContain('127.0.0.1');
    expect(log.warnings[0]).toContain('FCGI_WEB_SERVER_ADDRS');
    expect(server.connectionCount).toBe(0);
    // The listener itself is unaffected.
    expect(server.listening).toBe(true);
  });

  it('rejects a unix-socket peer when the list is set (a non-TCP peer is never listed)', async () => {
    const socketPath = path.join(tempDir(), 'app.sock');
    const log = captureLogger();
    const server = makeServer({ webServerAddrs: '127.0.0.1', logger: log.logger });
    await listen(server, socketPath);
    await expectRefused(socketPath);
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]).toMatch(/non-TCP/);
  });

  it('a unix-socket peer is served when the list is not set', async () => {
    const socketPath = path.join(tempDir(), 'app.sock');
    const server = makeServer({ webServerAddrs: null });
    await listen(server, socketPath);
    expect((await get(socketPath)).status).toBe(200);
  });

  it("IPv4-mapped '::ffff:127.0.0.1' matches '127.0.0.1' when listening on '::'", async ({ skip }) => {
    if (!(await ipv6Available())) skip('IPv6 is not available on this machine');
    const log = captureLogger();
    const server = makeServer({ webServerAddrs: '127.0.0.1', logger: log.logger });
    await listen(server, 0, '::');
    const port = tcpPort(server);
    // A dual-stack socket sees the IPv4 peer as ::ffff:127.0.0.1; with IPV6_V6ONLY forced, it cannot connect.
    const remote = await new Promise<string | undefined>((resolve) => {
      server.once('connection', (s: net.Socket) => resolve(s.remoteAddress));
      const probe = net.connect(port, '127.0.0.1');
      probe.once('error', () => resolve(undefined));
      probe.once('connect', () => probe.destroy());
    });
    if (remote === undefined) skip('this machine does not accept IPv4 on an IPv6 socket (bindv6only)');
    expect(remote).toBe('::ffff:127.0.0.1');
    expect((await get({ port, host: '127.0.0.1' }, '/mapped')).body).toBe('hello /mapped\n');
    expect(log.warnings).toEqual([]);
    // The mapped form in the list matches too; ::1 is a different peer.
    const server2 = makeServer({ webServerAddrs: '::ffff:127.0.0.1', logger: log.logger });
    await listen(server2, 0, '::');
    expect((await get({ port: tcpPort(server2), host: '127.0.0.1' })).status).toBe(200);
    await expectRefused({ port: tcpPort(server2), host: '::1' });
    expect(log.warnings.at(-1)).toContain('::1');
  });

  it("webServerAddrs '::1' serves an IPv6 loopback peer", async ({ skip }) => {
    if (!(await ipv6Available())) skip('IPv6 is not available on this machine');
    const server = makeServer({ webServerAddrs: '::1', logger: captureLogger().logger });
    await listen(server, 0, '::1');
    expect((await get({ port: tcpPort(server), host: '::1' })).status).toBe(200);
  });

  describe('the environment variable', () => {
    function setEnv(value: string | undefined): void {
      const saved = process.env.FCGI_WEB_SERVER_ADDRS;
      onTestFinished(() => {
        if (saved === undefined) delete process.env.FCGI_WEB_SERVER_ADDRS;
        else process.env.FCGI_WEB_SERVER_ADDRS = saved;
      });
      if (value === undefined) delete process.env.FCGI_WEB_SERVER_ADDRS;
      else process.env.FCGI_WEB_SERVER_ADDRS = value;
    }

    it('FCGI_WEB_SERVER_ADDRS=10.0.0.1 in the environment refuses a 127.0.0.1 peer', async () => {
      setEnv('10.0.0.1');
      const log = captureLogger();
      const server = makeServer({ logger: log.logger });
      expect(server.settings.webServerAddrs).toEqual(new Set(['10.0.0.1']));
      await listen(server, 0, '127.0.0.1');
      await expectRefused({ port: tcpPort(server) });
      expect(log.warnings[0]).toContain('FCGI_WEB_SERVER_ADDRS');
    });

    it('FCGI_WEB_SERVER_ADDRS=10.0.0.1,127.0.0.1 in the environment serves a 127.0.0.1 peer', async () => {
      setEnv('10.0.0.1,127.0.0.1');
      const server = makeServer({ logger: captureLogger().logger });
      await listen(server, 0, '127.0.0.1');
      expect((await get({ port: tcpPort(server) })).status).toBe(200);
    });

    it('the webServerAddrs option overrides the environment (null: everyone)', async () => {
      setEnv('10.0.0.1');
      const server = makeServer({ webServerAddrs: null, logger: captureLogger().logger });
      await listen(server, 0, '127.0.0.1');
      expect((await get({ port: tcpPort(server) })).status).toBe(200);
    });

    it('an empty FCGI_WEB_SERVER_ADDRS allows everyone', async () => {
      setEnv('');
      const server = makeServer({ logger: captureLogger().logger });
      expect(server.settings.webServerAddrs).toBeNull();
      await listen(server, 0, '127.0.0.1');
      expect((await get({ port: tcpPort(server) })).status).toBe(200);
    });

    it('a spawned app reads FCGI_WEB_SERVER_ADDRS from its environment (bin-environment / FcgidInitialEnv)', async () => {
      const socket = await listeningTcpSocket();
      const app = spawnApp([socket.fd, 'pipe', 'pipe'], { FCGI_WEB_SERVER_ADDRS: '10.0.0.1' });
      socket.release();
      await app.waitFor('listening');
      await expectRefused({ port: socket.port });
      const warning = await app.waitFor('warn');
      expect(warning.message).toContain('127.0.0.1');
      expect(warning.message).toContain('FCGI_WEB_SERVER_ADDRS');
    });
  });
});
