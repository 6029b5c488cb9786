// Name-value pair encoders (FastCGI 1.0 §3.4) and the PARAMS stream encoder that never splits a pair.
import { HEADER_LENGTH, MAX_CONTENT_LENGTH, MAX_PAIR_LENGTH, RecordType } from './constants';
import { checkRequestId, paddingFor, writeHeader } from './header';
import { ErrorCode, InvalidArgumentError, LimitError } from '../errors';

/**
 * A name or value: a Buffer/Uint8Array is sent as is; a string is a byte string (latin1, one byte per char, as
 * Node's http layer represents header values) unless it holds characters above U+00FF, which only UTF-8 can
 * carry, and then it is sent as UTF-8.
 */
export type PairInput = string | Uint8Array;

// Above U+00FF: not a byte string.
const WIDE = /[^\u0000-\u00ff]/;

function isWide(s: string): boolean {
  return WIDE.test(s);
}

function byteLengthOf(input: PairInput): number {
  if (typeof input !== 'string') return input.length;
  return isWide(input) ? Buffer.byteLength(input, 'utf8') : input.length;
}

function writeInput(target: Buffer, offset: number, input: PairInput, length: number): number {
  if (typeof input !== 'string') target.set(input, offset);
  else target.write(input, offset, length, length === input.length ? 'latin1' : 'utf8');
  return offset + length;
}

function lengthSize(length: number): number {
  return length < 0x80 ? 1 : 4;
}

/** writeLength writes a pair length (1 byte below 128, else 4 bytes with the top bit set); returns the end. */
export function writeLength(target: Uint8Array, offset: number, length: number): number {
  if (length < 0x80) {
    target[offset] = length;
    return offset + 1;
  }
  target[offset] = ((length >>> 24) & 0x7f) | 0x80;
  target[offset + 1] = (length >>> 16) & 0xff;
  target[offset + 2] = (length >>> 8) & 0xff;
  target[offset + 3] = length & 0xff;
  return offset + 4;
}

/** encodedPairLength returns how many bytes a pair takes once encoded, lengths included. */
export function encodedPairLength(nameLength: number, valueLength: number): number {
  return lengthSize(nameLength) + lengthSize(valueLength) + nameLength + valueLength;
}

interface Measured {
  name: PairInput;
  value: PairInput;
  nameLength: number;
  valueLength: number;
  size: number;
}

function measure(pairs: Iterable<readonly [PairInput, PairInput]>): Measured[] {
  const measured: Measured[] = [];
  for (const [name, value] of pairs) {
    const nameLength = byteLengthOf(name);
    const valueLength = byteLengthOf(value);
    if (nameLength > MAX_PAIR_LENGTH || valueLength > MAX_PAIR_LENGTH) {
      throw new InvalidArgumentError('a name or value longer than 2^31 - 1 bytes cannot be encoded');
    }
    measured.push({ name, value, nameLength, valueLength, size: encodedPairLength(nameLength, valueLength) });
  }
  return measured;
}

function writePair(target: Buffer, offset: number, pair: Measured): number {
  offset = writeLength(target, offset, pair.nameLength);
  offset = writeLength(target, offset, pair.valueLength);
  offset = writeInput(target, offset, pair.name, pair.nameLength);
  return writeInput(target, offset, pair.value, pair.valueLength);
}

// One-char strings for lengths below 128, the common case, so a byte-string pair's lengths join its text.
const LENGTH_CHARS = Array.from({ length: 0x80 }, (_, n) => String.fromCharCode(n));

function lengthChars(length: number): string {
  if (length < 0x80) return LENGTH_CHARS[length]!;
  return String.fromCharCode(
    ((length >>> 24) & 0x7f) | 0x80,
    (length >>> 16) & 0xff,
    (length >>> 8) & 0xff,
    length & 0xff,
  );
}

/**
 * Writes pairs measured[from..] until `end`: consecutive byte-string pairs are joined into one latin1 string
 * (lengths as chars) and written with one call, since a native write per name and per value cost more than
 * the bytes; Buffers and UTF-8 strings are written one by one. Returns the index of the next pair.
 */
function writePairs(target: Buffer, offset: number, end: number, measured: readonly Measured[], from: number): number {
  let next = from;
  let text = '';
  let textStart = offset;
  while (offset < end) {
    const pair = measured[next++]!;
    const { name, value } = pair;
    if (
      typeof name === 'string' &&
      typeof value === 'string' &&
      pair.nameLength === name.length &&
      pair.valueLength === value.length
    ) {
      if (text === '') textStart = offset;
      text += lengthChars(pair.nameLength) + lengthChars(pair.valueLength) + name + value;
      offset += pair.size;
      continue;
    }
    if (text !== '') {
      target.write(text, textStart, text.length, 'latin1');
      text = '';
    }
    offset = writePair(target, offset, pair);
  }
  if (text !== '') target.write(text, textStart, text.length, 'latin1');
  return next;
}

/** encodePairs returns the pairs as one block of bytes (GET_VALUES bodies, or a params stream before framing). */
export function encodePairs(pairs: Iterable<readonly [PairInput, PairInput]>): Buffer {
  const measured = measure(pairs);
  let total = 0;
  for (const pair of measured) total += pair.size;
  const block = Buffer.allocUnsafe(total);
  writePairs(block, 0, total, measured, 0);
  return block;
}

/** Options for encodeParams. */
export interface ParamsOptions {
  /** Pad records to 8 bytes. Default true. */
  pad?: boolean;
}

/**
 * encodeParams returns the whole PARAMS stream of a request: records of at most 65535 content bytes, each
 * holding whole pairs only, and the empty record that ends the stream. Pairs are never split across records
 * because php-fpm parses each PARAMS record on its own (FastCGI 1.0 §3.4 allows a pair to straddle records;
 * php-fpm does not) and resets the connection on a split pair. Throws LimitError (FCGI_ERR_PAIR_TOO_LARGE) for a pair that cannot
 * fit one record.
 */
export function encodeParams(
  requestId: number,
  pairs: Iterable<readonly [PairInput, PairInput]>,
  options?: ParamsOptions,
): Buffer {
  checkRequestId(requestId);
  const pad = options?.pad !== false;
  const measured = measure(pairs);
  // Lay out records first so the output is allocated once.
  const recordSizes: number[] = [];
  let current = 0;
  for (const pair of measured) {
    if (pair.size > MAX_CONTENT_LENGTH) {
      throw new LimitError(
        ErrorCode.PAIR_TOO_LARGE,
        `param ${String(pair.name).slice(0, 64)} takes ${pair.size} bytes encoded; a pair must fit one 65535-byte record`,
        MAX_CONTENT_LENGTH,
        pair.size,
      );
    }
    if (current + pair.size > MAX_CONTENT_LENGTH) {
      recordSizes.push(current);
      current = 0;
    }
    current += pair.size;
  }
  if (current > 0) recordSizes.push(current);
  let total = HEADER_LENGTH; // the empty terminator
  for (const size of recordSizes) total += HEADER_LENGTH + size + (pad ? paddingFor(size) : 0);
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  let next = 0;
  for (const size of recordSizes) {
    const padding = pad ? paddingFor(size) : 0;
    offset = writeHeader(out, offset, RecordType.PARAMS, requestId, size, padding);
    next = writePairs(out, offset, offset + size, measured, next);
    offset += size;
    out.fill(0, offset, offset + padding);
    offset += padding;
  }
  writeHeader(out, offset, RecordType.PARAMS, requestId, 0, 0);
  return out;
}
