import { describe, expect, it } from 'vitest';
import * as L from '../../src/codec/layout';
import { KNOWN_NAMES, KNOWN_NAMES_HASH } from '../../src/codec/known-names';
import { codecs } from '../helpers/codecs';
import { beginRequest, length, pair, record } from '../helpers/records';

function records(out: Uint32Array, count: number): number[][] {
  const rows: number[][] = [];
  for (let i = 0; i < count; i++)
    rows.push([...out.subarray(L.OUT_HEADER_SLOTS + i * L.REC_STRIDE, L.OUT_HEADER_SLOTS + (i + 1) * L.REC_STRIDE)]);
  return rows;
}

function pairs(out: Uint32Array, count: number): number[][] {
  const rows: number[][] = [];
  for (let i = 0; i < count; i++)
    rows.push([...out.subarray(L.OUT_HEADER_SLOTS + i * L.PAIR_STRIDE, L.OUT_HEADER_SLOTS + (i + 1) * L.PAIR_STRIDE)]);
  return rows;
}

const header = (out: Uint32Array) => ({
  count: out[L.OUT_COUNT],
  consumed: out[L.OUT_CONSUMED],
  error: out[L.OUT_ERROR],
  errorOffset: out[L.OUT_ERROR_OFFSET],
  errorValue: out[L.OUT_ERROR_VALUE],
});

describe.each(codecs)('$label scanner', (scanner) => {
  const out = new Uint32Array(L.OUT_HEADER_SLOTS + 64 * L.REC_STRIDE);

  it('matches the TypeScript known-name table', () => {
    expect(scanner.knownNamesHash).toBe(KNOWN_NAMES_HASH);
  });

  describe('scanRecords', () => {
    it('reports nothing for an empty range', () => {
      expect(scanner.scanRecords(Buffer.alloc(0), 0, 0, out)).toBe(0);
      expect(header(out)).toEqual({ count: 0, consumed: 0, error: 0, errorOffset: 0, errorValue: 0 });
    });

    it('describes each record and skips padding', () => {
      const bytes = Buffer.concat([
        beginRequest(1, 1, 1),
        record(4, 1, 'abc', 5),
        record(4, 1),
        record(5, 0x1234, 'x', 255),
      ]);
      expect(scanner.scanRecords(bytes, 0, bytes.length, out)).toBe(4);
      expect(records(out, 4)).toEqual([
        [1, 1, 8, 8, 0],
        [4, 1, 24, 3, 5],
        [4, 1, 40, 0, 0],
        [5, 0x1234, 48, 1, 255],
      ]);
      expect(header(out)).toMatchObject({ count: 4, consumed: bytes.length, error: 0 });
    });

    it('reports a 65535-byte record with its padding and an empty one (1/2)', () => {
      const bytes = Buffer.concat([record(5, 1, Buffer.alloc(65535, 7), 1), record(5, 1, '', 7)]);
      expect(scanner.scanRecords(bytes, 0, bytes.length, out)).toBe(2);
      expect(records(out, 2)).toEqual([
        [5, 1, 8, 65535, 1],
        [5, 1, 65552, 0, 7],
      ]);
      expect(out[L.OUT_CONSUMED]).toBe(bytes.length);
    });

    it('stops at a record cut by the end of the range (2/2)', () => {
      const bytes = Buffer.concat([record(5, 1, 'hello', 3), record(5, 1, Buffer.alloc(65535), 1)]);
      for (const cut of [bytes.length - 1, 16 + 8 + 65535, 16 + 8, 16 + 7, 16 + 1]) {
        expect(scanner.scanRecords(bytes, 0, cut, out)).toBe(1);
        expect(header(out)).toMatchObject({ count: 1, consumed: 16, error: 0 });
      }
    });

    it('waits for more bytes on every truncated header', () => {
      const bytes = beginRequest(1);
      for (let n = 1; n < 16; n++) {
        expect(scanner.scanRecords(bytes, 0, n, out)).toBe(0);
        expect(header(out)).toMatchObject({ count: 0, consumed: 0, error: 0 });
      }
    });

    it('reports version 72 (an HTTP peer) at its offset, after the good records', () => {
      const bytes = Buffer.concat([record(5, 1, 'ok'), Buffer.from('HTTP/1.1 200 OK\r\n')]);
      expect(scanner.scanRecords(bytes, 0, bytes.length, out)).toBe(1);
      expect(header(out)).toEqual({
        count: 1,
        consumed: 10,
        error: L.ERR_BAD_VERSION,
        errorOffset: 10,
        errorValue: 72,
      });
    });

    it('reports a bad version even when only one byte of the header has arrived', () => {
      const bytes = Buffer.from('G');
      expect(scanner.scanRecords(bytes, 0, 1, out)).toBe(0);
      expect(header(out)).toMatchObject({ error: L.ERR_BAD_VERSION, errorOffset: 0, errorValue: 0x47 });
    });

    it('scans from a start offset and reports absolute offsets', () => {
      const bytes = Buffer.concat([Buffer.from('junk'), record(6, 9, 'body', 4)]);
      expect(scanner.scanRecords(bytes, 4, bytes.length, out)).toBe(1);
      expect(records(out, 1)).toEqual([[6, 9, 12, 4, 4]]);
      expect(out[L.OUT_CONSUMED]).toBe(bytes.length);
    });

    it('stops when the output is full and resumes from OUT_CONSUMED', () => {
      const small = new Uint32Array(L.OUT_HEADER_SLOTS + 2 * L.REC_STRIDE);
      const bytes = Buffer.concat([record(5, 1, 'a'), record(5, 2, 'b'), record(5, 3, 'c')]);
      expect(scanner.scanRecords(bytes, 0, bytes.length, small)).toBe(2);
      expect(small[L.OUT_CONSUMED]).toBe(18);
      expect(scanner.scanRecords(bytes, 18, bytes.length, small)).toBe(1);
      expect(records(small, 1)).toEqual([[5, 3, 26, 1, 0]]);
    });

    it('reports invalid ranges and short outputs as ERR_INVALID_ARGUMENT without reading', () => {
      const bytes = record(5, 1, 'a');
      expect(scanner.scanRecords(bytes, 5, 2, out)).toBe(0);
      expect(header(out)).toMatchObject({ error: L.ERR_INVALID_ARGUMENT, consumed: 5 });
      expect(scanner.scanRecords(bytes, 0, bytes.length + 1, out)).toBe(0);
      expect(header(out)).toMatchObject({ error: L.ERR_INVALID_ARGUMENT, consumed: 0 });
      const headerOnly = new Uint32Array(L.OUT_HEADER_SLOTS);
      expect(scanner.scanRecords(bytes, 0, bytes.length, headerOnly)).toBe(0);
      expect(headerOnly[L.OUT_ERROR]).toBe(L.ERR_INVALID_ARGUMENT);
      expect(scanner.scanRecords(bytes, 0, bytes.length, new Uint32Array(3))).toBe(0);
    });

    it('throws a TypeError for arguments of the wrong type', () => {
      expect(() => scanner.scanRecords('x' as unknown as Uint8Array, 0, 1, out)).toThrow(TypeError);
      expect(() => scanner.scanRecords(Buffer.alloc(1), 0, 1, new Int32Array(16) as unknown as Uint32Array)).toThrow(
        TypeError,
      );
    });
  });

  describe('scanPairs', () => {
    const pout = new Uint32Array(L.OUT_HEADER_SLOTS + 64 * L.PAIR_STRIDE);

    it('describes pairs with 1- and 4-byte lengths and known-name ids', () => {
      const block = Buffer.concat([
        pair('REQUEST_METHOD', 'GET'),
        pair('X_CUSTOM', 'v'.repeat(200)),
        pair('HTTP_HOST', ''),
      ]);
      expect(scanner.scanPairs(block, 0, block.length, pout)).toBe(3);
      const method = KNOWN_NAMES.indexOf('REQUEST_METHOD');
      const host = KNOWN_NAMES.indexOf('HTTP_HOST');
      expect(pairs(pout, 3)).toEqual([
        [method, 2, 14, 16, 3],
        [L.NAME_UNKNOWN, 24, 8, 32, 200],
        [host, 234, 9, 243, 0],
      ]);
      expect(header(pout)).toMatchObject({ count: 3, consumed: block.length, error: 0 });
    });

    it('accepts the 4-byte form of a short length (h2o writes 127 as 80 00 00 7f)', () => {
      const block = pair('SCRIPT_NAME', 'x'.repeat(127), true, true);
      expect(scanner.scanPairs(block, 0, block.length, pout)).toBe(1);
      expect(pairs(pout, 1)).toEqual([[KNOWN_NAMES.indexOf('SCRIPT_NAME'), 8, 11, 19, 127]]);
    });

    it('recognises every known name and no near miss', () => {
      for (const [id, name] of KNOWN_NAMES.entries()) {
        const block = Buffer.concat([
          pair(name, '1'),
          pair(name.toLowerCase(), '2'),
          pair(`${name}_`, '3'),
          pair(name.slice(0, -1), '4'),
        ]);
        expect(scanner.scanPairs(block, 0, block.length, pout)).toBe(4);
        expect(pairs(pout, 4).map((p) => p[0])).toEqual([id, L.NAME_UNKNOWN, L.NAME_UNKNOWN, L.NAME_UNKNOWN]);
      }
    });

    it('accepts empty names and values and arbitrary bytes', () => {
      const block = Buffer.concat([pair('', ''), pair(Buffer.from([0, 255, 10]), Buffer.from([0x80, 0x01]))]);
      expect(scanner.scanPairs(block, 0, block.length, pout)).toBe(2);
      expect(pairs(pout, 2)).toEqual([
        [L.NAME_UNKNOWN, 2, 0, 2, 0],
        [L.NAME_UNKNOWN, 4, 3, 7, 2],
      ]);
    });

    it('reports a length cut 1+3 as ERR_PAIR_LENGTH_TRUNCATED at the pair', () => {
      const block = Buffer.concat([pair('A', 'b'), length(300)]);
      for (const end of [5, 6, 7]) {
        expect(scanner.scanPairs(block, 0, end, pout)).toBe(1);
        expect(header(pout)).toEqual({
          count: 1,
          consumed: 4,
          error: L.ERR_PAIR_LENGTH_TRUNCATED,
          errorOffset: 4,
          errorValue: 0,
        });
      }
      const nameOnly = Buffer.concat([length(1), Buffer.from([0x80, 0, 0])]);
      expect(scanner.scanPairs(nameOnly, 0, nameOnly.length, pout)).toBe(0);
      expect(pout[L.OUT_ERROR]).toBe(L.ERR_PAIR_LENGTH_TRUNCATED);
    });

    it('reports a pair declaring 0x7fffffff bytes as ERR_PAIR_DATA_TRUNCATED with the declared total', () => {
      const block = Buffer.concat([length(0x7fffffff), length(0x7fffffff), Buffer.from('abc')]);
      expect(scanner.scanPairs(block, 0, block.length, pout)).toBe(0);
      expect(header(pout)).toEqual({
        count: 0,
        consumed: 0,
        error: L.ERR_PAIR_DATA_TRUNCATED,
        errorOffset: 0,
        errorValue: 0xfffffffe,
      });
    });

    it('reports a pair running one byte past the end', () => {
      const block = pair('NAME', 'value');
      expect(scanner.scanPairs(block, 0, block.length - 1, pout)).toBe(0);
      expect(header(pout)).toMatchObject({ error: L.ERR_PAIR_DATA_TRUNCATED, errorValue: 9 });
    });

    it('stops when the output is full and resumes from OUT_CONSUMED', () => {
      const small = new Uint32Array(L.OUT_HEADER_SLOTS + L.PAIR_STRIDE);
      const block = Buffer.concat([pair('A', '1'), pair('B', '2')]);
      expect(scanner.scanPairs(block, 0, block.length, small)).toBe(1);
      expect(small[L.OUT_CONSUMED]).toBe(4);
      expect(scanner.scanPairs(block, 4, block.length, small)).toBe(1);
      expect(pairs(small, 1)).toEqual([[L.NAME_UNKNOWN, 6, 1, 7, 1]]);
    });
  });
});
