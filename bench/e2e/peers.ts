// The backends of the end-to-end benchmark, one per row: how each is found or built, started and addressed.
// Every backend answers the routes of bench/apps/e2e-handlers.ts (Node), bench/apps/e2e.go (Go) or
// bench/apps/e2e.c (libfcgi) with the same bytes. A peer that cannot run here (a missing compiler, library or
// package) is skipped with the reason, never dropped silently.
import { execFile, fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { canConnect, findBinary, freePort, track, waitUntil } from '../_util/processes';
import { isCompiled } from '../_util/report';
import type { ReadyMessage, ServerKind } from '../apps/serve';

const run = promisify(execFile);

/** nginx in front (unix sockets), or HAProxy (TCP on 127.0.0.1, so that its connections can be counted). */
export type Section = 'nginx' | 'haproxy';

/** Where a backend listens. */
export type Listen = { readonly path: string } | { readonly port: number };

export interface PeerContext {
  /** The run's temp dir: sockets, builds, caches. */
  readonly dir: string;
  /** The source tree (bench/apps/e2e.go and e2e.c are read from there). */
  readonly root: string;
  /** Connections wrk keeps open: the most requests a front end has in flight. */
  readonly connections: number;
}

export interface Backend {
  readonly child: ChildProcess;
  readonly listen: Listen;
  /** Set when the backend runs, but not as its row says (the native addon did not load): the row is skipped. */
  readonly mismatch: string | null;
  readonly stderr: StderrTap;
}

/**
 * A backend's stderr: passed on until the measurements start, then only counted (the last lines kept). Every
 * run ends with wrk dropping its connections mid-request, which some backends log at length.
 */
export class StderrTap {
  #loud = true;
  #lines = 0;
  #last: string[] = [];
  #startup = '';

  constructor(
    readonly name: string,
    stream: NodeJS.ReadableStream,
  ) {
    stream.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      if (this.#loud) {
        this.#startup += text;
        process.stderr.write(text.replace(/^(?=.)/gm, `${name}: `));
        return;
      }
      const lines = text.split('\n').filter((line) => line !== '');
      this.#lines += lines.length;
      this.#last = [...this.#last, ...lines].slice(-3);
    });
  }

  /** What it wrote before quiet(): the reason when it fails to start. */
  get startup(): string {
    return this.#startup;
  }

  /** From now on, count instead of passing on. */
  quiet(): void {
    this.#loud = false;
  }

  /** A line for the end of the run, or null when it wrote nothing while quiet. */
  summary(): string | null {
    return this.#lines === 0
      ? null
      : `${this.name} wrote ${this.#lines} line(s) to stderr during the runs; the last: ${this.#last.join(' | ')}`;
  }
}

export type Prepared = { readonly skip: string } | { readonly version: string | null };

export interface Peer {
  /** For --only and the JSON output. */
  readonly id: string;
  readonly label: string;
  readonly section: Section;
  readonly protocol: 'fastcgi' | 'http';
  /** The row the others of its section are compared with (node:http). */
  readonly reference: boolean;
  /** Finds or builds what the backend needs: its version, or why it cannot run here. */
  prepare(context: PeerContext): Promise<Prepared>;
  start(context: PeerContext, listen: Listen): Promise<Backend>;
}

/** `unix:/path` or `127.0.0.1:port`, as nginx's upstream and HAProxy's server lines take it. */
export function serverAddress(listen: Listen, unixPrefix: string): string {
  return 'path' in listen ? `${unixPrefix}${listen.path}` : `127.0.0.1:${listen.port}`;
}

// ---- Node backends: bench/apps/serve.ts (forked, with IPC) and the `fastcgi-engine serve` command ----------------

const APPS = join(__dirname, '..', 'apps');
// BENCH_PROFILE_DIR=DIR: every Node backend writes a V8 CPU profile there when it stops (to see where its CPU
// goes; not for numbers, profiling slows it). BENCH_NODE_FLAGS: more flags for every Node backend, space-separated
// (e.g. `--heap-prof --heap-prof-dir=DIR` for where it allocates).
const PROFILE = process.env.BENCH_PROFILE_DIR ?? '';
const EXEC_ARGV = [
  ...(isCompiled(__filename) ? [] : ['--import', 'tsx']),
  ...(PROFILE === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${PROFILE}`]),
  ...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter((flag) => flag !== ''),
];
const APP_EXT = isCompiled(__filename) ? '.js' : '.ts';
// An empty value counts as unset for the addon loader, whatever this process was started with.
const NATIVE_ENV = { FASTCGI_NO_NATIVE: '', FASTCGI_REQUIRE_NATIVE: '' };

async function forkServe(
  id: string,
  kind: ServerKind,
  listen: Listen,
  env: Record<string, string>,
): Promise<{ child: ChildProcess; ready: ReadyMessage; listen: Listen; stderr: StderrTap }> {
  const where = 'path' in listen ? listen.path : 'tcp';
  // The server's stdout goes to our stderr: stdout carries the report.
  const child = track(
    fork(join(APPS, `serve${APP_EXT}`), [kind, 'e2e', where], {
      env: { ...process.env, ...env },
      execArgv: EXEC_ARGV,
      stdio: ['ignore', 2, 'pipe', 'ipc'],
    }),
  );
  const stderr = new StderrTap(id, child.stderr!);
  const message = await new Promise<ReadyMessage>((resolve, reject) => {
    const onExit = (code: number | null): void =>
      reject(new Error(`${kind} server exited with ${String(code)} before listening: ${stderr.startup}`));
    child.once('exit', onExit);
    child.once('message', (ready: ReadyMessage) => {
      child.off('exit', onExit);
      resolve(ready);
    });
  });
  return {
    child,
    ready: message,
    listen: typeof message.address === 'number' ? { port: message.address } : listen,
    stderr,
  };
}

function packageVersion(name: string): string | null {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return null;
  }
}

interface NodePeerSpec {
  readonly id: string;
  readonly label: string;
  readonly section: Section;
  readonly kind: ServerKind;
  readonly env: Record<string, string>;
  /** The codec the row claims: the backend must report it. */
  readonly codec?: 'native' | 'typescript';
}

function nodePeer(spec: NodePeerSpec): Peer {
  return {
    id: spec.id,
    label: spec.label,
    section: spec.section,
    protocol: spec.kind === 'http' ? 'http' : 'fastcgi',
    reference: spec.kind === 'http',
    async prepare() {
      if (spec.kind !== 'node-fastcgi') return { version: null };
      const version = packageVersion('node-fastcgi');
      return version === null
        ? { skip: 'node-fastcgi is not installed (npm install --save-dev node-fastcgi)' }
        : { version: `node-fastcgi ${version}` };
    },
    async start(_context, listen) {
      const { child, ready, listen: actual, stderr } = await forkServe(spec.id, spec.kind, listen, spec.env);
      const mismatch =
        spec.codec !== undefined && ready.codec !== spec.codec
          ? `the engine runs its ${ready.codec} scanner, not the ${spec.codec} one (${ready.codecReason ?? 'no reason given'})`
          : null;
      return { child, listen: actual, mismatch, stderr };
    },
  };
}

/** The backend's process, waited for until it accepts connections on `listen`. */
async function spawnListening(
  what: string,
  argv: readonly string[],
  listen: Listen,
  env?: NodeJS.ProcessEnv,
): Promise<Backend> {
  const child = track(spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 2, 'pipe'], env: env ?? process.env }));
  const stderr = new StderrTap(what, child.stderr!);
  await waitUntil(
    what,
    () => canConnect('path' in listen ? listen : { port: listen.port, host: '127.0.0.1' }),
    child,
    () => stderr.startup,
  );
  return { child, listen, mismatch: null, stderr };
}

async function tcpPort(listen: Listen): Promise<Listen> {
  return 'path' in listen ? listen : { port: listen.port === 0 ? await freePort() : listen.port };
}

/**
 * `fastcgi-engine serve bench/apps/e2e-fetch` (the command line, as users run it). Its process loads more than
 * the harness's (the command's own modules), which is why the fetch API also has a harness row to be compared
 * with createServer.
 */
const fetchCliPeer: Peer = {
  id: 'engine-fetch-cli',
  label: 'fastcgi-engine serve command, fetch handler',
  section: 'nginx',
  protocol: 'fastcgi',
  reference: false,
  async prepare() {
    return { version: null };
  },
  async start(context, listen) {
    const cli = isCompiled(__filename)
      ? [...EXEC_ARGV, join(__dirname, '..', '..', 'src', 'cli', 'main.js')]
      : [...EXEC_ARGV, join(context.root, 'src', 'cli', 'main.ts')];
    const at = await tcpPort(listen);
    const where = 'path' in at ? ['--socket', at.path] : ['--port', String(at.port)];
    const argv = [process.execPath, ...cli, 'serve', join(APPS, `e2e-fetch${APP_EXT}`), ...where];
    return spawnListening('engine-fetch-cli', argv, at, { ...process.env, ...NATIVE_ENV });
  },
};

// ---- Native peers, built at run time from bench/apps ---------------------------------------------------------

/** The last lines of a failed build's output, for the skip line. */
function buildError(error: unknown): string {
  const { stderr, message } = error as { stderr?: string; message: string };
  const text = (stderr !== undefined && stderr.trim() !== '' ? stderr : message).trim().split('\n');
  return text.slice(-3).join(' / ');
}

const goPeer: Peer = {
  id: 'go',
  label: 'Go net/http/fcgi',
  section: 'nginx',
  protocol: 'fastcgi',
  reference: false,
  async prepare(context) {
    const go = findBinary(['go']);
    if (go === null) return { skip: 'no go on PATH (apt-get install golang-go)' };
    // Offline, standard library only, and nothing written outside the temp dir.
    const env = {
      ...process.env,
      GOCACHE: join(context.dir, 'go-cache'),
      GOPATH: join(context.dir, 'go-path'),
      GOPROXY: 'off',
      GOFLAGS: '',
      GOTOOLCHAIN: 'local',
      CGO_ENABLED: '0',
    };
    try {
      const { stdout } = await run(go, ['version'], { env });
      await run(go, ['build', '-o', join(context.dir, 'e2e-go'), 'e2e.go'], {
        cwd: join(context.root, 'bench', 'apps'),
        env,
        timeout: 300_000,
      });
      return { version: stdout.trim().split(' ')[2] ?? 'go' };
    } catch (error) {
      return { skip: `go build failed: ${buildError(error)}` };
    }
  },
  async start(context, listen) {
    const at = await tcpPort(listen);
    const argv = [join(context.dir, 'e2e-go'), ...('path' in at ? ['unix', at.path] : ['tcp', `127.0.0.1:${at.port}`])];
    return spawnListening('go', argv, at);
  },
};

/** libfcgi's threads: one per connection nginx may hold (see bench/apps/e2e.c), at least 8. */
function libfcgiThreads(context: PeerContext): number {
  return Math.max(8, 2 * context.connections);
}

const libfcgiPeer: Peer = {
  id: 'libfcgi',
  label: 'libfcgi (C, a thread per connection)',
  section: 'nginx',
  protocol: 'fastcgi',
  reference: false,
  async prepare(context) {
    const cc = findBinary(['gcc', 'cc']);
    if (cc === null) return { skip: 'no C compiler (apt-get install gcc)' };
    for (const [header, pkg] of [
      ['/usr/include/fcgiapp.h', 'libfcgi-dev'],
      ['/usr/include/openssl/evp.h', 'libssl-dev'],
    ] as const) {
      if (!existsSync(header)) return { skip: `no ${header} (apt-get install ${pkg})` };
    }
    try {
      await run(
        cc,
        [
          '-O2',
          '-o',
          join(context.dir, 'e2e-c'),
          join(context.root, 'bench', 'apps', 'e2e.c'),
          '-lfcgi',
          '-lcrypto',
          '-lpthread',
        ],
        { timeout: 120_000 },
      );
    } catch (error) {
      return { skip: `gcc failed: ${buildError(error)}` };
    }
    let version = 'libfcgi';
    try {
      version = `libfcgi ${(await run('dpkg-query', ['-W', '-f', '${Version}', 'libfcgi-dev'])).stdout.trim()}`;
    } catch {
      // not Debian: no version to show
    }
    return { version: `${version}, ${libfcgiThreads(context)} threads` };
  },
  async start(context, listen) {
    const at = await tcpPort(listen);
    const argv = [
      join(context.dir, 'e2e-c'),
      'path' in at ? at.path : `127.0.0.1:${at.port}`,
      String(libfcgiThreads(context)),
    ];
    return spawnListening('libfcgi', argv, at);
  },
};

/** Every row, in table order (the reference first in each section). */
export const PEERS: readonly Peer[] = [
  nodePeer({ id: 'node-http', label: 'node:http via proxy_pass (reference)', section: 'nginx', kind: 'http', env: {} }),
  nodePeer({
    id: 'engine-native',
    label: 'fastcgi-engine createServer, native scanner',
    section: 'nginx',
    kind: 'engine',
    env: NATIVE_ENV,
    codec: 'native',
  }),
  nodePeer({
    id: 'engine-ts',
    label: 'fastcgi-engine createServer, TS scanner (FASTCGI_NO_NATIVE=1)',
    section: 'nginx',
    kind: 'engine',
    env: { FASTCGI_NO_NATIVE: '1', FASTCGI_REQUIRE_NATIVE: '' },
    codec: 'typescript',
  }),
  nodePeer({
    id: 'engine-fetch',
    label: 'fastcgi-engine serve(), fetch handler',
    section: 'nginx',
    kind: 'fetch',
    env: NATIVE_ENV,
    codec: 'native',
  }),
  fetchCliPeer,
  nodePeer({
    id: 'drop-in',
    label: 'fastcgi-engine/node-fastcgi drop-in',
    section: 'nginx',
    kind: 'drop-in',
    env: NATIVE_ENV,
  }),
  nodePeer({
    id: 'floor',
    label: "floor: the engine's decoder, fixed answers, no API",
    section: 'nginx',
    kind: 'floor',
    env: NATIVE_ENV,
    codec: 'native',
  }),
  nodePeer({ id: 'node-fastcgi', label: 'node-fastcgi', section: 'nginx', kind: 'node-fastcgi', env: {} }),
  goPeer,
  libfcgiPeer,
  nodePeer({
    id: 'haproxy-node-http',
    label: 'HAProxy → node:http (reference)',
    section: 'haproxy',
    kind: 'http',
    env: {},
  }),
  nodePeer({
    id: 'haproxy-engine',
    label: 'HAProxy fcgi-app → fastcgi-engine createServer, native',
    section: 'haproxy',
    kind: 'engine',
    env: NATIVE_ENV,
    codec: 'native',
  }),
];

/** A socket path for `peer` in the run's dir. */
export function socketFor(context: PeerContext, peer: Peer): Listen {
  mkdirSync(join(context.dir, 'sockets'), { recursive: true });
  return { path: join(context.dir, 'sockets', `${peer.id}.sock`) };
}
