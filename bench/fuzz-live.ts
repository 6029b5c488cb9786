// Live fuzz: thousands of connections sending mutated or random record streams to a running server, beside
// checked legitimate traffic.
//
//   npm run fuzz:live                       180 s, 200 fuzz connections at a time
//   npm run fuzz:live -- --seconds 25       the CI run
//   npm run fuzz:live -- --seed 42 --case 1234     one case alone: its bytes and what the server answered
//
// The server is test/fixtures/apps/live-app.ts with default options, in a child process with a 256 MiB heap.
// Each fuzz connection sends one case, cut into up to 8 writes, then lingers 0-300 ms (or until the server
// closes it) and leaves by destroy or by FIN. A case is a valid stream (a GET, a POST whose body is cut into
// random records, three multiplexed requests, a kept connection with two requests, GET_VALUES, an aborted
// request, FILTER and AUTHORIZER roles) given 1-4 mutations (bit flips, byte overwrites, truncation, a slice
// duplicated or deleted, a record header's type, id, length or padding replaced, a random record inserted), or
// random records (version 1, any type, id, length and padding), or random bytes. Case i is made from a PRNG
// seeded with (seed, i), so --case reproduces it.
//
// Checked: the server process never exits; every legitimate request (new and kept connections) gets its
// exact answer; every byte the server sends a fuzz connection frames as FastCGI records; peak RSS stays
// under RSS after warm-up + maxBufferBytes + 128 MiB (as bench/dos.ts); after the run the server comes back
// to 0 connections, 0 buffered bytes, 0 requests. Exits 1 otherwise.
import type { Socket } from 'node:net';
import { Flag, RecordType, Role } from '../src/wire/constants';
import { encodePairs, encodeParams } from '../src/wire/pairs';
import { encodeBeginRequest, encodeRecord, encodeStream } from '../src/wire/records';
import { Decoder } from '../src/wire/decoder';
import { benchFlags, numberFlag } from './_util/args';
import { rawConnection, sleep } from './_util/attack-wire';
import { LegitTraffic, prng } from './_util/legit';
import { LiveServer, MiB, describeLeft, formatCounts, leftOver, mib } from './_util/live-server';

interface Args {
  seconds: number;
  seed: number;
  concurrency: number;
  caseIndex: number | null;
  sequential: number | null;
}

function parseArgs(argv: string[]): Args {
  const flags = benchFlags(
    argv,
    'usage: fuzz-live.ts [--seconds N (default 180)] [--seed N] [--concurrency N (200)] [--case I] [--sequential N]',
    ['seconds', 'seed', 'concurrency', 'case', 'sequential'],
  );
  return {
    seconds: numberFlag(flags.seconds, 180, 'seconds'),
    seed: numberFlag(flags.seed, (Date.now() % 1_000_000) | 0, 'seed'),
    concurrency: numberFlag(flags.concurrency, 200, 'concurrency'),
    caseIndex: flags.case === undefined ? null : numberFlag(flags.case, 0, 'case'),
    sequential: flags.sequential === undefined ? null : numberFlag(flags.sequential, 0, 'sequential'),
  };
}

type Random = () => number;
const int = (random: Random, n: number): number => Math.floor(random() * n);
const pick = <T>(random: Random, items: readonly T[]): T => items[int(random, items.length)]!;

function randomBytes(random: Random, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) out[i] = int(random, 256);
  return out;
}

const PARAMS = (method: string, uri: string, extra: Array<[string, string]> = []): Array<[string, string]> => [
  ['REQUEST_METHOD', method],
  ['REQUEST_URI', uri],
  ['SCRIPT_NAME', uri.split('?')[0]!],
  ['QUERY_STRING', uri.includes('?') ? uri.slice(uri.indexOf('?') + 1) : ''],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
  ['HTTP_HOST', 'fuzz.example'],
  ...extra,
];

/** A body as STDIN records of random sizes, ended. */
function stdinInPieces(random: Random, id: number, body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < body.length;) {
    const n = Math.min(body.length - o, 1 + int(random, random() < 0.2 ? 8 : 20_000));
    out.push(encodeRecord(RecordType.STDIN, id, body.subarray(o, o + n), { pad: random() < 0.7 }));
    o += n;
  }
  out.push(encodeRecord(RecordType.STDIN, id));
  return out;
}

function request(random: Random, id: number, keep: boolean): Buffer[] {
  const kind = int(random, 4);
  const uri = pick(random, ['/hello', '/bytes?n=70000', '/echo', '/sink', '/big', '/x?q=1']);
  const post = kind === 0 || uri === '/echo' || uri === '/sink';
  const body = post ? randomBytes(random, int(random, random() < 0.5 ? 200 : 100_000)) : Buffer.alloc(0);
  return [
    encodeBeginRequest(id, Role.RESPONDER, keep ? Flag.KEEP_CONN : 0),
    encodeParams(id, PARAMS(post ? 'POST' : 'GET', uri, post ? [['CONTENT_LENGTH', String(body.length)]] : [])),
    ...stdinInPieces(random, id, body),
  ];
}

/** A valid stream, as records (so mutations can aim at record boundaries). */
function template(random: Random): { name: string; records: Buffer[] } {
  switch (int(random, 8)) {
    case 0:
      return { name: 'request', records: request(random, 1 + int(random, 3), random() < 0.5) };
    case 1: {
      // Three requests multiplexed, their records interleaved.
      const streams = [1, 2, 3].map((id) => request(random, id, true));
      const records: Buffer[] = [];
      while (streams.some((s) => s.length > 0)) {
        const s = pick(
          random,
          streams.filter((x) => x.length > 0),
        );
        records.push(s.shift()!);
      }
      return { name: 'multiplexed', records };
    }
    case 2:
      return { name: 'kept-two', records: [...request(random, 1, true), ...request(random, 1, random() < 0.5)] };
    case 3:
      return {
        name: 'get-values',
        records: [
          encodeRecord(
            RecordType.GET_VALUES,
            0,
            encodePairs(
              ['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS', 'X_UNKNOWN'].map(
                (n) => [n, ''] as [string, string],
              ),
            ),
          ),
        ],
      };
    case 4: {
      const records = request(random, 1, true);
      records.splice(1 + int(random, records.length), 0, encodeRecord(RecordType.ABORT_REQUEST, 1));
      return { name: 'aborted', records };
    }
    case 5:
      return {
        name: 'filter',
        records: [
          encodeBeginRequest(1, Role.FILTER, 0),
          encodeParams(
            1,
            PARAMS('GET', '/filter', [
              ['FCGI_DATA_LENGTH', '5'],
              ['FCGI_DATA_LAST_MOD', '0'],
            ]),
          ),
          encodeRecord(RecordType.STDIN, 1),
          encodeStream(RecordType.DATA, 1, Buffer.from('data!'), { end: true }),
        ],
      };
    case 6:
      return {
        name: 'authorizer',
        records: [
          encodeBeginRequest(1, Role.AUTHORIZER, 0),
          encodeParams(1, PARAMS('GET', '/auth')),
          encodeRecord(RecordType.STDIN, 1),
        ],
      };
    default:
      return {
        name: 'unknown-type',
        records: [
          encodeRecord(11 + int(random, 200), 0, randomBytes(random, int(random, 40))),
          ...request(random, 1, false),
        ],
      };
  }
}

/** Replaces a record header field (type, id, content length, padding) with a random value. */
function corruptHeader(random: Random, record: Buffer): Buffer {
  const copy = Buffer.from(record);
  if (copy.length < 8) return copy;
  switch (int(random, 4)) {
    case 0:
      copy[1] = random() < 0.5 ? int(random, 12) : int(random, 256);
      break;
    case 1:
      copy.writeUInt16BE(pick(random, [0, 1, 2, 3, 255, 256, 65535, int(random, 65536)]), 2);
      break;
    case 2:
      copy.writeUInt16BE(random() < 0.5 ? int(random, 64) : int(random, 65536), 4);
      break;
    default:
      copy[6] = int(random, 256);
  }
  return copy;
}

function randomRecord(random: Random): Buffer {
  const length = random() < 0.9 ? int(random, 300) : int(random, 65536);
  const padding = random() < 0.7 ? -length & 7 : int(random, 256);
  const header = Buffer.alloc(8);
  header[0] = 1;
  header[1] = random() < 0.7 ? 1 + int(random, 11) : int(random, 256);
  header.writeUInt16BE(random() < 0.8 ? int(random, 4) : int(random, 65536), 2);
  header.writeUInt16BE(length, 4);
  header[6] = padding;
  // Most random records carry all their bytes; some stop short, so the server waits for more.
  const carried = random() < 0.85 ? length + padding : int(random, length + padding + 1);
  return Buffer.concat([header, randomBytes(random, Math.min(carried, 70_000))]);
}

/** Case `index` of run `seed`: its name and bytes. */
function makeCase(seed: number, index: number): { name: string; bytes: Buffer } {
  const random = prng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
  const roll = random();
  if (roll < 0.05) return { name: 'random-bytes', bytes: randomBytes(random, 1 + int(random, 2048)) };
  if (roll < 0.2)
    return {
      name: 'random-records',
      bytes: Buffer.concat(Array.from({ length: 1 + int(random, 20) }, () => randomRecord(random))),
    };
  const { name, records } = template(random);
  if (roll < 0.3) return { name: `valid-${name}`, bytes: Buffer.concat(records) };
  const mutations = 1 + int(random, 4);
  let recs = records;
  const applied: string[] = [];
  for (let m = 0; m < mutations; m++) {
    const op = int(random, 7);
    if (op === 0) {
      const i = int(random, recs.length);
      recs = recs.map((r, j) => (j === i ? corruptHeader(random, r) : r));
      applied.push('header');
    } else if (op === 1) {
      recs = [...recs];
      recs.splice(int(random, recs.length + 1), 0, randomRecord(random));
      applied.push('insert');
    } else {
      let bytes = Buffer.concat(recs);
      if (bytes.length === 0) continue;
      if (op === 2) {
        bytes = Buffer.from(bytes);
        for (let k = 1 + int(random, 8); k > 0; k--) bytes[int(random, bytes.length)]! ^= 1 << int(random, 8);
        applied.push('bitflip');
      } else if (op === 3) {
        bytes = Buffer.from(bytes);
        bytes[int(random, bytes.length)] = int(random, 256);
        applied.push('byte');
      } else if (op === 4) {
        bytes = bytes.subarray(0, int(random, bytes.length));
        applied.push('truncate');
      } else if (op === 5) {
        const from = int(random, bytes.length);
        const slice = bytes.subarray(from, from + 1 + int(random, 512));
        const at = int(random, bytes.length + 1);
        bytes = Buffer.concat([bytes.subarray(0, at), slice, bytes.subarray(at)]);
        applied.push('duplicate');
      } else {
        const from = int(random, bytes.length);
        bytes = Buffer.concat([bytes.subarray(0, from), bytes.subarray(from + 1 + int(random, 256))]);
        applied.push('delete');
      }
      recs = [bytes];
    }
  }
  return { name: `mutated-${name}`, bytes: Buffer.concat(recs) };
}

interface Outcome {
  name: string;
  closedByServer: boolean;
  replies: number;
  malformed: string | null;
  received: number;
}

/** Sends one case on its own connection; resolves once the connection is gone. */
async function runCase(path: string, seed: number, index: number): Promise<Outcome> {
  const random = prng(((seed ^ 0x5bd1e995) + index) >>> 0);
  const { name, bytes } = makeCase(seed, index);
  const outcome: Outcome = { name, closedByServer: false, replies: 0, malformed: null, received: 0 };
  let socket: Socket;
  try {
    socket = await rawConnection(path);
  } catch {
    return outcome;
  }
  let leaving = false;
  socket.once('close', () => {
    if (!leaving) outcome.closedByServer = true;
  });
  const decoder = new Decoder(
    {
      onRecord: (type) => {
        if (type === RecordType.END_REQUEST) outcome.replies++;
      },
      onParams: () => undefined,
      onError: (error) => {
        outcome.malformed ??= `${error.code}: ${error.message}`;
      },
    },
    { collectParams: false },
  );
  socket.on('data', (chunk: Buffer) => {
    outcome.received += chunk.length;
    decoder.push(chunk);
  });
  const cuts = [...new Set(Array.from({ length: int(random, 8) }, () => int(random, bytes.length)))].sort(
    (a, b) => a - b,
  );
  let from = 0;
  for (const to of [...cuts, bytes.length]) {
    if (socket.destroyed) break;
    if (to > from) socket.write(bytes.subarray(from, to));
    from = to;
    if (random() < 0.3) await sleep(int(random, 3));
  }
  const linger = int(random, 300);
  await new Promise<void>((resolve) => {
    if (socket.destroyed) return resolve();
    const timer = setTimeout(resolve, linger);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  leaving = true;
  if (!socket.destroyed && random() < 0.5) {
    // FIN first: the server may still answer what it has, then we go.
    socket.end();
    await sleep(50);
  }
  socket.destroy();
  return outcome;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const server = await LiveServer.start({ heapMiB: 256 });
  if (args.caseIndex !== null) {
    const c = makeCase(args.seed, args.caseIndex);
    process.stdout.write(
      `case ${args.caseIndex} of seed ${args.seed}: ${c.name}, ${c.bytes.length} bytes\n${c.bytes.toString('hex')}\n`,
    );
    const outcome = await runCase(server.path, args.seed, args.caseIndex);
    await sleep(200);
    process.stdout.write(`${JSON.stringify(outcome)}\nserver: ${JSON.stringify(await server.stats())}\n`);
    await server.stop();
    return;
  }
  if (args.sequential !== null) {
    // One case at a time, each followed by a wait for the server to drop everything: which cases leave
    // something behind (connections, bytes, requests)?
    const found: string[] = [];
    for (let index = 0; index < args.sequential && found.length < 10 && server.exit === null; index++) {
      const outcome = await runCase(server.path, args.seed, index);
      const left = await server.drained(1000);
      if (left === null || leftOver(left) > 0)
        found.push(`case ${index} (${outcome.name}): ${left === null ? server.crash : describeLeft(left)}`);
    }
    process.stdout.write(
      `${found.length === 0 ? 'no case' : found.join('\n')} of the first ${args.sequential} (seed ${args.seed}) left something in the server\n`,
    );
    await server.stop();
    process.exitCode = found.length === 0 ? 0 : 1;
    return;
  }
  process.stdout.write(
    `fuzz:live seed ${args.seed}, ${args.seconds} s, ${args.concurrency} fuzz connections at a time, node ${process.version}\n`,
  );
  const problems: string[] = [];

  const warm = new LegitTraffic({
    path: server.path,
    fresh: 2,
    kept: 2,
    kinds: ['hello', 'bytes64k', 'echo'],
    timeoutMs: 10_000,
    seed: args.seed,
  });
  await sleep(500);
  await warm.stop();
  const before = (await server.stats(true))!;
  const startRss = server.rss()!.rss;
  server.resetPeak();
  const bound = startRss + 128 * MiB + 128 * MiB;

  const legit = new LegitTraffic({
    path: server.path,
    fresh: 4,
    kept: 4,
    kinds: ['hello', 'bytes64k', 'echo'],
    timeoutMs: 10_000,
    seed: args.seed + 1,
  });
  const started = Date.now();
  const deadline = started + args.seconds * 1000;
  let next = 0;
  let connections = 0;
  let closedByServer = 0;
  let replies = 0;
  let malformed = 0;
  const malformedCases: string[] = [];
  const byName: Record<string, number> = {};
  // A crash is reproduced with --case on one of the cases in flight when it happened.
  const inFlight = new Set<number>();
  let inFlightAtCrash: number[] = [];
  server.child.once('exit', () => (inFlightAtCrash = [...inFlight].sort((a, b) => a - b)));
  const workers = Array.from({ length: args.concurrency }, async () => {
    while (Date.now() < deadline && server.exit === null) {
      const index = next++;
      inFlight.add(index);
      const outcome = await runCase(server.path, args.seed, index);
      inFlight.delete(index);
      const family = outcome.name.startsWith('random') ? outcome.name : outcome.name.split('-')[0]!;
      byName[family] = (byName[family] ?? 0) + 1;
      connections++;
      if (outcome.closedByServer) closedByServer++;
      replies += outcome.replies;
      if (outcome.malformed !== null) {
        malformed++;
        if (malformedCases.length < 5) malformedCases.push(`case ${index}: ${outcome.malformed}`);
      }
    }
  });
  const progress = setInterval(() => {
    const t = (Date.now() - started) / 1000;
    process.stdout.write(
      `  ${t.toFixed(0)} s: ${connections} fuzz connections (${(connections / t).toFixed(0)}/s), legit ok ${legit.ok} failed ${legit.failed}, RSS ${mib(server.rss()?.rss ?? 0)} MiB\n`,
    );
  }, 10_000);
  await Promise.all(workers);
  clearInterval(progress);
  await legit.stop();
  const elapsed = (Date.now() - started) / 1000;
  const peak = server.rss()?.peak ?? 0;
  const left = await server.drained(10_000);
  const after = await server.stats();

  if (server.exit !== null) {
    problems.push(`server ${server.crash}`);
    problems.push(
      `cases in flight at the crash (replay one with --seed ${args.seed} --case I): ${inFlightAtCrash.join(' ')}`,
    );
  }
  if (legit.failed > 0)
    problems.push(`${legit.failed} legitimate requests failed: ${legit.failures.slice(0, 3).join('; ')}`);
  if (legit.ok === 0) problems.push('no legitimate request was served');
  if (malformed > 0)
    problems.push(`${malformed} fuzz connections got bytes that are not FastCGI records: ${malformedCases.join('; ')}`);
  if (left !== null && leftOver(left) > 0)
    problems.push(`left in the server 10 s after the run: ${describeLeft(left)}`);
  if (peak > bound) problems.push(`peak RSS ${mib(peak)} MiB over the bound ${mib(bound)} MiB`);

  const codes: Record<string, number> = {};
  for (const [k, v] of Object.entries(after?.clientErrors ?? {}))
    if (v - (before.clientErrors[k] ?? 0) > 0) codes[k] = v - (before.clientErrors[k] ?? 0);
  process.stdout.write(
    `\nfuzz:live seed ${args.seed}: ${connections} fuzz connections in ${elapsed.toFixed(1)} s (${(connections / elapsed).toFixed(0)}/s; ${formatCounts(byName)})\n` +
      `  closed by the server ${closedByServer}, END_REQUESTs to fuzz connections ${replies}, malformed server output ${malformed}\n` +
      `  requests handled by the app ${after === null ? '?' : after.handled - before.handled}\n` +
      `  crash: ${server.exit ?? 'no'}; legit ok ${legit.ok}, failed ${legit.failed} (${legit.summary()})\n` +
      `  left: ${describeLeft(left)}; peak RSS ${mib(peak)} MiB (start ${mib(startRss)}, bound ${mib(bound)})\n` +
      `  clientError: ${formatCounts(codes)}\n` +
      (problems.length === 0
        ? 'fuzz:live: PASS\n'
        : problems.map((p) => `  FAIL: ${p}\n`).join('') + 'fuzz:live: FAILED\n'),
  );
  await server.stop();
  process.exitCode = problems.length === 0 ? 0 : 1;
}

main().catch((error: Error) => {
  process.stderr.write(`fuzz:live: ${error.stack ?? error.message}\n`);
  process.exitCode = 1;
});
