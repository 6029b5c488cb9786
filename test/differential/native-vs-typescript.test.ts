// Native and TypeScript scanners on the same inputs: identical descriptors, consumed counts and error codes,
// for valid streams split anywhere, for garbage, and for valid streams with mutated bytes.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as L from '../../src/codec/layout';
import { nativeScanner, routed, tsScanner } from '../helpers/codecs';
import { splitAt } from '../helpers/records';
import { traceDecode } from '../helpers/trace';
import { arbCuts, arbPairBlock, arbStream } from './streams';

const params = { numRuns: 300, interruptAfterTimeLimit: 20_000 };

describe('valid streams', () => {
  it('decode to the expected trace with the TypeScript scanner, however they are split', () => {
    fc.assert(
      fc.property(arbStream, arbCuts, ({ bytes, expected }, cuts) => {
        expect(
          traceDecode(
            splitAt(
              bytes,
              cuts.map((c) => c % (bytes.length + 1)),
            ),
            tsScanner,
          ),
        ).toEqual(expected);
      }),
      params,
    );
  });
});

describe('params blocks cut anywhere', () => {
  it('give every whole pair before the cut and a truncation error at the first cut one', () => {
    const out = new Uint32Array(L.OUT_HEADER_SLOTS + 16 * L.PAIR_STRIDE);
    fc.assert(
      fc.property(arbPairBlock, fc.nat(), ({ block, ends }, c) => {
        const cut = c % (block.length + 1);
        const whole = ends.filter((e) => e <= cut).length;
        expect(tsScanner.scanPairs(block, 0, cut, out)).toBe(whole);
        const atBoundary = cut === 0 || ends.includes(cut);
        expect(out[L.OUT_ERROR] === L.ERR_NONE).toBe(atBoundary);
        expect(out[L.OUT_CONSUMED]).toBe(whole === 0 ? 0 : ends[whole - 1]);
      }),
      params,
    );
  });
});

describe.skipIf(nativeScanner === null)('native matches TypeScript', () => {
  const native = nativeScanner!;

  function compareRaw(
    bytes: Uint8Array,
    start: number,
    end: number,
    capacity: number,
    kind: 'scanRecords' | 'scanPairs',
  ): void {
    const stride = kind === 'scanRecords' ? L.REC_STRIDE : L.PAIR_STRIDE;
    const a = new Uint32Array(L.OUT_HEADER_SLOTS + capacity * stride).fill(0xdeadbeef);
    const b = a.slice();
    const countA = tsScanner[kind](bytes, start, end, a);
    const countB = native[kind](bytes, start, end, b);
    expect(countB).toBe(countA);
    expect(b).toEqual(a);
    // The engine's routed scanner (TS head, native rest) must be indistinguishable from both.
    const c = a.slice().fill(0xdeadbeef);
    expect(routed![kind](bytes, start, end, c)).toBe(countA);
    expect(c).toEqual(a);
  }

  it('on valid streams split at random points (the decoder traces match the expected one)', () => {
    fc.assert(
      fc.property(arbStream, arbCuts, ({ bytes, expected }, cuts) => {
        const chunks = splitAt(
          bytes,
          cuts.map((c) => c % (bytes.length + 1)),
        );
        expect(traceDecode(chunks, native)).toEqual(expected);
        expect(traceDecode(chunks, routed!)).toEqual(expected);
      }),
      params,
    );
  });

  it('on every sub-range of valid streams, slot for slot, with small and large outputs', () => {
    fc.assert(
      fc.property(arbStream, fc.nat(), fc.nat(), fc.integer({ min: 0, max: 60 }), ({ bytes }, s, e, capacity) => {
        const start = s % (bytes.length + 1);
        const end = start + (e % (bytes.length - start + 1));
        compareRaw(bytes, start, end, capacity, 'scanRecords');
        compareRaw(bytes, start, end, capacity, 'scanPairs');
        compareRaw(bytes, start, end, 40, 'scanRecords');
      }),
      params,
    );
  });

  it('on params blocks cut anywhere', () => {
    fc.assert(
      fc.property(arbPairBlock, fc.nat(), fc.integer({ min: 0, max: 16 }), ({ block }, c, capacity) => {
        const cut = c % (block.length + 1);
        compareRaw(block, 0, cut, capacity, 'scanPairs');
        compareRaw(block, 0, cut, 16, 'scanPairs');
      }),
      params,
    );
  });

  it('on garbage, including out-of-range arguments', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 3000 }),
        fc.integer({ min: -2, max: 3100 }),
        fc.integer({ min: -2, max: 3100 }),
        fc.integer({ min: -2, max: 40 }),
        (bytes, start, end, capacity) => {
          compareRaw(bytes, start, end, Math.max(0, capacity), 'scanRecords');
          compareRaw(bytes, start, end, Math.max(0, capacity), 'scanPairs');
          compareRaw(bytes, 0, bytes.length, 64, 'scanRecords');
          compareRaw(bytes, 0, bytes.length, 64, 'scanPairs');
        },
      ),
      params,
    );
  });

  it('on garbage made of plausible headers and pair lengths', () => {
    const header = fc.tuple(
      fc.constantFrom(1, 1, 1, 0, 72),
      fc.integer({ min: 0, max: 12 }),
      fc.nat({ max: 3 }),
      fc.nat({ max: 80 }),
      fc.nat({ max: 255 }),
    );
    const chunk = fc.oneof(
      header.map(([v, t, id, len, pad]) => new Uint8Array([v, t, 0, id, len >> 8, len & 0xff, pad, 0])),
      fc.constantFrom(
        new Uint8Array([0x7f, 0xff, 0xff, 0xff]),
        new Uint8Array([0x80, 0, 0, 0x7f]),
        new Uint8Array([0xff, 0xff, 0xff, 0xff]),
      ),
      fc.uint8Array({ maxLength: 40 }),
    );
    fc.assert(
      fc.property(fc.array(chunk, { maxLength: 30 }), arbCuts, (parts, cuts) => {
        const bytes = Buffer.concat(parts);
        compareRaw(bytes, 0, bytes.length, 64, 'scanRecords');
        compareRaw(bytes, 0, bytes.length, 64, 'scanPairs');
        const chunks = splitAt(
          bytes,
          cuts.map((c) => c % (bytes.length + 1)),
        );
        const ts = traceDecode(chunks, tsScanner);
        expect(traceDecode(chunks, native)).toEqual(ts);
        expect(traceDecode(chunks, routed!)).toEqual(ts);
      }),
      params,
    );
  });

  it('on valid streams with mutated bytes and lengths', () => {
    fc.assert(
      fc.property(
        arbStream,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        arbCuts,
        ({ bytes }, mutations, cuts) => {
          if (bytes.length === 0) return;
          const mutated = Buffer.from(bytes);
          for (const [at, value] of mutations) mutated[at % mutated.length] = value;
          const chunks = splitAt(
            mutated,
            cuts.map((c) => c % (mutated.length + 1)),
          );
          const ts = traceDecode(chunks, tsScanner);
          expect(traceDecode(chunks, native)).toEqual(ts);
          expect(traceDecode(chunks, routed!)).toEqual(ts);
          compareRaw(mutated, 0, mutated.length, 16, 'scanRecords');
        },
      ),
      params,
    );
  });
});
