// Codec benchmarks: the TypeScript scanner (baseline) against the raw native addon and the routed default,
// on nginx-shaped inputs (./_util/workloads.ts), from one scanner call up to the Decoder end to end.
//
//   npm run bench:codec                 markdown tables
//   npm run -s bench:codec -- --json    JSON (-s keeps npm's banner off stdout)
//
// Knobs (env): BENCH_TIME ms per task per round (default 250), BENCH_WARMUP ms (default 50), BENCH_ROUNDS
// (default 2), BENCH_SAMPLE_US target µs per sample (default 20), BENCH_SWEEP=0 skips the threshold sweep,
// BENCH_TSX=1 measures under tsx instead of compiled code (see _util/report.ts), FASTCGI_NO_NATIVE=1 runs the
// TypeScript rows only. Total run time with the defaults: about 35 s.
// The thresholds the sweep tunes live in src/codec/load.ts; the README shows the latest tables.
import {
  NATIVE_PAIRS_MIN_BYTES,
  TS_HEAD_RECORDS,
  codec,
  nativeScanner,
  scanner as routedScanner,
} from '../src/codec/load';
import { typescriptScanner } from '../src/codec/scanner-ts';
import type { Scanner } from '../src/codec/scanner';
import {
  OUT_CONSUMED,
  OUT_COUNT,
  OUT_ERROR,
  ERR_NONE,
  OUT_HEADER_SLOTS,
  PAIR_STRIDE,
  REC_CONTENT_LENGTH,
  REC_CONTENT_OFFSET,
  REC_STRIDE,
  REC_TYPE,
} from '../src/codec/layout';
import { RecordType } from '../src/wire/constants';
import { Decoder, type DecoderHandler } from '../src/wire/decoder';
import type { Params } from '../src/wire/params';
import type { FastCGIError } from '../src/errors';
import { BODY_LENGTH, bodyChunk, formatBytes, paramsBlock, paramsBlockOf, requestsChunk } from './_util/workloads';
import {
  environment,
  envNumber,
  formatJson,
  formatMarkdown,
  relaunchCompiled,
  runGroups,
  type BenchCase,
  type BenchGroup,
  type BenchTask,
  type Report,
  type RunOptions,
} from './_util/report';

interface Impl {
  /** Label in task names: `TS`, `native`, `routed`. */
  readonly label: string;
  /** Tag in JSON output. */
  readonly tag: string;
  readonly scanner: Scanner;
}

const TS: Impl = { label: 'TS', tag: 'typescript', scanner: typescriptScanner };
const NATIVE: Impl | null = nativeScanner === null ? null : { label: 'native', tag: 'native', scanner: nativeScanner };
// The default scanner only differs from the raw ones when the addon is loaded.
const ROUTED: Impl | null = NATIVE === null ? null : { label: 'routed', tag: 'routed', scanner: routedScanner };

/** Baseline first, then the raw addon, then (when asked for) the size-routed default. */
function impls(withRouted: boolean): Impl[] {
  const list = [TS];
  if (NATIVE !== null) list.push(NATIVE);
  if (withRouted && ROUTED !== null) list.push(ROUTED);
  return list;
}

// Results land here so no scan can be optimized away.
let sink = 0;

// Scratch outputs, big enough for every input (a 40-request chunk has 160 records; the largest block 100 pairs).
const recordsOut = new Uint32Array(OUT_HEADER_SLOTS + REC_STRIDE * 256);
const pairsOut = new Uint32Array(OUT_HEADER_SLOTS + PAIR_STRIDE * 256);

// Inputs, named by shape.
interface Input {
  readonly label: string;
  readonly buf: Buffer;
  /** Whole requests in the chunk (0 for a bare params block). */
  readonly requests: number;
}

function chunkInput(requests: number): Input {
  const buf = requestsChunk(requests);
  return { label: `${requests} req/chunk (${formatBytes(buf.length)})`, buf, requests };
}

const ONE = chunkInput(1);
const FORTY = chunkInput(40);
const BODY: Input = (() => {
  const buf = bodyChunk();
  return { label: `1 req + ${formatBytes(BODY_LENGTH)} STDIN (${formatBytes(buf.length)})`, buf, requests: 1 };
})();
const PARAMS_30: Input = (() => {
  const buf = paramsBlock();
  return { label: `30 params (~${formatBytes(buf.length)})`, buf, requests: 0 };
})();

function pairsInput(count: number): Input {
  const buf = paramsBlockOf(count);
  return { label: `${count} params (${formatBytes(buf.length)})`, buf, requests: 0 };
}

// --- operations -------------------------------------------------------------------------------------------

function scanRecordsOp(s: Scanner, buf: Buffer): () => void {
  const end = buf.length;
  return () => {
    sink += s.scanRecords(buf, 0, end, recordsOut);
  };
}

function scanPairsOp(s: Scanner, buf: Buffer): () => void {
  const end = buf.length;
  return () => {
    sink += s.scanPairs(buf, 0, end, pairsOut);
  };
}

/** Records of a chunk, then the pairs of every non-empty PARAMS record: descriptors and known ids, no strings. */
function decodeDescriptors(s: Scanner, buf: Buffer): number {
  const count = s.scanRecords(buf, 0, buf.length, recordsOut);
  let pairs = 0;
  for (let i = 0, slot = OUT_HEADER_SLOTS; i < count; i++, slot += REC_STRIDE) {
    const length = recordsOut[slot + REC_CONTENT_LENGTH]!;
    if (recordsOut[slot + REC_TYPE] === RecordType.PARAMS && length > 0) {
      const offset = recordsOut[slot + REC_CONTENT_OFFSET]!;
      pairs += s.scanPairs(buf, offset, offset + length, pairsOut);
    }
  }
  return pairs;
}

function decodeDescriptorsOp(s: Scanner, buf: Buffer): () => void {
  return () => {
    sink += decodeDescriptors(s, buf);
  };
}

/** A handler like an application's: it reads 3 of the 30 params through the lazy view and counts the rest. */
class ReadThreeParams implements DecoderHandler {
  records = 0;
  contentBytes = 0;
  params = 0;
  checksum = 0;

  onRecord(_type: number, _requestId: number, content: Buffer): void {
    this.records++;
    this.contentBytes += content.length;
  }

  onParams(_requestId: number, params: Params): void {
    this.params++;
    const method = params.get('REQUEST_METHOD');
    const uri = params.get('REQUEST_URI');
    const host = params.get('HTTP_HOST');
    this.checksum += (method?.length ?? 0) + (uri?.length ?? 0) + (host?.length ?? 0);
  }

  onError(error: FastCGIError): void {
    // A stopped decoder would ignore later pushes and time nothing: fail loudly instead.
    throw error;
  }
}

// One Decoder per task, made once: every push carries whole requests, so the decoder is back in its initial
// state (no carried record, no open params collector) after each one.
function decoderOp(s: Scanner, buf: Buffer): () => void {
  const handler = new ReadThreeParams();
  const decoder = new Decoder(handler, { scanner: s });
  return () => {
    decoder.push(buf);
  };
}

// --- correctness check before timing -----------------------------------------------------------------------

function fail(message: string): never {
  throw new Error(`bench self-check: ${message}`);
}

function snapshot(out: Uint32Array, stride: number): number[] {
  return Array.from(out.subarray(0, OUT_HEADER_SLOTS + out[OUT_COUNT]! * stride));
}

function checkInputs(): void {
  const chunks: [Input, number][] = [
    [ONE, 4],
    [FORTY, 160],
    [BODY, 5],
  ];
  for (const [input, records] of chunks) {
    let reference: number[] | null = null;
    for (const impl of impls(true)) {
      const count = impl.scanner.scanRecords(input.buf, 0, input.buf.length, recordsOut);
      if (count !== records || recordsOut[OUT_ERROR] !== ERR_NONE || recordsOut[OUT_CONSUMED] !== input.buf.length) {
        fail(`${impl.label} scanRecords on ${input.label}: ${count} records, error ${recordsOut[OUT_ERROR]}`);
      }
      const got = snapshot(recordsOut, REC_STRIDE);
      if (reference !== null && got.join() !== reference.join())
        fail(`${impl.label} scanRecords differs from TS on ${input.label}`);
      reference ??= got;
      const pairs = decodeDescriptors(impl.scanner, input.buf);
      if (pairs !== 30 * input.requests) fail(`${impl.label} decode of ${input.label}: ${pairs} pairs`);

      const handler = new ReadThreeParams();
      const decoder = new Decoder(handler, { scanner: impl.scanner });
      decoder.push(input.buf);
      decoder.push(input.buf);
      if (handler.params !== 2 * input.requests || decoder.midRecord || decoder.stopped) {
        fail(`${impl.label} Decoder on ${input.label}: ${handler.params} params events`);
      }
    }
  }
  for (const count of [5, 30, 100]) {
    const block = paramsBlockOf(count);
    let reference: number[] | null = null;
    for (const impl of impls(true)) {
      const n = impl.scanner.scanPairs(block, 0, block.length, pairsOut);
      if (n !== count || pairsOut[OUT_ERROR] !== ERR_NONE) fail(`${impl.label} scanPairs on ${count} params: ${n}`);
      const got = snapshot(pairsOut, PAIR_STRIDE);
      if (reference !== null && got.join() !== reference.join())
        fail(`${impl.label} scanPairs differs from TS on ${count} params`);
      reference ??= got;
    }
  }
  if (paramsBlockOf(30).compare(PARAMS_30.buf) !== 0) fail('paramsBlockOf(30) is not the nginx block');
}

// --- groups -----------------------------------------------------------------------------------------------

function benchCase(
  input: Input,
  list: readonly Impl[],
  name: (impl: Impl) => string,
  op: (s: Scanner, buf: Buffer) => () => void,
): BenchCase {
  return {
    input: input.label,
    bytes: input.buf.length,
    tasks: list.map((impl): BenchTask => ({ name: name(impl), impl: impl.tag, op: op(impl.scanner, input.buf) })),
  };
}

function groups(sweep: boolean): BenchGroup[] {
  const all = impls(true);
  const raw = impls(false);
  const list: BenchGroup[] = [
    {
      title: 'scanRecords: frame one socket chunk',
      description: `One op = one scanRecords call over the whole chunk. "routed" is the default scanner (TS for the first ${TS_HEAD_RECORDS} records, native for the rest).`,
      cases: [ONE, FORTY, BODY].map((input) =>
        benchCase(input, all, (impl) => `scanRecords ${impl.label}, ${input.label}`, scanRecordsOp),
      ),
    },
    {
      title: 'scanPairs: one request’s params block',
      description: `One op = one scanPairs call over the pair bytes of one request (names matched to known ids). "routed": native from ${NATIVE_PAIRS_MIN_BYTES} B.`,
      cases: [benchCase(PARAMS_30, all, (impl) => `scanPairs ${impl.label}, ${PARAMS_30.label}`, scanPairsOp)],
    },
    {
      title: 'Decode to descriptors + known ids (no strings)',
      description:
        'One op = scanRecords over the chunk, then scanPairs over every non-empty PARAMS record. Per request: divide the 40-request mean by 40.',
      cases: [ONE, FORTY].map((input) =>
        benchCase(input, all, (impl) => `decode ${impl.label}, ${input.label}`, decodeDescriptorsOp),
      ),
    },
    {
      title: 'Decoder.push end to end (lazy params, handler reads 3)',
      description:
        'One op = Decoder.push of the whole chunk: records dispatched, PARAMS collected, Params built, and the handler reads ' +
        'REQUEST_METHOD, REQUEST_URI and HTTP_HOST (one latin1 string per params block + 3 substrings).',
      cases: [ONE, FORTY, BODY].map((input) =>
        benchCase(input, all, (impl) => `Decoder.push ${impl.label}, ${input.label}`, decoderOp),
      ),
    },
  ];
  if (sweep && NATIVE !== null) {
    list.push(
      {
        title: 'Threshold sweep: scanRecords by chunk size',
        description: `TS vs raw native by requests per chunk (4 records each); sets TS_HEAD_RECORDS (now ${TS_HEAD_RECORDS} records).`,
        cases: [1, 2, 4, 10, 40].map((n) => {
          const input = chunkInput(n);
          return benchCase(input, raw, (impl) => `scanRecords ${impl.label}, ${input.label}`, scanRecordsOp);
        }),
      },
      {
        title: 'Threshold sweep: scanPairs by block size',
        description: `TS vs raw native by params per block (the nginx mix, cycled); sets NATIVE_PAIRS_MIN_BYTES (now ${NATIVE_PAIRS_MIN_BYTES} B).`,
        cases: [2, 5, 10, 15, 30, 100].map((n) => {
          const input = pairsInput(n);
          return benchCase(input, raw, (impl) => `scanPairs ${impl.label}, ${input.label}`, scanPairsOp);
        }),
      },
    );
  }
  return list;
}

async function main(): Promise<void> {
  if (relaunchCompiled(__filename)) return;
  const json = process.argv.includes('--json');
  const options: RunOptions = {
    time: envNumber('BENCH_TIME', 250),
    warmupTime: envNumber('BENCH_WARMUP', 50),
    rounds: Math.max(1, Math.floor(envNumber('BENCH_ROUNDS', 2))),
    targetSampleUs: envNumber('BENCH_SAMPLE_US', 20),
    onCase: (group, c, round) => process.stderr.write(`  round ${round + 1}: ${group.title} · ${c.input}\n`),
  };
  const notes: string[] = [];
  if (NATIVE === null) {
    notes.push(`native addon not loaded (${codec.nativeUnavailableReason ?? 'unknown reason'}): TypeScript rows only.`);
  } else {
    notes.push(
      `routed = the default scanner: TypeScript for the first ${TS_HEAD_RECORDS} records of a chunk, native for the rest; scanPairs native from ${NATIVE_PAIRS_MIN_BYTES} B.`,
    );
  }
  checkInputs();
  const results = await runGroups(groups(process.env['BENCH_SWEEP'] !== '0'), options);
  const report: Report = {
    environment: environment(`npm run bench:codec${json ? ' -- --json' : ''}`, options, __filename),
    notes,
    groups: results,
  };
  process.stdout.write(`${json ? formatJson(report) : formatMarkdown(report)}\n`);
  if (sink === -1) process.stdout.write('\n'); // keeps `sink` observable
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
