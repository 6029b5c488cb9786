// Record encoders: headers, padding, streams split at 65535 bytes, and the discrete records the protocol defines.
import {
  HEADER_LENGTH,
  MAX_CONTENT_LENGTH,
  NULL_REQUEST_ID,
  ProtocolStatus,
  RecordType,
  type ProtocolStatusValue,
  type RoleValue,
} from './constants';
import { checkRequestId, paddingFor, writeHeader } from './header';
import { encodePairs } from './pairs';
import { InvalidArgumentError } from '../errors';

export { paddingFor, writeHeader } from './header';

/** Options shared by the record encoders. */
export interface RecordOptions {
  /**
   * Pad each record's content to a multiple of 8 bytes (FastCGI 1.0 §3.3 recommends it; nginx, php-fpm and
   * libfcgi do it, lighttpd and Apache do not). Default true.
   */
  pad?: boolean;
}

const EMPTY = Buffer.alloc(0);
// Shared zero bytes for padding; never written to (Go's fcgi keeps the same `pad` array).
const ZEROS = Buffer.alloc(255);

/**
 * encodeRecord returns one record: header, content and padding in a single buffer.
 * Throws InvalidArgumentError when content exceeds 65535 bytes (use encodeStream) or the id is out of range.
 */
export function encodeRecord(
  type: number,
  requestId: number,
  content: Uint8Array = EMPTY,
  options?: RecordOptions,
): Buffer {
  checkRequestId(requestId);
  if (content.length > MAX_CONTENT_LENGTH) {
    throw new InvalidArgumentError(`record content is ${content.length} bytes; one record holds at most 65535`);
  }
  const padding = options?.pad === false ? 0 : paddingFor(content.length);
  const record = Buffer.allocUnsafe(HEADER_LENGTH + content.length + padding);
  let offset = writeHeader(record, 0, type, requestId, content.length, padding);
  record.set(content, offset);
  offset += content.length;
  record.fill(0, offset);
  return record;
}

/** Options for stream encoders. */
export interface StreamOptions extends RecordOptions {
  /** Append the empty record that ends the stream (FastCGI 1.0 §3.3). Default false. */
  end?: boolean;
}

/**
 * streamRecordChunks returns the pieces of a stream's records, ready for a corked write: a header, a zero-copy
 * view of at most 65535 content bytes and its padding per record, plus the empty terminator with `end`.
 */
export function streamRecordChunks(
  type: number,
  requestId: number,
  content: Uint8Array,
  options?: StreamOptions,
): Uint8Array[] {
  checkRequestId(requestId);
  const pad = options?.pad !== false;
  const chunks: Uint8Array[] = [];
  for (let offset = 0; offset < content.length; offset += MAX_CONTENT_LENGTH) {
    const piece = content.subarray(offset, Math.min(content.length, offset + MAX_CONTENT_LENGTH));
    const padding = pad ? paddingFor(piece.length) : 0;
    const header = Buffer.allocUnsafe(HEADER_LENGTH);
    writeHeader(header, 0, type, requestId, piece.length, padding);
    chunks.push(header, piece);
    if (padding > 0) chunks.push(ZEROS.subarray(0, padding));
  }
  if (options?.end === true) chunks.push(encodeRecord(type, requestId, EMPTY));
  return chunks;
}

/** encodeStream returns a stream's records (split at 65535 bytes, optionally ended) in one buffer. */
export function encodeStream(type: number, requestId: number, content: Uint8Array, options?: StreamOptions): Buffer {
  return Buffer.concat(streamRecordChunks(type, requestId, content, options));
}

/** encodeBeginRequest returns a BEGIN_REQUEST record (FastCGI 1.0 §5.1). */
export function encodeBeginRequest(requestId: number, role: RoleValue | number, flags = 0): Buffer {
  const body = Buffer.alloc(8);
  body[0] = (role >>> 8) & 0xff;
  body[1] = role & 0xff;
  body[2] = flags & 0xff;
  return encodeRecord(RecordType.BEGIN_REQUEST, requestId, body);
}

/** encodeAbortRequest returns an ABORT_REQUEST record (FastCGI 1.0 §5.4). */
export function encodeAbortRequest(requestId: number): Buffer {
  return encodeRecord(RecordType.ABORT_REQUEST, requestId);
}

/** END_REQUEST is 16 bytes: header + appStatus(4) + protocolStatus(1) + reserved(3), never padded. */
export const END_REQUEST_LENGTH = 16;

/** writeEndRequest writes an END_REQUEST record (FastCGI 1.0 §5.5) at target[offset]; returns the end offset. */
export function writeEndRequest(
  target: Uint8Array,
  offset: number,
  requestId: number,
  appStatus = 0,
  protocolStatus: ProtocolStatusValue = ProtocolStatus.REQUEST_COMPLETE,
): number {
  offset = writeHeader(target, offset, RecordType.END_REQUEST, requestId, 8, 0);
  target[offset] = (appStatus >>> 24) & 0xff;
  target[offset + 1] = (appStatus >>> 16) & 0xff;
  target[offset + 2] = (appStatus >>> 8) & 0xff;
  target[offset + 3] = appStatus & 0xff;
  target[offset + 4] = protocolStatus;
  target[offset + 5] = 0;
  target[offset + 6] = 0;
  target[offset + 7] = 0;
  return offset + 8;
}

/** encodeEndRequest returns an END_REQUEST record. */
export function encodeEndRequest(
  requestId: number,
  appStatus = 0,
  protocolStatus: ProtocolStatusValue = ProtocolStatus.REQUEST_COMPLETE,
): Buffer {
  checkRequestId(requestId);
  const record = Buffer.allocUnsafe(END_REQUEST_LENGTH);
  writeEndRequest(record, 0, requestId, appStatus, protocolStatus);
  return record;
}

/** encodeUnknownType returns the UNKNOWN_TYPE reply to a management record of type `type` (FastCGI 1.0 §4.2). */
export function encodeUnknownType(type: number): Buffer {
  const body = Buffer.alloc(8);
  body[0] = type & 0xff;
  return encodeRecord(RecordType.UNKNOWN_TYPE, NULL_REQUEST_ID, body);
}

/** encodeGetValues returns a GET_VALUES query: the names with empty values (FastCGI 1.0 §4.1). */
export function encodeGetValues(names: Iterable<string>): Buffer {
  const pairs: [string, string][] = [];
  for (const name of names) pairs.push([name, '']);
  return encodeRecord(RecordType.GET_VALUES, NULL_REQUEST_ID, encodePairs(pairs));
}

/** encodeGetValuesResult returns a GET_VALUES_RESULT record with the given answers (unknown names omitted). */
export function encodeGetValuesResult(values: Iterable<readonly [string, string | number]>): Buffer {
  const pairs: [string, string][] = [];
  for (const [name, value] of values) pairs.push([name, String(value)]);
  return encodeRecord(RecordType.GET_VALUES_RESULT, NULL_REQUEST_ID, encodePairs(pairs));
}
