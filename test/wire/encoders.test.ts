import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  encodeBeginRequest,
  encodeEndRequest,
  encodeGetValues,
  encodeGetValuesResult,
  encodeRecord,
  encodeStream,
  encodeUnknownType,
  paddingFor,
  streamRecordChunks,
} from '../../src/wire/records';
import { encodePairs, encodeParams } from '../../src/wire/pairs';
import { ErrorCode, InvalidArgumentError, LimitError } from '../../src/errors';
import * as L from '../../src/codec/layout';
import { codecs } from '../helpers/codecs';
import { traceDecode } from '../helpers/trace';

const tsScanner = codecs[0]!;

function scan(bytes: Uint8Array): number[][] {
  const out = new Uint32Array(L.OUT_HEADER_SLOTS + 256 * L.REC_STRIDE);
  const count = tsScanner.scanRecords(bytes, 0, bytes.length, out);
  expect(out[L.OUT_ERROR]).toBe(L.ERR_NONE);
  expect(out[L.OUT_CONSUMED]).toBe(bytes.length);
  const rows: number[][] = [];
  for (let i = 0; i < count; i++)
    rows.push([...out.subarray(L.OUT_HEADER_SLOTS + i * L.REC_STRIDE, L.OUT_HEADER_SLOTS + (i + 1) * L.REC_STRIDE)]);
  return rows;
}

describe('record encoders', () => {
  it('pads to a multiple of 8, but never past 65535 bytes of content + padding (php-fpm drops such records)', () => {
    expect([0, 1, 7, 8, 9, 65527, 65528, 65529, 65534, 65535].map(paddingFor)).toEqual([0, 7, 1, 0, 7, 1, 0, 0, 0, 0]);
    const record = encodeRecord(6, 1, Buffer.alloc(65535, 1));
    expect(record.length).toBe(8 + 65535);
    expect(scan(record)).toEqual([[6, 1, 8, 65535, 0]]);
  });

  it('writes the header fields big-endian and leaves padding zeroed', () => {
    const record = encodeRecord(5, 0x1234, Buffer.from('abc'));
    expect([...record]).toEqual([1, 5, 0x12, 0x34, 0, 3, 5, 0, 0x61, 0x62, 0x63, 0, 0, 0, 0, 0]);
    expect([...encodeRecord(5, 1, Buffer.from('abc'), { pad: false })]).toEqual([
      1, 5, 0, 1, 0, 3, 0, 0, 0x61, 0x62, 0x63,
    ]);
  });

  it('rejects content over 65535 bytes and request ids outside 16 bits', () => {
    expect(() => encodeRecord(5, 1, Buffer.alloc(65536))).toThrow(InvalidArgumentError);
    expect(() => encodeRecord(5, 65536)).toThrow(/request id/);
    expect(() => encodeRecord(5, -1)).toThrow(InvalidArgumentError);
  });

  it('splits a stream at 65535 bytes and ends it with an empty record', () => {
    const content = Buffer.alloc(65535 * 2 + 10, 2);
    expect(scan(encodeStream(6, 3, content, { end: true }))).toEqual([
      [6, 3, 8, 65535, 0],
      [6, 3, 65551, 65535, 0],
      [6, 3, 131094, 10, 6],
      [6, 3, 131118, 0, 0],
    ]);
    expect(scan(encodeStream(6, 3, Buffer.alloc(0)))).toEqual([]);
  });

  it('hands out zero-copy slices of the body for corked writes', () => {
    const body = Buffer.alloc(70000, 3);
    const chunks = streamRecordChunks(6, 1, body, { pad: false });
    expect(chunks.map((c) => c.length)).toEqual([8, 65535, 8, 4465]);
    expect(chunks[1]!.buffer).toBe(body.buffer);
  });

  it('builds BEGIN_REQUEST, END_REQUEST and UNKNOWN_TYPE bodies as the spec lays them out', () => {
    expect([...encodeBeginRequest(1, 3, 1)]).toEqual([1, 1, 0, 1, 0, 8, 0, 0, 0, 3, 1, 0, 0, 0, 0, 0]);
    expect([...encodeEndRequest(2, 0x01020304, 2)]).toEqual([1, 3, 0, 2, 0, 8, 0, 0, 1, 2, 3, 4, 2, 0, 0, 0]);
    expect([...encodeUnknownType(200)]).toEqual([1, 11, 0, 0, 0, 8, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('builds GET_VALUES and GET_VALUES_RESULT on request id 0', () => {
    const query = encodeGetValues(['FCGI_MAX_CONNS', 'FCGI_MPXS_CONNS']);
    expect(query.subarray(0, 4)).toEqual(Buffer.from([1, 9, 0, 0]));
    const result = encodeGetValuesResult([['FCGI_MPXS_CONNS', 1]]);
    expect(scan(result)).toEqual([[10, 0, 8, 18, 6]]);
    expect(result.subarray(8, 26).toString('latin1')).toBe('\x0f\x01FCGI_MPXS_CONNS1');
  });
});

describe('pair encoders', () => {
  it('uses 1-byte lengths below 128 and 4-byte lengths with the top bit from 128', () => {
    expect([...encodePairs([['A', 'x'.repeat(127)]]).subarray(0, 2)]).toEqual([1, 127]);
    expect([...encodePairs([['A', 'x'.repeat(128)]]).subarray(0, 5)]).toEqual([1, 0x80, 0, 0, 128]);
  });

  it('writes strings as bytes (latin1), wide strings as UTF-8 and buffers as they are', () => {
    expect(encodePairs([['N', 'é']])).toEqual(Buffer.from([1, 1, 0x4e, 0xe9]));
    expect(encodePairs([['N', '€']])).toEqual(Buffer.from([1, 3, 0x4e, 0xe2, 0x82, 0xac]));
    expect(encodePairs([[Buffer.from([0]), Buffer.from([255])]])).toEqual(Buffer.from([1, 1, 0, 255]));
  });

  it('never splits a pair across PARAMS records, and ends the stream', () => {
    const big = 'v'.repeat(40000);
    const stream = encodeParams(1, [
      ['A', big],
      ['B', big],
      ['C', 'c'],
    ]);
    const rows = scan(stream);
    expect(rows.map((r) => r[3])).toEqual([40006, 40010, 0]);
    for (const codec of codecs) {
      const lines = traceDecode([Buffer.concat([encodeBeginRequest(1, 1), stream])], codec);
      expect(lines).toHaveLength(2);
      expect(lines[1]).toContain(`${Buffer.from('C').toString('hex')}:${Buffer.from('c').toString('hex')}`);
    }
  });

  it('fits a pair of exactly 65535 encoded bytes and rejects one byte more with FCGI_ERR_PAIR_TOO_LARGE', () => {
    const fits = 'v'.repeat(65535 - 4 - 4 - 'SCRIPT_FILENAME'.length + 3);
    expect(scan(encodeParams(1, [['SCRIPT_FILENAME', fits.slice(0, -3)]]))[0]![3]).toBe(65535 - 3);
    const exact = 'v'.repeat(65535 - 1 - 4 - 'SCRIPT_FILENAME'.length);
    expect(scan(encodeParams(1, [['SCRIPT_FILENAME', exact]]))[0]![3]).toBe(65535);
    let error: unknown;
    try {
      encodeParams(1, [['SCRIPT_FILENAME', `${exact}v`]]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(LimitError);
    expect(error).toMatchObject({ code: ErrorCode.PAIR_TOO_LARGE, limit: 65535, value: 65536 });
  });

  it('encodes an empty params stream as the terminator alone', () => {
    expect([...encodeParams(9, [])]).toEqual([1, 4, 0, 9, 0, 0, 0, 0]);
  });
});

describe('pair encoding against a one-pair-at-a-time reference', () => {
  // The reference: what FastCGI 1.0 §3.4 says, written out plainly (byte strings as latin1, wider ones as UTF-8).
  const bytesOf = (input: string | Uint8Array): Buffer =>
    typeof input !== 'string'
      ? Buffer.from(input)
      : /[^\u0000-\u00ff]/.test(input)
        ? Buffer.from(input, 'utf8')
        : Buffer.from(input, 'latin1');
  const lengthBytes = (n: number): Buffer =>
    n < 128
      ? Buffer.from([n])
      : Buffer.from([((n >>> 24) & 0x7f) | 0x80, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
  const reference = (pairs: [string | Uint8Array, string | Uint8Array][]): Buffer =>
    Buffer.concat(
      pairs.flatMap(([n, v]) => [
        lengthBytes(bytesOf(n).length),
        lengthBytes(bytesOf(v).length),
        bytesOf(n),
        bytesOf(v),
      ]),
    );
  // Lengths around the 1-byte/4-byte boundary, byte strings with chars 0x80-0xff, UTF-8 strings, Buffers, mixed.
  const text = fc.oneof(
    fc.string({ unit: 'grapheme-ascii', maxLength: 200 }),
    fc.string({
      unit: fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c)),
      minLength: 120,
      maxLength: 140,
    }),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
  );
  const input = fc.oneof(text, fc.uint8Array({ maxLength: 300 }));
  const pairs = fc.array(fc.tuple(input, input), { maxLength: 40 });

  it('encodePairs writes the same bytes as the reference', () => {
    fc.assert(
      fc.property(pairs, (p) => {
        expect(encodePairs(p).equals(reference(p))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it("encodeParams' records carry the reference bytes, split only between pairs", () => {
    const big = fc.array(fc.tuple(fc.string({ maxLength: 20 }), fc.string({ minLength: 20_000, maxLength: 30_000 })), {
      minLength: 1,
      maxLength: 6,
    });
    fc.assert(
      fc.property(fc.oneof(pairs, big), (p) => {
        const stream = encodeParams(3, p);
        const rows = scan(stream);
        const content = Buffer.concat(
          rows.map((row) =>
            stream.subarray(row[L.REC_CONTENT_OFFSET]!, row[L.REC_CONTENT_OFFSET]! + row[L.REC_CONTENT_LENGTH]!),
          ),
        );
        expect(content.equals(reference(p))).toBe(true);
        // Each record's content is whole pairs: the reference of some run of pairs.
        let next = 0;
        for (const row of rows.slice(0, -1)) {
          let size = 0;
          while (size < row[L.REC_CONTENT_LENGTH]!) size += reference([p[next++]!]).length;
          expect(size).toBe(row[L.REC_CONTENT_LENGTH]);
        }
        expect(rows.at(-1)![L.REC_CONTENT_LENGTH]).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});
