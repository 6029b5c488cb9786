// The one reader of pair blocks: what the decoder, the server's GET_VALUES and the client's probe see.
import { describe, expect, it } from 'vitest';
import { ERR_PAIR_DATA_TRUNCATED, PAIR_STRIDE } from '../../src/codec/layout';
import { readPairBlock, scanPairBlock } from '../../src/wire/pair-block';
import { codecs } from '../helpers/codecs';
import { pair } from '../helpers/records';

const many = Buffer.concat(Array.from({ length: 300 }, (_, i) => pair(`N${i}`, `v${i}`)));

describe.each(codecs)('pair blocks with the $label scanner', (scanner) => {
  it('reads every pair of a block larger than one scan holds', () => {
    const { pairs, count, failure } = scanPairBlock(many, scanner);
    expect(failure).toBeNull();
    expect(count).toBe(300);
    expect(pairs.length).toBe(300 * PAIR_STRIDE);
    const { params } = readPairBlock(many, scanner);
    expect(params.size).toBe(300);
    expect(params.get('N299')).toBe('v299');
  });

  it('stops one pair past maxCount, so a count above it says the block holds too many', () => {
    expect(scanPairBlock(many, scanner, 100).count).toBe(101);
    expect(scanPairBlock(many, scanner, 300).count).toBe(300);
  });

  it('keeps the pairs before a malformed one and reports where it starts', () => {
    const block = Buffer.concat([pair('FCGI_MPXS_CONNS', '1'), pair('X', 'y'), Buffer.from([5, 5, 0x41])]);
    const { params, failure } = readPairBlock(block, scanner);
    expect(failure).toMatchObject({ error: ERR_PAIR_DATA_TRUNCATED, offset: block.length - 3 });
    expect(params.toObject()).toEqual({ FCGI_MPXS_CONNS: '1', X: 'y' });
  });

  it('decodes names and values as UTF-8 when asked, in blocks of ASCII and not (a long value, a UTF-8 one)', () => {
    const long = 'a'.repeat(200); // 200 bytes: a four-byte length whose high bit makes the block non-ASCII
    for (const block of [
      Buffer.concat([pair('HTTP_HOST', 'example.test'), pair('REQUEST_URI', '/x')]),
      Buffer.concat([pair('HTTP_USER_AGENT', long), pair('HTTP_HOST', 'example.test')]),
      Buffer.concat([pair('HTTP_USER_AGENT', long), pair(Buffer.from('X_NÄME'), Buffer.from('Jürgen ✓'))]),
    ]) {
      const { params } = readPairBlock(block, scanner);
      const latin1 = [...params];
      params.decodeUtf8();
      const utf8 = [...params];
      expect(utf8).toEqual(
        latin1.map(([n, v]) => [Buffer.from(n, 'latin1').toString(), Buffer.from(v, 'latin1').toString()]),
      );
    }
    const { params } = readPairBlock(
      Buffer.concat([pair('HTTP_USER_AGENT', long), pair('X', Buffer.from('Jürgen ✓'))]),
      scanner,
    );
    params.decodeUtf8();
    expect([params.get('HTTP_USER_AGENT'), params.get('X')]).toEqual([long, 'Jürgen ✓']);
  });

  it('reads an empty block as no pairs', () => {
    expect(scanPairBlock(Buffer.alloc(0), scanner)).toMatchObject({ count: 0, failure: null });
  });
});
