// Denial-of-service attacks against a live server, each beside checked legitimate traffic.
//
//   npm run dos                         every attack, 240 s in all (24 s each)
//   npm run dos -- --seconds 30         the CI run (3 s each)
//   npm run dos -- --only params-1byte,never-reads --seed 7
//
// Each attack gets a fresh server (test/fixtures/apps/live-app.ts) in a child process with a 256 MiB heap, on a
// unix socket. It runs default options unless waiting out a default timeout would make the attack slow; those
// few limits are printed with the attack. Beside the attacker, loops of legitimate requests (hello, 64 KiB
// response, POST up to 200 KB echoed as sha256; new connection per request, and a kept one) run on other
// connections, every answer checked byte for byte.
//
// Per attack it prints: whether the server process exited (crash), legitimate requests served and failed,
// what is left in the server's tables once attacker and legitimate traffic have gone (connections, buffered
// bytes, requests in the connection tables, handlers not closed; after up to 5 s), peak RSS (the kernel's
// high-water mark over the attack) against the bound, and the clientError codes the server reported.
//
// Bound: peak RSS ≤ RSS after warm-up + maxBufferBytes + 128 MiB. maxBufferBytes caps what params and unread
// bodies may hold (also checked on the server's own count); V8 collects released Buffers only once external
// memory has grown by 64 MiB since its last GC, so up to 64 MiB of them can still be resident; the other
// 64 MiB cover output queues (connectionHighWaterMark per connection, until sendTimeout), the heap's growth
// under load and the allocator's slack.
//
// Exits 1 when any attack crashes the server, fails a legitimate request, leaves anything in the tables, goes
// over the bound, or never makes the server report the defence it tests (e.g. FCGI_ERR_BEGIN_TIMEOUT).
import type { Socket } from 'node:net';
import { Flag, RecordType, Role } from '../src/wire/constants';
import { encodePairs, encodeParams } from '../src/wire/pairs';
import { encodeBeginRequest, encodeRecord, encodeStream, streamRecordChunks } from '../src/wire/records';
import { benchFlags, numberFlag } from './_util/args';
import { closedWithin, oneByteRecords, rawConnection, sleep, writeAll } from './_util/attack-wire';
import { LegitTraffic } from './_util/legit';
import {
  LiveServer,
  MiB,
  countsSince,
  describeLeft,
  formatCounts,
  leftOver,
  mib,
  type LiveStats,
} from './_util/live-server';

interface Args {
  seconds: number;
  only: string[] | null;
  seed: number;
}

function parseArgs(argv: string[]): Args {
  const flags = benchFlags(
    argv,
    'usage: dos.ts [--seconds N (all attacks together, default 240)] [--only a,b] [--seed N]',
    ['seconds', 'only', 'seed'],
  );
  const args: Args = {
    seconds: numberFlag(flags.seconds, 240, 'seconds'),
    only: flags.only === undefined ? null : flags.only.split(','),
    seed: numberFlag(flags.seed, (Date.now() % 1_000_000) | 0, 'seed'),
  };
  if (!(args.seconds > 0)) throw new Error('--seconds must be positive');
  return args;
}

/** What an attack's loops share: where to connect, when to stop, and every socket they opened. */
class Attacker {
  readonly sockets = new Set<Socket>();
  opened = 0;
  stopped = false;
  readonly notes: string[] = [];

  constructor(
    readonly server: LiveServer,
    readonly deadline: number,
  ) {}

  get path(): string {
    return this.server.path;
  }

  /** `ms`, cut to what is left before the deadline: no wait outlives the attack. */
  remaining(ms: number): number {
    return Math.min(ms, Math.max(0, this.deadline - Date.now()));
  }

  get done(): boolean {
    return this.stopped || Date.now() >= this.deadline || this.server.exit !== null;
  }

  async connect(): Promise<Socket> {
    const socket = await rawConnection(this.path);
    this.opened++;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    return socket;
  }

  /** `workers` copies of `body` each looping until the deadline. */
  async loops(workers: number, body: (worker: number) => Promise<void>): Promise<void> {
    await Promise.all(
      Array.from({ length: workers }, async (_, worker) => {
        while (!this.done) await body(worker);
      }),
    );
  }

  stop(): void {
    this.stopped = true;
    for (const socket of this.sockets) socket.destroy();
  }
}

interface Attack {
  name: string;
  what: string;
  /** Options the server runs with (defaults for the rest), and why, if any. */
  server: Record<string, unknown>;
  why?: string;
  /** At least one of these clientError codes (or warnings) must show: the defence the attack tests. */
  expect: string[];
  /** Run only when named with --only: a known server defect, kept as its reproduction. */
  optIn?: boolean;
  /** Legitimate loops: new connection per request, kept connection. */
  legit: { fresh: number; kept: number };
  run(attacker: Attacker): Promise<void>;
}

const DEFAULT_MAX_BUFFER = 128 * MiB;

/** A params block of `bytes` bytes: one pair X=… (its value length takes 4 bytes). */
function paramsBlock(bytes: number): Buffer {
  return encodePairs([['X', Buffer.alloc(bytes - 6, 0x61)]]);
}

const GET = (uri: string): Array<[string, string]> => [
  ['REQUEST_METHOD', 'GET'],
  ['REQUEST_URI', uri],
];
const POST = (uri: string, length: number): Array<[string, string]> => [
  ['REQUEST_METHOD', 'POST'],
  ['REQUEST_URI', uri],
  ['CONTENT_LENGTH', String(length)],
];

const ATTACKS: Attack[] = [
  {
    name: 'params-1byte',
    what: 'PARAMS in 1-byte records (16 wire bytes per params byte): 1.1 MB blocks (over maxParamsBytes) and 0.9 MB ones left unended, 8 connections at a time',
    server: {},
    expect: ['FCGI_ERR_PARAMS_TOO_LARGE'],
    legit: { fresh: 3, kept: 1 },
    async run(attacker) {
      const over = [
        encodeBeginRequest(1, Role.RESPONDER, Flag.KEEP_CONN),
        ...oneByteRecords(RecordType.PARAMS, 1, paramsBlock(1_100_000)),
      ];
      const under = [
        encodeBeginRequest(1, Role.RESPONDER, Flag.KEEP_CONN),
        ...oneByteRecords(RecordType.PARAMS, 1, paramsBlock(900_000)),
      ];
      await attacker.loops(8, async (worker) => {
        const socket = await attacker.connect();
        // Over the limit the server closes; under it, the params stay held until we go.
        if (await writeAll(socket, worker % 2 === 0 ? over : under, () => attacker.done))
          await closedWithin(socket, attacker.remaining(worker % 2 === 1 ? 200 : 3000));
        socket.destroy();
      });
    },
  },
  {
    name: 'stdin-1byte',
    what: 'request bodies in 1-byte records: 128 KiB bodies read at once by /sink (answer checked), and 1 MiB bodies to /late, which reads only after 3 s, the peer leaving after 2 s; 8 + 8 connections',
    server: {},
    expect: [],
    legit: { fresh: 3, kept: 1 },
    async run(attacker) {
      const SINK = 128 * 1024;
      const sink = [
        encodeBeginRequest(1, Role.RESPONDER, 0),
        encodeParams(1, POST('/sink', SINK)),
        ...oneByteRecords(RecordType.STDIN, 1, Buffer.alloc(SINK, 0x63)),
        encodeRecord(RecordType.STDIN, 1),
      ];
      const late = [
        encodeBeginRequest(1, Role.RESPONDER, 0),
        encodeParams(1, POST('/late?ms=3000', MiB)),
        ...oneByteRecords(RecordType.STDIN, 1, Buffer.alloc(MiB, 0x64)),
      ];
      let sinkAnswers = 0;
      let sinkWrong = 0;
      await attacker.loops(16, async (worker) => {
        const socket = await attacker.connect();
        if (worker % 2 === 0) {
          let reply = Buffer.alloc(0);
          socket.on('data', (chunk: Buffer) => (reply = Buffer.concat([reply, chunk])));
          if (await writeAll(socket, sink, () => attacker.done)) {
            await closedWithin(socket, 10_000);
            if (reply.includes(Buffer.from(`\r\n\r\n${SINK}`))) sinkAnswers++;
            else sinkWrong++;
          }
        } else {
          // The server stops reading at inputHighWaterMark, so this write stalls until the handler reads.
          void writeAll(socket, late, () => attacker.done);
          await sleep(attacker.remaining(2000));
        }
        socket.destroy();
      });
      attacker.notes.push(
        `${sinkAnswers} bodies of 128 KiB in 1-byte records answered right by /sink, ${sinkWrong} wrong or unanswered`,
      );
      if (sinkWrong > 0) throw new Error(`${sinkWrong} 1-byte-record bodies were not answered with their length`);
    },
  },
  {
    name: 'connection-budget',
    what: '128 requests x 1 MiB of params on one connection, none ended (over the 8 MiB maxConnectionBufferBytes), 4 connections at a time',
    server: {},
    expect: ['FCGI_ERR_BUFFER_LIMIT'],
    legit: { fresh: 3, kept: 1 },
    async run(attacker) {
      const block = paramsBlock(MiB - 64);
      function* requests(): Generator<Uint8Array> {
        for (let id = 1; id <= 128; id++) {
          yield encodeBeginRequest(id, Role.RESPONDER, Flag.KEEP_CONN);
          yield* streamRecordChunks(RecordType.PARAMS, id, block);
        }
      }
      await attacker.loops(4, async () => {
        const socket = await attacker.connect();
        await writeAll(socket, requests(), () => attacker.done);
        await closedWithin(socket, attacker.remaining(3000));
        socket.destroy();
      });
    },
  },
  {
    name: 'server-budget',
    what: '24 connections x 6 requests x 1 MiB of params, none ended: each under its own budget, together over the 128 MiB maxBufferBytes; each held 2 s',
    server: {},
    expect: ['FCGI_ERR_BUFFER_LIMIT'],
    legit: { fresh: 3, kept: 1 },
    async run(attacker) {
      const block = paramsBlock(MiB - 64);
      function* requests(): Generator<Uint8Array> {
        for (let id = 1; id <= 6; id++) {
          yield encodeBeginRequest(id, Role.RESPONDER, Flag.KEEP_CONN);
          yield* streamRecordChunks(RecordType.PARAMS, id, block);
        }
      }
      await attacker.loops(24, async () => {
        const socket = await attacker.connect();
        await writeAll(socket, requests(), () => attacker.done);
        await closedWithin(socket, attacker.remaining(2000));
        socket.destroy();
      });
    },
  },
  {
    name: 'never-reads',
    what: 'a peer that reads nothing: 128 pipelined requests for 1 MiB each plus 8 MB of GET_VALUES per connection, 4 connections at a time',
    server: { sendTimeout: 2000 },
    why: 'sendTimeout 2 s (default 60 s)',
    expect: ['FCGI_ERR_SEND_TIMEOUT'],
    legit: { fresh: 3, kept: 1 },
    async run(attacker) {
      const requests = Buffer.concat(
        Array.from({ length: 128 }, (_, i) =>
          Buffer.concat([
            encodeBeginRequest(i + 1, Role.RESPONDER, Flag.KEEP_CONN),
            encodeParams(i + 1, GET('/big')),
            encodeRecord(RecordType.STDIN, i + 1),
          ]),
        ),
      );
      const query = encodeRecord(RecordType.GET_VALUES, 0, encodePairs([['FCGI_MPXS_CONNS', '']]));
      const queries = Buffer.concat(Array.from({ length: (8 * MiB) / query.length }, () => query));
      await attacker.loops(4, async () => {
        const socket = await attacker.connect();
        socket.pause();
        void writeAll(socket, [requests, queries], () => attacker.done);
        await closedWithin(socket, attacker.remaining(10_000));
        socket.destroy();
      });
    },
  },
  {
    name: 'trickle-begin',
    what: 'a BEGIN_REQUEST trickled one byte per 100 ms, 200 connections at a time, reconnecting when closed',
    server: { beginTimeout: 1000 },
    why: 'beginTimeout 1 s (default 10 s)',
    expect: ['FCGI_ERR_BEGIN_TIMEOUT'],
    legit: { fresh: 3, kept: 1 },
    async run(attacker) {
      const begin = encodeBeginRequest(1, Role.RESPONDER, Flag.KEEP_CONN);
      await attacker.loops(200, async () => {
        const socket = await attacker.connect();
        for (let i = 0; i < begin.length && !socket.destroyed && !attacker.done; i++) {
          socket.write(begin.subarray(i, i + 1));
          await sleep(100);
        }
        await closedWithin(socket, attacker.remaining(Infinity));
        socket.destroy();
      });
    },
  },
  {
    name: 'trickle-body',
    what: 'a POST body trickled in 1-byte records every 100 ms (10 B/s, under minBodyRate 500 B/s), 200 connections at a time',
    server: { bodyTimeout: 2000 },
    why: 'bodyTimeout 2 s (default 30 s)',
    expect: ['FCGI_ERR_BODY_TIMEOUT'],
    legit: { fresh: 3, kept: 1 },
    async run(attacker) {
      const head = Buffer.concat([encodeBeginRequest(1, Role.RESPONDER, 0), encodeParams(1, POST('/sink', 100_000))]);
      const byte = encodeRecord(RecordType.STDIN, 1, Buffer.from('x'));
      await attacker.loops(200, async () => {
        const socket = await attacker.connect();
        socket.write(head);
        while (!socket.destroyed && !attacker.done) {
          socket.write(byte);
          await sleep(100);
        }
        socket.destroy();
      });
    },
  },
  {
    name: 'silent-flood',
    what: 'maxConnections + 64 connections that send nothing, each reopened 10 ms after the server closes it',
    server: {},
    expect: ['closed an idle connection to make room for a new one'],
    // A kept legitimate connection is idle between two requests, so making room may close it just as the
    // next request leaves (nginx would retry it); this attack's legitimate traffic opens one per request.
    legit: { fresh: 4, kept: 0 },
    async run(attacker) {
      await attacker.loops(1024 + 64, async () => {
        const socket = await attacker.connect();
        await closedWithin(socket, attacker.remaining(Infinity));
        socket.destroy();
        await sleep(10);
      });
    },
  },
  {
    name: 'filter-data-abort',
    what: 'FILTER requests to /hold (whose handler has not answered yet) with their DATA stream begun, then ABORT_REQUEST or the connection closed; 4 connections at a time',
    server: {},
    expect: [],
    // The DATA stream is made when DATA arrives, with no 'error' listener unless the handler reads req.data;
    // until 5bc85ac the abort destroyed it with an error nobody handled, and the process exited.
    legit: { fresh: 3, kept: 1 },
    async run(attacker) {
      const head = Buffer.concat([
        encodeBeginRequest(1, Role.FILTER, 0),
        encodeParams(1, GET('/hold')),
        encodeRecord(RecordType.STDIN, 1),
        encodeRecord(RecordType.DATA, 1, Buffer.from('partial')),
      ]);
      await attacker.loops(4, async (worker) => {
        const socket = await attacker.connect();
        socket.write(worker % 2 === 0 ? Buffer.concat([head, encodeRecord(RecordType.ABORT_REQUEST, 1)]) : head);
        await sleep(200);
        socket.destroy();
      });
    },
  },
  {
    name: 'deferred-body-abort',
    what: 'two multiplexed requests on a connection that reads nothing: /big (1 MiB, so output is over connectionHighWaterMark and the next handler is deferred), then a POST with part of its body; then the connection closed; 4 connections at a time',
    server: {},
    expect: [],
    // The deferred request's body arrives before any handler could listen; until 5bc85ac it went into a
    // stream that the abort destroyed with an error nobody handled, and the process exited.
    legit: { fresh: 3, kept: 1 },
    async run(attacker) {
      const bytes = Buffer.concat([
        encodeBeginRequest(1, Role.RESPONDER, Flag.KEEP_CONN),
        encodeParams(1, GET('/big')),
        encodeRecord(RecordType.STDIN, 1),
        encodeBeginRequest(2, Role.RESPONDER, Flag.KEEP_CONN),
        encodeParams(2, POST('/echo', 10)),
        encodeRecord(RecordType.STDIN, 2, Buffer.from('part')),
      ]);
      await attacker.loops(4, async () => {
        const socket = await attacker.connect();
        socket.pause();
        socket.write(bytes);
        await sleep(200);
        socket.destroy();
      });
    },
  },
  {
    name: 'unread-body-gone',
    what: 'a 1 MiB body to /hold, whose handler never reads it, the peer leaving after 1 s; 16 connections at a time',
    server: {},
    expect: [],
    // The server stops reading such a connection (inputHighWaterMark) and so never sees the peer go: the
    // connection, its buffered body and its request stay until the handler reads, here forever.
    optIn: true,
    legit: { fresh: 3, kept: 1 },
    async run(attacker) {
      const hold = [
        encodeBeginRequest(1, Role.RESPONDER, 0),
        encodeParams(1, POST('/hold', MiB)),
        encodeStream(RecordType.STDIN, 1, Buffer.alloc(MiB, 0x64)),
      ];
      await attacker.loops(16, async () => {
        const socket = await attacker.connect();
        void writeAll(socket, hold, () => attacker.done);
        await sleep(attacker.remaining(1000));
        socket.destroy();
      });
    },
  },
  {
    name: 'half-closed-unread',
    what: 'POST /big without KEEP_CONN, 200 KB of body: the 1 MiB answer goes over connectionHighWaterMark while body bytes still wait in the socket; the peer reads the answer, then leaves; 8 connections at a time',
    server: {},
    expect: [],
    // After END_REQUEST the server half-closes the connection; paused for its output, it used to never read
    // again and so never saw the peer's FIN: the connection stayed in its table for good. It now reads on after
    // its FIN (a regression check since).
    legit: { fresh: 3, kept: 1 },
    async run(attacker) {
      const bytes = Buffer.concat([
        encodeBeginRequest(1, Role.RESPONDER, 0),
        encodeParams(1, POST('/big', 200_000)),
        encodeStream(RecordType.STDIN, 1, Buffer.alloc(200_000, 0x65), { end: true }),
      ]);
      await attacker.loops(8, async () => {
        const socket = await attacker.connect();
        socket.resume();
        socket.write(bytes);
        await closedWithin(socket, attacker.remaining(1000));
        socket.destroy();
      });
    },
  },
];

interface Result {
  attack: Attack;
  seconds: number;
  crash: string | null;
  legitOk: number;
  legitFailed: number;
  legitFailures: string[];
  opened: number;
  left: LiveStats | null;
  startRss: number;
  peakRss: number;
  bound: number;
  codes: Record<string, number>;
  warnings: Record<string, number>;
  notes: string[];
  problems: string[];
}

async function runAttack(attack: Attack, seconds: number, seed: number): Promise<Result> {
  const server = await LiveServer.start({ server: attack.server, heapMiB: 256 });
  const problems: string[] = [];
  try {
    // Warm-up: JIT and the first buffers, so the baseline is the server's working size, not its empty one.
    const warm = new LegitTraffic({
      path: server.path,
      fresh: 2,
      kept: 2,
      kinds: ['hello', 'bytes64k', 'echo'],
      timeoutMs: 10_000,
      seed,
    });
    await sleep(500);
    await warm.stop();
    const before = (await server.stats(true))!;
    const startRss = server.rss()!.rss;
    server.resetPeak();
    const maxBuffer = Number(attack.server['maxBufferBytes'] ?? DEFAULT_MAX_BUFFER);
    const bound = startRss + maxBuffer + 128 * MiB;

    const attacker = new Attacker(server, Date.now() + seconds * 1000);
    const legit = new LegitTraffic({
      path: server.path,
      ...attack.legit,
      kinds: ['hello', 'bytes64k', 'echo'],
      timeoutMs: 10_000,
      seed: seed + 1,
    });
    const started = Date.now();
    // The server's own figures during the attack: what it charged, what it held in buffers, how many
    // connections it had; sampled, so a peak between two samples is missed (the RSS peak is not).
    const peaks = { buffered: 0, arrayBuffers: 0, connections: 0, rss: 0 };
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await server.stats();
        if (s === null) break;
        peaks.buffered = Math.max(peaks.buffered, s.bufferedBytes);
        peaks.arrayBuffers = Math.max(peaks.arrayBuffers, s.arrayBuffers);
        peaks.connections = Math.max(peaks.connections, s.connections);
        peaks.rss = Math.max(peaks.rss, server.rss()?.peak ?? 0);
        await sleep(100);
      }
    })();
    const attackDone = attack.run(attacker).catch((error: Error) => {
      problems.push(`attack: ${error.message}`);
    });
    // An attack loop that does not notice its deadline still stops: its sockets are destroyed.
    let giveUp: NodeJS.Timeout | undefined;
    await Promise.race([attackDone, new Promise((resolve) => (giveUp = setTimeout(resolve, seconds * 1000 + 15_000)))]);
    clearTimeout(giveUp);
    attacker.stop();
    await legit.stop();
    sampling = false;
    await sampler;
    const elapsed = (Date.now() - started) / 1000;
    const peakRss = Math.max(peaks.rss, server.rss()?.peak ?? 0);
    const left = await server.drained(5000);
    const after = await server.stats();
    const codes = after === null ? {} : countsSince(after.clientErrors, before.clientErrors);
    const warnings = after === null ? {} : countsSince(after.warnings, before.warnings);

    const crash = server.exit;
    if (crash !== null) problems.push(`server ${server.crash}`);
    if (legit.failed > 0)
      problems.push(`${legit.failed} legitimate requests failed: ${legit.failures.slice(0, 3).join('; ')}`);
    if (legit.ok === 0) problems.push('no legitimate request was served');
    if (left !== null && leftOver(left) > 0) problems.push(`left in the server after 5 s: ${describeLeft(left)}`);
    if (peaks.buffered > maxBuffer) problems.push(`${peaks.buffered} bytes charged, over maxBufferBytes ${maxBuffer}`);
    if (peakRss > bound) problems.push(`peak RSS ${mib(peakRss)} MiB over the bound ${mib(bound)} MiB`);
    if (attack.expect.length > 0 && !attack.expect.some((code) => (codes[code] ?? 0) + (warnings[code] ?? 0) > 0)) {
      problems.push(`the server never reported ${attack.expect.join(' or ')}`);
    }
    return {
      attack,
      seconds: elapsed,
      crash,
      legitOk: legit.ok,
      legitFailed: legit.failed,
      legitFailures: legit.failures,
      opened: attacker.opened,
      left,
      startRss,
      peakRss,
      bound,
      codes,
      warnings,
      notes: [
        `legitimate traffic: ${legit.summary()}`,
        `server during the attack (sampled every 100 ms): at most ${mib(peaks.buffered)} MiB charged to the buffer budget, ${mib(peaks.arrayBuffers)} MiB in Buffers, ${peaks.connections} connections`,
        ...attacker.notes,
      ],
      problems,
    };
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const attacks =
    args.only === null ? ATTACKS.filter((a) => a.optIn !== true) : ATTACKS.filter((a) => args.only!.includes(a.name));
  if (attacks.length === 0)
    throw new Error(`no attack named ${args.only?.join(', ')}; known: ${ATTACKS.map((a) => a.name).join(', ')}`);
  const each = Math.max(2, args.seconds / attacks.length);
  process.stdout.write(
    `dos: ${attacks.length} attacks x ${each.toFixed(1)} s, seed ${args.seed}, node ${process.version}, pid ${process.pid}\n`,
  );
  process.stdout.write(
    `bound per attack: peak RSS <= RSS after warm-up + maxBufferBytes + 128 MiB (server heap --max-old-space-size=256)\n\n`,
  );
  const results: Result[] = [];
  for (const [i, attack] of attacks.entries()) {
    process.stdout.write(`[${attack.name}] ${attack.what}; server: ${attack.why ?? 'default options'}\n`);
    const wallStart = Date.now();
    const result = await runAttack(attack, each, args.seed + i * 1000);
    result.notes.push(`wall time with the server's start and stop: ${((Date.now() - wallStart) / 1000).toFixed(1)} s`);
    results.push(result);
    const r = result;
    process.stdout.write(
      `  crash: ${r.crash ?? 'no'}; legit ok ${r.legitOk}, failed ${r.legitFailed}; attacker connections ${r.opened} in ${r.seconds.toFixed(1)} s\n` +
        `  left: ${describeLeft(r.left)}; peak RSS ${mib(r.peakRss)} MiB (start ${mib(r.startRss)}, bound ${mib(r.bound)})\n` +
        `  clientError: ${formatCounts(r.codes)}; warnings: ${formatCounts(r.warnings)}\n` +
        r.notes.map((n) => `  ${n}\n`).join('') +
        (r.problems.length === 0 ? '  PASS\n\n' : r.problems.map((p) => `  FAIL: ${p}\n`).join('') + '\n'),
    );
  }
  const rows = results.map((r) => [
    r.attack.name,
    r.crash === null ? '0' : '1',
    String(r.legitOk),
    String(r.legitFailed),
    String(r.opened),
    r.left === null
      ? 'n/a'
      : String(r.left.connections + r.left.activeRequests + r.left.inFlight) + ' / ' + r.left.bufferedBytes + ' B',
    `${mib(r.peakRss)} / ${mib(r.bound)}`,
    formatCounts(r.codes),
    r.problems.length === 0 ? 'pass' : 'FAIL',
  ]);
  const header = [
    'attack',
    'crashes',
    'legit ok',
    'legit failed',
    'attacker conns',
    'left (conn+req / bytes)',
    'peak RSS / bound MiB',
    'clientError codes',
    '',
  ];
  process.stdout.write(`| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|\n`);
  for (const row of rows) process.stdout.write(`| ${row.join(' | ')} |\n`);
  const failed = results.filter((r) => r.problems.length > 0);
  process.stdout.write(
    failed.length === 0
      ? `\ndos: all ${results.length} attacks passed\n`
      : `\ndos: ${failed.length} of ${results.length} attacks FAILED: ${failed.map((r) => r.attack.name).join(', ')}\n`,
  );
  process.exitCode = failed.length === 0 ? 0 : 1;
}

main().catch((error: Error) => {
  process.stderr.write(`dos: ${error.stack ?? error.message}\n`);
  process.exitCode = 1;
});
