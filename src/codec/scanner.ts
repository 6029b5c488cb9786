// The Scanner interface: the one contract implemented by the native addon and by the TypeScript twin.

/** Which implementation answered. */
export type CodecImplementation = 'native' | 'typescript';

/**
 * A Scanner turns bytes into integers: record descriptors and name-value pair descriptors written into a
 * caller-owned Uint32Array laid out as in ./layout.ts. It keeps no state between calls, allocates nothing,
 * never throws on malformed bytes (it reports ERR_* codes in the output header) and never reads outside
 * buf[start, end). Both implementations produce identical output for identical input, slot for slot.
 */
export interface Scanner {
  readonly implementation: CodecImplementation;
  /** Hash of the known-name table the implementation matches names against. */
  readonly knownNamesHash: number;
  /** Scans complete records in buf[start, end); returns the number of REC_STRIDE descriptors written. */
  scanRecords(buf: Uint8Array, start: number, end: number, out: Uint32Array): number;
  /** Scans name-value pairs in buf[start, end); returns the number of PAIR_STRIDE descriptors written. */
  scanPairs(buf: Uint8Array, start: number, end: number, out: Uint32Array): number;
}
