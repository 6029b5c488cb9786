// fast-check generators of valid FastCGI streams, with the trace a correct decoder must produce.
import fc from 'fast-check';
import { NAME_UNKNOWN } from '../../src/codec/layout';
import { KNOWN_NAMES } from '../../src/codec/known-names';
import { length, record } from '../helpers/records';
import { Trace } from '../helpers/trace';

export interface Stream {
  bytes: Buffer;
  expected: string[];
}

interface Pair {
  name: Uint8Array;
  value: Uint8Array;
  longName: boolean;
  longValue: boolean;
}

interface Rec {
  type: number;
  requestId: number;
  content: Uint8Array;
  padding: number;
  /** For the empty PARAMS record of a collected request: the pairs the params event must show. */
  pairs?: Pair[];
}

const latin1 = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));

const arbName = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...KNOWN_NAMES).map(latin1) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 24 }) },
  { weight: 1, arbitrary: fc.constantFrom(...KNOWN_NAMES).map((n) => latin1(`${n}X`)) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 127, maxLength: 300 }) },
);
const arbValue = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 120, maxLength: 600 }) },
);
const arbPair: fc.Arbitrary<Pair> = fc.record({
  name: arbName,
  value: arbValue,
  longName: fc.boolean(),
  longValue: fc.boolean(),
});
const arbPadding = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 7 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
);

function encodePair(p: Pair): Buffer {
  return Buffer.concat([
    length(p.name.length, p.longName || p.name.length >= 128),
    length(p.value.length, p.longValue || p.value.length >= 128),
    p.name,
    p.value,
  ]);
}

// One request's records in order: BEGIN, PARAMS split anywhere (pairs may straddle), empty PARAMS, STDIN pieces,
// empty STDIN, sometimes DATA (Filter).
const arbRequest = fc
  .record({
    role: fc.integer({ min: 0, max: 4 }),
    flags: fc.integer({ min: 0, max: 255 }),
    pairs: fc.array(arbPair, { maxLength: 10 }),
    cuts: fc.array(fc.nat({ max: 4000 }), { maxLength: 4 }),
    stdin: fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 3 }),
    data: fc.array(fc.uint8Array({ minLength: 1, maxLength: 100 }), { maxLength: 2 }),
    paddings: fc.array(arbPadding, { minLength: 16, maxLength: 16 }),
  })
  .map((r) => {
    const pad = (i: number) => r.paddings[i % r.paddings.length]!;
    const block = Buffer.concat(r.pairs.map(encodePair));
    const points = [...new Set(r.cuts.filter((c) => c > 0 && c < block.length))].sort((a, b) => a - b);
    const pieces: Uint8Array[] = [];
    let last = 0;
    for (const p of [...points, block.length]) {
      if (p > last) pieces.push(block.subarray(last, p));
      last = p;
    }
    return (requestId: number): Rec[] => {
      const recs: Rec[] = [
        {
          type: 1,
          requestId,
          content: new Uint8Array([r.role >> 8, r.role & 0xff, r.flags, 0, 0, 0, 0, 0]),
          padding: pad(0),
        },
      ];
      pieces.forEach((content, i) => recs.push({ type: 4, requestId, content, padding: pad(i + 1) }));
      recs.push({ type: 4, requestId, content: new Uint8Array(0), padding: pad(6), pairs: r.pairs });
      r.stdin.forEach((content, i) => recs.push({ type: 5, requestId, content, padding: pad(i + 7) }));
      recs.push({ type: 5, requestId, content: new Uint8Array(0), padding: pad(11) });
      r.data.forEach((content, i) => recs.push({ type: 8, requestId, content, padding: pad(i + 12) }));
      return recs;
    };
  });

// Records outside any request: management queries, unknown types, stray records for inactive ids.
const arbLoose: fc.Arbitrary<Rec> = fc.record({
  type: fc.oneof(
    fc.constant(9),
    fc.integer({ min: 0, max: 255 }).filter((t) => t !== 1 && t !== 4),
  ),
  requestId: fc.oneof(fc.constant(0), fc.integer({ min: 100, max: 0xffff })),
  content: fc.uint8Array({ maxLength: 64 }),
  padding: arbPadding,
});

function expectedTrace(recs: Rec[]): string[] {
  const trace = new Trace();
  const collecting = new Set<number>();
  for (const rec of recs) {
    if (rec.type === 4 && collecting.has(rec.requestId)) {
      if (rec.content.length === 0) {
        collecting.delete(rec.requestId);
        trace.params(
          rec.requestId,
          rec.pairs!.map((p) => {
            const id = KNOWN_NAMES.indexOf(Buffer.from(p.name).toString('latin1'));
            return [
              Buffer.from(p.name).toString('hex'),
              Buffer.from(p.value).toString('hex'),
              id < 0 ? NAME_UNKNOWN : id,
            ];
          }),
        );
      }
      continue;
    }
    if (rec.type === 1 && rec.requestId !== 0) collecting.add(rec.requestId);
    trace.record(rec.type, rec.requestId, rec.content);
  }
  return trace.end(false);
}

/** A valid stream: up to 5 interleaved requests (distinct ids) and loose records, with its expected trace. */
export const arbStream: fc.Arbitrary<Stream> = fc
  .record({
    requests: fc.array(arbRequest, { maxLength: 5 }),
    ids: fc.uniqueArray(fc.integer({ min: 1, max: 99 }), { minLength: 5, maxLength: 5 }),
    loose: fc.array(arbLoose, { maxLength: 4 }),
    order: fc.array(fc.nat(), { maxLength: 200 }),
  })
  .map(({ requests, ids, loose, order }) => {
    const queues: Rec[][] = requests.map((make, i) => make(ids[i]!));
    queues.push(...loose.map((r) => [r]));
    // Interleave: `order` picks which queue gives its next record; leftovers follow in queue order.
    const recs: Rec[] = [];
    for (const pick of order) {
      const live = queues.filter((q) => q.length > 0);
      if (live.length === 0) break;
      recs.push(live[pick % live.length]!.shift()!);
    }
    for (const q of queues) recs.push(...q.splice(0));
    const bytes = Buffer.concat(recs.map((r) => record(r.type, r.requestId, r.content, r.padding)));
    return { bytes, expected: expectedTrace(recs) };
  });

/** A params block (pairs only) with the end offset of each pair. */
export const arbPairBlock: fc.Arbitrary<{ block: Buffer; ends: number[] }> = fc
  .array(arbPair, { maxLength: 12 })
  .map((pairs) => {
    const encoded = pairs.map(encodePair);
    const ends: number[] = [];
    let at = 0;
    for (const e of encoded) ends.push((at += e.length));
    return { block: Buffer.concat(encoded), ends };
  });

/** Cut points for splitting a stream into socket chunks. */
export const arbCuts = fc.array(fc.nat({ max: 1 << 16 }), { maxLength: 12 });
