// The TypeScript twin of native/scanner.cc: same contract, same output, slot for slot.
import {
  ERR_BAD_VERSION,
  ERR_INVALID_ARGUMENT,
  ERR_NONE,
  ERR_PAIR_DATA_TRUNCATED,
  ERR_PAIR_LENGTH_TRUNCATED,
  FCGI_VERSION,
  NAME_UNKNOWN,
  OUT_CONSUMED,
  OUT_COUNT,
  OUT_ERROR,
  OUT_ERROR_OFFSET,
  OUT_ERROR_VALUE,
  OUT_HEADER_SLOTS,
  PAIR_NAME_ID,
  PAIR_NAME_LENGTH,
  PAIR_NAME_OFFSET,
  PAIR_STRIDE,
  PAIR_VALUE_LENGTH,
  PAIR_VALUE_OFFSET,
  RECORD_HEADER_LENGTH,
  REC_CONTENT_LENGTH,
  REC_CONTENT_OFFSET,
  REC_PADDING_LENGTH,
  REC_REQUEST_ID,
  REC_STRIDE,
  REC_TYPE,
} from './layout';
import { KNOWN_NAMES, KNOWN_NAMES_HASH } from './known-names';
import type { Scanner } from './scanner';

// Known-name lookup without strings: names are bucketed by length, then by the byte at the position that best
// separates that bucket, then confirmed byte by byte. One table lookup and one short compare per pair.
interface LengthBucket {
  position: number;
  byByte: (readonly Candidate[] | undefined)[];
}
interface Candidate {
  id: number;
  bytes: Uint8Array;
}

const BUCKETS: (LengthBucket | undefined)[] = buildBuckets(KNOWN_NAMES);

function buildBuckets(names: readonly string[]): (LengthBucket | undefined)[] {
  const byLength: Candidate[][] = [];
  names.forEach((name, id) => {
    (byLength[name.length] ??= []).push({ id, bytes: Buffer.from(name, 'latin1') });
  });
  return byLength.map((group) => {
    if (group === undefined) return undefined;
    let position = 0;
    let best = 0;
    for (let i = 0; i < group[0]!.bytes.length; i++) {
      const distinct = new Set(group.map((c) => c.bytes[i])).size;
      if (distinct > best) {
        best = distinct;
        position = i;
      }
    }
    const byByte: Candidate[][] = [];
    for (const c of group) (byByte[c.bytes[position]!] ??= []).push(c);
    return { position, byByte };
  });
}

/** lookupKnownName returns the known-name id of buf[offset, offset + length), or NAME_UNKNOWN. */
export function lookupKnownName(buf: Uint8Array, offset: number, length: number): number {
  const bucket = BUCKETS[length];
  if (bucket === undefined) return NAME_UNKNOWN;
  const candidates = bucket.byByte[buf[offset + bucket.position]!];
  if (candidates === undefined) return NAME_UNKNOWN;
  outer: for (let c = 0; c < candidates.length; c++) {
    const { id, bytes } = candidates[c]!;
    for (let i = 0; i < length; i++) if (buf[offset + i] !== bytes[i]) continue outer;
    return id;
  }
  return NAME_UNKNOWN;
}

function prologue(out: Uint32Array, start: number, end: number, bufLength: number, stride: number): boolean {
  out[OUT_ERROR] = ERR_NONE;
  out[OUT_ERROR_OFFSET] = 0;
  out[OUT_ERROR_VALUE] = 0;
  if (start > end || end > bufLength || out.length < OUT_HEADER_SLOTS + stride) {
    out[OUT_COUNT] = 0;
    out[OUT_CONSUMED] = start;
    out[OUT_ERROR] = ERR_INVALID_ARGUMENT;
    out[OUT_ERROR_OFFSET] = start;
    return false;
  }
  return true;
}

function fail(out: Uint32Array, count: number, at: number, code: number, value: number): number {
  out[OUT_ERROR] = code;
  out[OUT_ERROR_OFFSET] = at;
  out[OUT_ERROR_VALUE] = value;
  out[OUT_COUNT] = count;
  out[OUT_CONSUMED] = at;
  return count;
}

function checkArguments(buf: Uint8Array, out: Uint32Array): void {
  if (!(buf instanceof Uint8Array) || !(out instanceof Uint32Array)) {
    throw new TypeError('scan(buf: Uint8Array, start: number, end: number, out: Uint32Array)');
  }
}

/** scanRecords: see Scanner.scanRecords and native/scanner.h for the contract. */
export function scanRecords(buf: Uint8Array, start: number, end: number, out: Uint32Array): number {
  checkArguments(buf, out);
  // ToUint32, as napi_get_value_uint32 does on the native side.
  start >>>= 0;
  end >>>= 0;
  if (out.length < OUT_HEADER_SLOTS) return 0;
  if (!prologue(out, start, end, buf.length, REC_STRIDE)) return 0;
  const capacity = Math.floor((out.length - OUT_HEADER_SLOTS) / REC_STRIDE);
  let count = 0;
  let p = start;
  let slot = OUT_HEADER_SLOTS;
  while (end - p >= RECORD_HEADER_LENGTH) {
    const version = buf[p]!;
    if (version !== FCGI_VERSION) return fail(out, count, p, ERR_BAD_VERSION, version);
    const contentLength = (buf[p + 4]! << 8) | buf[p + 5]!;
    const paddingLength = buf[p + 6]!;
    if (end - p - RECORD_HEADER_LENGTH < contentLength + paddingLength) break;
    if (count === capacity) break;
    out[slot + REC_TYPE] = buf[p + 1]!;
    out[slot + REC_REQUEST_ID] = (buf[p + 2]! << 8) | buf[p + 3]!;
    out[slot + REC_CONTENT_OFFSET] = p + RECORD_HEADER_LENGTH;
    out[slot + REC_CONTENT_LENGTH] = contentLength;
    out[slot + REC_PADDING_LENGTH] = paddingLength;
    slot += REC_STRIDE;
    count++;
    p += RECORD_HEADER_LENGTH + contentLength + paddingLength;
  }
  // A partial header can still show a bad version: report it now rather than after more bytes arrive.
  if (p < end && buf[p] !== FCGI_VERSION) return fail(out, count, p, ERR_BAD_VERSION, buf[p]!);
  out[OUT_COUNT] = count;
  out[OUT_CONSUMED] = p;
  return count;
}

/** scanPairs: see Scanner.scanPairs and native/scanner.h for the contract. */
export function scanPairs(buf: Uint8Array, start: number, end: number, out: Uint32Array): number {
  checkArguments(buf, out);
  start >>>= 0;
  end >>>= 0;
  if (out.length < OUT_HEADER_SLOTS) return 0;
  if (!prologue(out, start, end, buf.length, PAIR_STRIDE)) return 0;
  const capacity = Math.floor((out.length - OUT_HEADER_SLOTS) / PAIR_STRIDE);
  let count = 0;
  let p = start;
  let slot = OUT_HEADER_SLOTS;
  while (p < end) {
    if (count === capacity) break;
    let q = p;
    // Lengths: 1 byte below 128, else 4 bytes big-endian with the top bit set (FastCGI 1.0 §3.4).
    let nameLength = buf[q]!;
    if (nameLength < 0x80) {
      q += 1;
    } else if (end - q >= 4) {
      nameLength = (nameLength & 0x7f) * 0x1000000 + ((buf[q + 1]! << 16) | (buf[q + 2]! << 8) | buf[q + 3]!);
      q += 4;
    } else {
      return fail(out, count, p, ERR_PAIR_LENGTH_TRUNCATED, 0);
    }
    if (q >= end) return fail(out, count, p, ERR_PAIR_LENGTH_TRUNCATED, 0);
    let valueLength = buf[q]!;
    if (valueLength < 0x80) {
      q += 1;
    } else if (end - q >= 4) {
      valueLength = (valueLength & 0x7f) * 0x1000000 + ((buf[q + 1]! << 16) | (buf[q + 2]! << 8) | buf[q + 3]!);
      q += 4;
    } else {
      return fail(out, count, p, ERR_PAIR_LENGTH_TRUNCATED, 0);
    }
    const declared = nameLength + valueLength;
    if (declared > end - q) return fail(out, count, p, ERR_PAIR_DATA_TRUNCATED, declared);
    out[slot + PAIR_NAME_ID] = lookupKnownName(buf, q, nameLength);
    out[slot + PAIR_NAME_OFFSET] = q;
    out[slot + PAIR_NAME_LENGTH] = nameLength;
    out[slot + PAIR_VALUE_OFFSET] = q + nameLength;
    out[slot + PAIR_VALUE_LENGTH] = valueLength;
    slot += PAIR_STRIDE;
    count++;
    p = q + declared;
  }
  out[OUT_COUNT] = count;
  out[OUT_CONSUMED] = p;
  return count;
}

/** The TypeScript Scanner. */
export const typescriptScanner: Scanner = Object.freeze({
  implementation: 'typescript',
  knownNamesHash: KNOWN_NAMES_HASH,
  scanRecords,
  scanPairs,
});
