// Reading a block of name-value pairs (FastCGI 1.0 §3.4): a PARAMS stream, a GET_VALUES query or its result.
// The one place that reads pair descriptors off a scanner's output; everything else sees them as Params.
import {
  ERR_NONE,
  OUT_CONSUMED,
  OUT_ERROR,
  OUT_ERROR_OFFSET,
  OUT_ERROR_VALUE,
  OUT_HEADER_SLOTS,
  PAIR_STRIDE,
} from '../codec/layout';
import { scanner as defaultScanner } from '../codec/load';
import type { Scanner } from '../codec/scanner';
import type { ScanFailure } from '../errors';
import { Params } from './params';

/** The pairs of a block: their descriptors and, when the block is malformed, what the scanner reported. */
export interface PairBlock {
  /** count * PAIR_STRIDE descriptors (exactly sized): the pairs before any malformed one. */
  readonly pairs: Uint32Array;
  /** How many pairs were read: at most maxCount + 1, which says the block holds too many. */
  readonly count: number;
  /** The scan error, with offsets into the block; null when every pair was whole. */
  readonly failure: ScanFailure | null;
}

const INITIAL_PAIRS = 64;

// Descriptors are copied out before scanPairBlock returns, so one scratch array serves every caller instead of
// one per params block; a call nested in another (a handler that decodes while the decoder runs) uses its own.
let scratch = new Uint32Array(OUT_HEADER_SLOTS + PAIR_STRIDE * INITIAL_PAIRS);
let scratchBusy = false;

/**
 * scanPairBlock scans a whole block of pairs with one scanner call when the pairs fit the scratch array, else
 * grows it (doubling, then rescanning) until they do. It stops after maxCount + 1 pairs: a count above
 * maxCount means the block holds too many. Never throws on malformed bytes: they come back as `failure`.
 */
export function scanPairBlock(
  block: Uint8Array,
  scanner: Scanner = defaultScanner,
  maxCount = Number.MAX_SAFE_INTEGER,
): PairBlock {
  const shared = !scratchBusy;
  scratchBusy = true;
  try {
    return scanInto(block, scanner, maxCount, shared);
  } finally {
    if (shared) scratchBusy = false;
  }
}

function scanInto(block: Uint8Array, scanner: Scanner, maxCount: number, shared: boolean): PairBlock {
  let out = shared ? scratch : new Uint32Array(OUT_HEADER_SLOTS + PAIR_STRIDE * INITIAL_PAIRS);
  for (;;) {
    // A scratch grown by an earlier, larger block is cut down to maxCount + 1 pairs.
    if ((out.length - OUT_HEADER_SLOTS) / PAIR_STRIDE > maxCount + 1)
      out = out.subarray(0, OUT_HEADER_SLOTS + PAIR_STRIDE * (maxCount + 1));
    const capacity = (out.length - OUT_HEADER_SLOTS) / PAIR_STRIDE;
    const count = scanner.scanPairs(block, 0, block.length, out);
    const failed = out[OUT_ERROR] !== ERR_NONE;
    if (failed || count > maxCount || count < capacity || out[OUT_CONSUMED] === block.length) {
      const failure = failed
        ? { error: out[OUT_ERROR]!, offset: out[OUT_ERROR_OFFSET]!, value: out[OUT_ERROR_VALUE]! }
        : null;
      return { pairs: out.slice(OUT_HEADER_SLOTS, OUT_HEADER_SLOTS + count * PAIR_STRIDE), count, failure };
    }
    out = new Uint32Array(OUT_HEADER_SLOTS + PAIR_STRIDE * Math.min(capacity * 2, maxCount + 1));
    if (shared && out.length > scratch.length) scratch = out;
  }
}

/**
 * readPairBlock returns a small block of pairs (a GET_VALUES query or result) as Params, and the scan failure
 * when the block is malformed; the Params then hold the pairs before the malformed one.
 */
export function readPairBlock(block: Buffer, scanner?: Scanner): { params: Params; failure: ScanFailure | null } {
  const { pairs, failure } = scanPairBlock(block, scanner);
  return { params: new Params(block, pairs), failure };
}
