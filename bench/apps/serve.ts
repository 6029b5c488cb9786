// One benchmark server, run as its own process by bench/server.bench.ts and bench/e2e.bench.ts (forked with an
// IPC channel, so the load generator and the server never share a thread). Every server kind runs the very same
// handlers.
//
//   node bench/apps/serve.js <kind> <workload> <address>
//     kind      node-fastcgi | engine | drop-in | fetch | floor | http   (engine, drop-in and fetch honour
//               FASTCGI_NO_NATIVE from the environment; drop-in is fastcgi-engine/node-fastcgi; fetch is the
//               engine's serve() with the fetch handler of ./e2e-handlers, e2e workload only; floor is
//               ./floor-server.ts, the engine's decoder with no API, e2e workload only)
//     workload  hello | params | e2e   (e2e: the routes of ./e2e-handlers)
//     address   a unix socket path, or `tcp` for 127.0.0.1 on a free port
//
// Messages to the parent (process.send): { type: 'ready', ... } once listening; { type: 'cpu', ... } in reply
// to { type: 'cpu' }. The process exits when the parent goes away (IPC disconnect) or on SIGTERM, so a
// crashed or killed benchmark leaves no server behind.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import { fetchHandler, nodeHandler } from './e2e-handlers';
// The engine is required lazily, in the engine, fetch and drop-in branches only: the other servers' processes
// never load it.
type EngineServer = typeof import('../../src/server/server');
type EngineFetch = typeof import('../../src/server/fetch');
type EngineCodec = typeof import('../../src/codec/load');
type EngineDropIn = typeof import('../../src/node-fastcgi');

export type ServerKind = 'node-fastcgi' | 'engine' | 'drop-in' | 'fetch' | 'floor' | 'http';
export type WorkloadName = 'hello' | 'params' | 'e2e';

/** What the parent learns once the server listens. */
export interface ReadyMessage {
  readonly type: 'ready';
  readonly pid: number;
  readonly kind: ServerKind;
  /** The unix socket path, or the TCP port on 127.0.0.1. */
  readonly address: string | number;
  /** The engine's codec: 'native' or 'typescript' (null for the other kinds). */
  readonly codec: string | null;
  readonly codecReason: string | null;
  /** node-fastcgi's package version (null for the other kinds). */
  readonly version: string | null;
}

/** CPU time this process has used so far, with its own clock, so the parent can compute a CPU share. */
export interface CpuMessage {
  readonly type: 'cpu';
  readonly cpuUs: number;
  readonly wallMs: number;
}

/** A 1 KB body that starts with the three params the handler read (so the client can check them). */
export const PARAMS_BODY_LENGTH = 1024;
const FILLER = 'abcdefghijklmnopqrstuvwxyz0123456789'
  .repeat(Math.ceil(PARAMS_BODY_LENGTH / 36))
  .slice(0, PARAMS_BODY_LENGTH);

/** The `params` body for a request: `GET host url\n` padded to 1 KB. */
export function paramsBody(method: string, host: string, url: string): string {
  const head = `${method} ${host} ${url}\n`;
  return head + FILLER.slice(head.length);
}

// Typed as node:http's request and response, which the FastCGI servers' objects are (or extend).
type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const HANDLERS: Record<WorkloadName, Handler> = {
  hello: (_req, res) => {
    res.end('hello world');
  },
  params: (req, res) => {
    const host = req.headers.host ?? '';
    const url = req.url ?? '';
    const method = req.method ?? '';
    res.end(paramsBody(method, host, url));
  },
  e2e: nodeHandler,
};

interface NodeFastcgiModule {
  createServer(handler: Handler): NetServer;
}

function nodeFastcgiVersion(): string {
  try {
    return (require('node-fastcgi/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

const ENGINE_LOGGER = {
  warn: (message: string) => process.stderr.write(`engine warn: ${message}\n`),
  error: (message: string) => process.stderr.write(`engine error: ${message}\n`),
};

function main(): void {
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  const [kind, workload, where] = process.argv.slice(2) as [ServerKind, WorkloadName, string];
  const handler = HANDLERS[workload];
  if (handler === undefined || where === undefined)
    throw new Error(`usage: serve <kind> <workload> <address>, got ${process.argv.slice(2).join(' ')}`);

  let server: NetServer;
  let version: string | null = null;
  let codec: EngineCodec['codec'] | null = null;
  switch (kind) {
    case 'node-fastcgi':
      server = (require('node-fastcgi') as NodeFastcgiModule).createServer(handler);
      version = nodeFastcgiVersion();
      break;
    case 'engine': {
      const { createServer } = require('../../src/server/server') as EngineServer;
      codec = (require('../../src/codec/load') as EngineCodec).codec;
      server = createServer({ logger: ENGINE_LOGGER }, handler);
      break;
    }
    case 'fetch': {
      // The same process as the createServer rows (only the server module differs), so the two APIs are
      // compared with the same heap around them: V8's collection schedule on 1 MB uploads depends on it
      // (README, "End to end").
      if (workload !== 'e2e') throw new Error(`the fetch server serves the e2e workload only, not ${workload}`);
      const { serve } = require('../../src/server/fetch') as EngineFetch;
      codec = (require('../../src/codec/load') as EngineCodec).codec;
      server = serve(fetchHandler, { logger: ENGINE_LOGGER });
      break;
    }
    case 'drop-in':
      server = (require('../../src/node-fastcgi') as EngineDropIn).createServer(handler);
      codec = (require('../../src/codec/load') as EngineCodec).codec;
      break;
    case 'floor': {
      if (workload !== 'e2e') throw new Error(`the floor server serves the e2e workload only, not ${workload}`);
      const { floorServer } = require('./floor-server') as typeof import('./floor-server');
      codec = (require('../../src/codec/load') as EngineCodec).codec;
      server = floorServer();
      break;
    }
    case 'http':
      server = createHttpServer(handler);
      break;
    default:
      throw new Error(`unknown server kind ${String(kind)}`);
  }

  server.on('error', (error) => {
    process.stderr.write(`${kind} server: ${error.stack ?? error.message}\n`);
    process.exit(3);
  });
  server.on('listening', () => {
    const address = where === 'tcp' ? (server.address() as AddressInfo).port : where;
    const ready: ReadyMessage = {
      type: 'ready',
      pid: process.pid,
      kind,
      address,
      codec: codec?.implementation ?? null,
      codecReason: codec?.nativeUnavailableReason ?? null,
      version,
    };
    process.send?.(ready);
  });
  if (where === 'tcp') server.listen(0, '127.0.0.1');
  else server.listen(where);

  process.on('message', (message: { type?: string }) => {
    if (message.type === 'cpu') {
      const usage = process.cpuUsage();
      const reply: CpuMessage = { type: 'cpu', cpuUs: usage.user + usage.system, wallMs: performance.now() };
      process.send?.(reply);
    }
  });
}

if (require.main === module) main();
