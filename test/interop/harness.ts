// Harness for the interop suite: runs real web servers (nginx, lighttpd, Apache, spawn-fcgi, supervisord,
// cgi-fcgi, systemd-socket-activate) in the foreground in fresh temporary directories on 127.0.0.1 ports and
// unix sockets, runs the application fixture (test/fixtures/interop/app.ts) as a separate Node process, and
// stops everything it started by PID and process group. A missing server binary skips its tests with the
// Debian package to install, or fails them when FASTCGI_INTEROP_REQUIRED=1.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { blocks } from '../fixtures/interop/data';
import { findBinary, REQUIRED } from '../helpers/binaries';

// Binary lookup and FASTCGI_INTEROP_REQUIRED live in test/helpers/binaries.ts, shared with the unit suites.
export { findBinary, REQUIRED };
/** Keep temporary directories (configs, logs, events) after the run, for debugging. */
export const KEEP = process.env.FASTCGI_INTEROP_KEEP === '1';
export const ROOT = path.resolve(__dirname, '../..');
export const APP = path.join(ROOT, 'test/fixtures/interop/app.ts');
/** `--import` target that makes Node run the TypeScript fixture, by absolute URL so any cwd works. */
export const TSX_LOADER = pathToFileURL(require.resolve('tsx', { paths: [ROOT] })).href;
export const NODE = process.execPath;
/** The command that runs the application fixture. */
export const APP_ARGV = [NODE, '--import', TSX_LOADER, APP];

// ---- temporary directories and ports ----------------------------------------------------------------------

/** A fresh directory under the system temp dir, readable by the servers' worker users (nobody, www-data). */
export function tempDir(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `fcgi-interop-${name}-`));
  fs.chmodSync(dir, 0o755);
  return dir;
}

export function removeDir(dir: string): void {
  if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
}

// Ports are drawn below the kernel's ephemeral range: a port the kernel handed out for listen(0) can be taken,
// before the server under test binds it, by the local end of any outgoing connection, and other suites running
// at the same time make many.
const EPHEMERAL_START = ((): number => {
  try {
    return Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
})();
const handedOut = new Set<number>();

async function canListen(port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A TCP port free on 127.0.0.1 right now, outside the ephemeral range, not handed out before by this process. */
export async function freePort(): Promise<number> {
  const low = Math.max(1024, Math.min(20_000, EPHEMERAL_START - 12_000));
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (EPHEMERAL_START - low));
    if (handedOut.has(port) || !(await canListen(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('no free port found');
}

/** N numbers, as a tuple type, so `const [a, b] = await freePorts(2)` gives numbers under noUncheckedIndexedAccess. */
type Tuple<N extends number, T, R extends T[] = []> = R['length'] extends N ? R : Tuple<N, T, [...R, T]>;

export async function freePorts<N extends number>(n: N): Promise<Tuple<N, number>> {
  const ports: number[] = [];
  while (ports.length < n) ports.push(await freePort());
  return ports as Tuple<N, number>;
}

/** Waits until something accepts connections on a TCP port or unix socket path. */
export async function waitForListen(where: number | string, timeoutMs = 15_000, proc?: Proc): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = typeof where === 'number' ? net.connect(where, '127.0.0.1') : net.connect(where);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (proc !== undefined && proc.exitCode !== null)
      throw new Error(`${proc.name} exited (${proc.exitCode}) before listening on ${where}:\n${proc.output()}`);
    if (Date.now() > deadline)
      throw new Error(
        `nothing listens on ${where} after ${timeoutMs} ms${proc === undefined ? '' : `\n${proc.name}: ${proc.output()}`}`,
      );
    await delay(50);
  }
}

// ---- processes ------------------------------------------------------------------------------------------------

const started = new Set<Proc>();

/** A process the suite started, in its own process group, its output kept (the last 64 KB). */
export class Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  #output = '';

  constructor(
    name: string,
    argv: string[],
    options: { cwd?: string; env?: NodeJS.ProcessEnv; stdio?: ('pipe' | 'ignore' | number)[] } = {},
  ) {
    this.name = name;
    this.child = spawn(argv[0]!, argv.slice(1), {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: options.stdio ?? ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    started.add(this);
    const keep = (chunk: Buffer): void => {
      this.#output = (this.#output + chunk.toString('utf8')).slice(-65536);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitCode = code ?? -1;
        this.exitSignal = signal;
        started.delete(this);
        resolve({ code, signal });
      });
      this.child.once('error', (error) => {
        this.#output += `\nspawn error: ${error.message}`;
        this.exitCode = -1;
        started.delete(this);
        resolve({ code: -1, signal: null });
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  output(): string {
    return this.#output;
  }

  get running(): boolean {
    return this.exitCode === null;
  }

  /** Sends `signal` to the process (not its group). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Stops the process group: `signal`, then SIGKILL after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
    if (this.running) killGroup(this.pid, signal);
    const timer = setTimeout(() => killGroup(this.pid, 'SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
    // Whatever it left behind in its group (workers, spawned apps) goes too.
    killGroup(this.pid, 'SIGKILL');
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

/** Kills one process by PID if it is still alive (spawned apps the servers started and may have detached). */
export function killPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** PIDs whose parent is `ppid` (from /proc). */
export function childPids(ppid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * What each process under `roots` (their descendants and every thread) is doing, a line per thread: state,
 * the kernel function it sleeps in (wchan) and its syscall number with the first argument (/proc/…/syscall).
 * For a stalled request's report: which of web server, php-fpm and database sits waiting, and on what.
 */
export function processStates(roots: readonly number[]): string {
  const seen = new Set<number>();
  const queue = [...roots];
  const lines: string[] = [];
  const read = (file: string): string => readText(file).trim() || '?';
  while (queue.length > 0) {
    const pid = queue.shift()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    let tids: string[];
    try {
      tids = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      lines.push(`${pid}: gone`);
      continue;
    }
    for (const tid of tids) {
      const task = `/proc/${pid}/task/${tid}`;
      const stat = read(`${task}/stat`);
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      const syscall = read(`${task}/syscall`).split(' ').slice(0, 2).join(' ');
      lines.push(`${pid}/${tid} ${read(`${task}/comm`)} ${state} wchan=${read(`${task}/wchan`)} syscall=${syscall}`);
    }
    queue.push(...childPids(pid));
  }
  return lines.join('\n');
}

/** Stops every process still running that this worker started (a last resort in afterAll). */
export async function stopAll(): Promise<void> {
  await Promise.all([...started].map((p) => p.stop('SIGKILL', 1000)));
}

// ---- the application fixture ------------------------------------------------------------------------------

/** One listener of the app fixture (INTEROP_LISTEN). */
export interface Listener {
  listen: string;
  name?: string;
  mount?: string;
  socketMode?: number;
  webServerAddrs?: string[] | null;
  multiplex?: boolean;
}

/** One line of the app's events file. */
export interface AppEvent {
  ev: string;
  pid: number;
  t: number;
  tag?: string;
  [key: string]: unknown;
}

/** The events file the app processes append to, read on demand. */
export class Events {
  constructor(readonly file: string) {
    fs.writeFileSync(file, '');
    fs.chmodSync(file, 0o666);
  }

  all(): AppEvent[] {
    const text = fs.readFileSync(this.file, 'utf8');
    const out: AppEvent[] = [];
    for (const line of text.split('\n')) {
      if (line === '') continue;
      try {
        out.push(JSON.parse(line) as AppEvent);
      } catch {
        // a line being written right now
      }
    }
    return out;
  }

  find(predicate: (e: AppEvent) => boolean): AppEvent[] {
    return this.all().filter(predicate);
  }

  async waitFor(predicate: (e: AppEvent) => boolean, what: string, timeoutMs = 10_000): Promise<AppEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.all().find(predicate);
      if (found !== undefined) return found;
      if (Date.now() > deadline)
        throw new Error(`no app event ${what} within ${timeoutMs} ms; events:\n${this.tail()}`);
      await delay(25);
    }
  }

  tail(n = 30): string {
    return this.all()
      .slice(-n)
      .map((e) => JSON.stringify(e))
      .join('\n');
  }

  /** PIDs of every app process that reported listening. */
  pids(): number[] {
    return [...new Set(this.find((e) => e.ev === 'listening').map((e) => e.pid))];
  }

  /** Kills every app process that reported itself and is still alive (servers' spawned children). */
  killAll(): void {
    for (const pid of this.pids()) {
      // Only if the PID still runs the fixture: a PID may have been reused since the app exited.
      let cmdline = '';
      try {
        cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1');
      } catch {
        continue;
      }
      if (cmdline.includes(APP)) killPid(pid);
    }
  }
}

/** The app's environment: where to report and what to listen on. */
export function appEnv(
  events: Events,
  listeners: Listener[] = [{ listen: 'fd0' }],
  extra: Record<string, string> = {},
): Record<string, string> {
  return { INTEROP_EVENTS: events.file, INTEROP_LISTEN: JSON.stringify(listeners), ...extra };
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * writeWrapper writes an executable `#!/bin/sh` wrapper that sets the app's environment and `exec`s Node on
 * the fixture, leaving fd 0 alone: what lighttpd bin-path, mod_fcgid, cgi-fcgi -start and supervisor run.
 */
export function writeWrapper(file: string, env: Record<string, string>): string {
  const lines = [
    '#!/bin/sh',
    ...Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    `exec ${APP_ARGV.map(shellQuote).join(' ')}`,
    '',
  ];
  fs.writeFileSync(file, lines.join('\n'), { mode: 0o755 });
  return file;
}

/** The app run by the test itself on TCP ports / unix sockets. */
export class App {
  private constructor(
    readonly proc: Proc,
    readonly events: Events,
    readonly listeners: Listener[],
  ) {}

  static async start(events: Events, listeners: Listener[], env: Record<string, string> = {}): Promise<App> {
    const proc = new Proc('app', APP_ARGV, { cwd: ROOT, env: { ...process.env, ...appEnv(events, listeners, env) } });
    await events
      .waitFor((e) => e.ev === 'listening' && e.pid === proc.pid, `listening from app ${proc.pid}`, 20_000)
      .catch((error: Error) => {
        throw new Error(`${error.message}\napp output: ${proc.output()}`);
      });
    return new App(proc, events, listeners);
  }

  get pid(): number {
    return this.proc.pid;
  }

  async stop(): Promise<void> {
    await this.proc.stop('SIGTERM', 5000);
  }
}

// ---- HTTP client -----------------------------------------------------------------------------------------------

export interface HttpResult {
  status: number;
  statusMessage: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  /** sha256 of the body (hex) and its length; with `hashOnly` the body itself is not kept. */
  sha256: string;
  length: number;
}

export interface HttpOptions {
  port: number;
  path: string;
  method?: string;
  headers?: http.OutgoingHttpHeaders | [string, string][];
  /** A body: bytes, or { size, seed } for the deterministic body, sent with Content-Length unless chunked. */
  body?: Buffer | string | { size: number; seed: number };
  chunked?: boolean;
  /** Keep only the hash of the response body (large downloads). */
  hashOnly?: boolean;
  agent?: http.Agent | false;
  timeoutMs?: number;
  /** Called with the request as soon as it exists (to abort it before any response). */
  onRequest?: (req: http.ClientRequest) => void;
  /** Called with the response before its body is read (to pause it, abort, ...). */
  onResponse?: (res: http.IncomingMessage, req: http.ClientRequest) => void | Promise<void>;
}

/** One HTTP request with node:http; the body is written with backpressure, the response hashed as it arrives. */
export function httpRequest(options: HttpOptions): Promise<HttpResult> {
  return new Promise<HttpResult>((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders | [string, string][] = options.headers ?? {};
    const body = options.body;
    let flat: Record<string, string | string[] | number> | string[] = {};
    const bodyLength =
      body === undefined ? 0 : typeof body === 'object' && !Buffer.isBuffer(body) ? body.size : Buffer.byteLength(body);
    if (Array.isArray(headers)) {
      // A raw header list (repeated names): node adds no Host or framing headers to one.
      const list: [string, string][] = [...headers];
      if (!list.some(([n]) => n.toLowerCase() === 'host')) list.unshift(['Host', `127.0.0.1:${options.port}`]);
      if (body !== undefined)
        list.push(options.chunked === true ? ['Transfer-Encoding', 'chunked'] : ['Content-Length', String(bodyLength)]);
      flat = list.flat();
    } else {
      flat = { ...(headers as Record<string, string | string[] | number>) };
      if (body !== undefined) {
        if (options.chunked === true) flat['Transfer-Encoding'] = 'chunked';
        else if (flat['Content-Length'] === undefined) flat['Content-Length'] = bodyLength;
      }
    }
    const method = options.method ?? (body === undefined ? 'GET' : 'POST');
    const req = http.request({
      host: '127.0.0.1',
      port: options.port,
      path: options.path,
      method,
      headers: flat,
      agent: options.agent ?? false,
      setHost: true,
      maxHeaderSize: 1 << 20,
    });
    options.onRequest?.(req);
    const timer = setTimeout(
      () => req.destroy(new Error(`timed out after ${options.timeoutMs ?? 60_000} ms: ${method} ${options.path}`)),
      options.timeoutMs ?? 60_000,
    );
    req.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.once('response', (res) => {
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      let length = 0;
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        length += chunk.length;
        if (options.hashOnly !== true) chunks.push(chunk);
      });
      res.once('end', () => {
        clearTimeout(timer);
        resolve({
          status: res.statusCode ?? 0,
          statusMessage: res.statusMessage ?? '',
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: Buffer.concat(chunks),
          sha256: hash.digest('hex'),
          length,
        });
      });
      res.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      res.once('aborted', () => {
        clearTimeout(timer);
        reject(new Error(`response aborted after ${length} bytes`));
      });
      if (options.onResponse !== undefined) {
        res.pause();
        Promise.resolve(options.onResponse(res, req)).then(
          () => res.resume(),
          (error: unknown) => req.destroy(error as Error),
        );
      }
    });
    void (async () => {
      if (body === undefined) return req.end();
      if (typeof body === 'string' || Buffer.isBuffer(body)) return req.end(body);
      for (const b of blocks(body.size, body.seed)) {
        if (req.destroyed) return;
        if (!req.write(b)) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              req.off('drain', done);
              req.off('close', done);
              resolve();
            };
            req.on('drain', done);
            req.on('close', done);
          });
        }
      }
      req.end();
    })();
  });
}

/** GETs a path and parses the JSON body (the app's `env` answer, usually). */
export async function getJson<T = Record<string, unknown>>(
  port: number,
  pathAndQuery: string,
  headers?: HttpOptions['headers'],
): Promise<{ result: HttpResult; json: T }> {
  const result = await httpRequest({ port, path: pathAndQuery, ...(headers === undefined ? {} : { headers }) });
  let json: T;
  try {
    json = JSON.parse(result.body.toString('utf8')) as T;
  } catch {
    throw new Error(
      `not JSON (${result.status} ${result.statusMessage}): ${result.body.toString('latin1').slice(0, 500)}`,
    );
  }
  return { result, json };
}

/** What the app's `env` action answers. */
export interface EnvAnswer {
  pid: number;
  listener: string;
  method: string;
  url: string;
  baseUrl: string | null;
  originalUrl: string | null;
  headers: Record<string, string>;
  params: [string, string][];
  keepConn: boolean;
  requestId: number;
  role: number;
  connections: number;
}

/** The last value of a param in an `env` answer (undefined when absent). */
export function param(env: EnvAnswer, name: string): string | undefined {
  let value: string | undefined;
  for (const [n, v] of env.params) if (n === name) value = v;
  return value;
}

/** A raw HTTP/1.1 exchange over a socket, for requests node:http refuses to send (control bytes). */
export function rawHttp(
  port: number,
  request: Buffer | string,
  timeoutMs = 10_000,
): Promise<{ statusLine: string; head: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error('raw request timed out')), timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      const head = all.toString('latin1', 0, end === -1 ? all.length : end);
      resolve({
        statusLine: head.split('\r\n')[0] ?? '',
        head,
        body: end === -1 ? Buffer.alloc(0) : all.subarray(end + 4),
      });
    });
    // Not end(): a half-close makes some servers drop the request as a client abort. The request says
    // Connection: close, so the server closes when it is done.
    socket.write(request);
  });
}

// ---- cgi-fcgi as a client ---------------------------------------------------------------------------------

export interface CgiFcgiResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs `cgi-fcgi -bind -connect ADDRESS` (libfcgi-bin): its whole environment becomes the request's params
 * (so it runs with exactly `env`, as under env -i) and CONTENT_LENGTH bytes of `stdin` its body. Its stdout is
 * the raw CGI response; its exit code the app status.
 */
export function cgiFcgi(
  address: string,
  env: Record<string, string>,
  stdin: Buffer | string = '',
  timeoutMs = 30_000,
): Promise<CgiFcgiResult> {
  const binary = findBinary('cgi-fcgi');
  if (binary === null) throw new Error('cgi-fcgi not found (libfcgi-bin)');
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['-bind', '-connect', address], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    child.once('error', reject);
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
    child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
  });
}

/** The params cgi-fcgi sends for a request to `uri` (SCRIPT_NAME / PATH_INFO split at `scriptName`). */
export function cgiEnv(
  uri: string,
  options: { method?: string; scriptName?: string; contentLength?: number; extra?: Record<string, string> } = {},
): Record<string, string> {
  const q = uri.indexOf('?');
  const path = q === -1 ? uri : uri.slice(0, q);
  const scriptName = options.scriptName ?? '';
  const env: Record<string, string> = {
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: options.method ?? (options.contentLength === undefined ? 'GET' : 'POST'),
    REQUEST_URI: uri,
    QUERY_STRING: q === -1 ? '' : uri.slice(q + 1),
    SCRIPT_NAME: scriptName,
    PATH_INFO: decodeURIComponent(path.slice(scriptName.length)),
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: 'localhost',
    SERVER_PORT: '80',
    REMOTE_ADDR: '127.0.0.1',
    HTTP_HOST: 'localhost',
    ...options.extra,
  };
  if (options.contentLength !== undefined) env.CONTENT_LENGTH = String(options.contentLength);
  return env;
}

// ---- logs ----------------------------------------------------------------------------------------------------

export function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'latin1');
  } catch {
    return '';
  }
}

/** Waits until `file` matches `pattern` (a server's error log, which it may write a little later). */
export async function waitForLog(file: string, pattern: RegExp | string, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = readText(file);
    const found = typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text);
    if (found) return text;
    if (Date.now() > deadline)
      throw new Error(
        `${file} does not match ${String(pattern)} after ${timeoutMs} ms; its end:\n${text.slice(-3000)}`,
      );
    await delay(50);
  }
}

/** A unique marker for one test's output. */
export function marker(name: string): string {
  return `${name}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
