// The 8-byte record header (FastCGI 1.0 §3.3) and its padding rule, shared by every encoder.
import { HEADER_LENGTH, VERSION } from './constants';
import { InvalidArgumentError } from '../errors';

/**
 * paddingFor returns the padding that aligns `contentLength` to 8 bytes, except above 65528 bytes, where it
 * returns 0: content + padding must stay within 65535, because php-fpm reads both into one 65535-byte buffer
 * and drops the connection otherwise (`len + padding > FCGI_MAX_LENGTH`, main/fastcgi.c); padding is only
 * recommended (FastCGI 1.0 §3.3). Computed on full-width numbers: the classic bug computes `(len + 7) & ~7` in
 * 16 bits, which wraps to 0 for 65535 and loses the last record.
 */
export function paddingFor(contentLength: number): number {
  return contentLength > MAX_ALIGNED_CONTENT ? 0 : -contentLength & 7;
}

/** The largest content length whose aligned size still fits 65535 bytes. */
const MAX_ALIGNED_CONTENT = 0xfff8;

/** writeHeader writes a record header at target[offset] and returns the offset after it. */
export function writeHeader(
  target: Uint8Array,
  offset: number,
  type: number,
  requestId: number,
  contentLength: number,
  paddingLength: number,
): number {
  target[offset] = VERSION;
  target[offset + 1] = type;
  target[offset + 2] = requestId >>> 8;
  target[offset + 3] = requestId & 0xff;
  target[offset + 4] = contentLength >>> 8;
  target[offset + 5] = contentLength & 0xff;
  target[offset + 6] = paddingLength;
  target[offset + 7] = 0;
  return offset + HEADER_LENGTH;
}

/** checkRequestId throws InvalidArgumentError unless requestId fits the header's 16 bits. */
export function checkRequestId(requestId: number): void {
  if (!Number.isInteger(requestId) || requestId < 0 || requestId > 0xffff) {
    throw new InvalidArgumentError(`request id must be an integer from 0 to 65535, got ${requestId}`);
  }
}

/**
 * setRequestId rewrites the request id of every record in `records` (a whole encoded stream, such as
 * encodeParams' output), walking the headers by their lengths. A client encodes a request's PARAMS once,
 * before it knows the id its connection will give it, and stamps the id when the request starts.
 */
export function setRequestId(records: Uint8Array, requestId: number): void {
  for (let offset = 0; offset + HEADER_LENGTH <= records.length;) {
    records[offset + 2] = requestId >>> 8;
    records[offset + 3] = requestId & 0xff;
    offset += HEADER_LENGTH + ((records[offset + 4]! << 8) | records[offset + 5]!) + records[offset + 6]!;
  }
}
