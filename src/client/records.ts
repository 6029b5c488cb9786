// Small record helpers the client needs beyond src/protocol: re-addressing encoded records, reading replies.
import { HEADER_LENGTH } from '../wire/constants';
import { scanner } from '../codec/load';
import {
  ERR_NONE,
  OUT_CONSUMED,
  OUT_ERROR,
  OUT_HEADER_SLOTS,
  PAIR_NAME_LENGTH,
  PAIR_NAME_OFFSET,
  PAIR_STRIDE,
  PAIR_VALUE_LENGTH,
  PAIR_VALUE_OFFSET,
} from '../codec/layout';

/**
 * setRequestId rewrites the request id of every record in `records` (a whole encoded stream, such as
 * encodeParams' output). The client encodes a request's PARAMS once, before it knows the id its connection
 * will give it, and stamps the id when the request starts.
 */
export function setRequestId(records: Buffer, requestId: number): void {
  for (let offset = 0; offset + HEADER_LENGTH <= records.length; ) {
    records[offset + 2] = requestId >>> 8;
    records[offset + 3] = requestId & 0xff;
    offset += HEADER_LENGTH + ((records[offset + 4]! << 8) | records[offset + 5]!) + records[offset + 6]!;
  }
}

/**
 * readPairs decodes a small name-value block (a GET_VALUES_RESULT body) into an object; a pair that runs past
 * the end is dropped with everything after it.
 */
export function readPairs(block: Buffer): Record<string, string> {
  const values = Object.create(null) as Record<string, string>;
  const out = new Uint32Array(OUT_HEADER_SLOTS + PAIR_STRIDE * 64);
  for (let start = 0; start < block.length; ) {
    const count = scanner.scanPairs(block, start, block.length, out);
    for (let i = 0, slot = OUT_HEADER_SLOTS; i < count; i++, slot += PAIR_STRIDE) {
      const name = out[slot + PAIR_NAME_OFFSET]!;
      const value = out[slot + PAIR_VALUE_OFFSET]!;
      values[block.toString('latin1', name, name + out[slot + PAIR_NAME_LENGTH]!)] = block.toString('latin1', value, value + out[slot + PAIR_VALUE_LENGTH]!);
    }
    if (count === 0 || out[OUT_ERROR] !== ERR_NONE) break;
    start = out[OUT_CONSUMED]!;
  }
  return values;
}
