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

  it('reads an empty block as no pairs', () => {
    expect(scanPairBlock(Buffer.alloc(0), scanner)).toMatchObject({ count: 0, failure: null });
  });
});
