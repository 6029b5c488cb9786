// Deterministic benchmark inputs: what nginx sends a FastCGI application, built with the package's own encoders.
//
// Every builder returns the same bytes on every run (no randomness, no clock), so numbers from different runs
// and machines measure the same input. The request is shaped like nginx's default `fastcgi_params` plus a
// browser's headers (what nginx sent in the interop suite's env answers): 30 params, about 1 KB of pair bytes, 28 known names
// and 2 unknown HTTP_X_* names.
import { encodePairs, encodeParams } from '../../src/wire/pairs';
import { encodeBeginRequest, encodeRecord, encodeStream } from '../../src/wire/records';
import { Flag, RecordType, Role } from '../../src/wire/constants';

/** One name-value pair. */
export type Pair = readonly [name: string, value: string];

/** The 30 params of request `requestId` (only REQUEST_URI, REMOTE_PORT and the request id header vary). */
export function nginxParams(requestId = 1): Pair[] {
  const uri = `/orders/${1000 + requestId}/items?page=2&sort=-created_at`;
  return [
    ['QUERY_STRING', 'page=2&sort=-created_at'],
    ['REQUEST_METHOD', 'GET'],
    ['CONTENT_TYPE', ''],
    ['CONTENT_LENGTH', ''],
    ['SCRIPT_NAME', '/index.php'],
    ['REQUEST_URI', uri],
    ['DOCUMENT_URI', '/index.php'],
    ['DOCUMENT_ROOT', '/srv/app/public'],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['REQUEST_SCHEME', 'https'],
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_SOFTWARE', 'nginx/1.26.2'],
    ['REMOTE_ADDR', '203.0.113.57'],
    ['REMOTE_PORT', String(40000 + requestId)],
    ['SERVER_ADDR', '10.0.0.12'],
    ['SERVER_PORT', '443'],
    ['SERVER_NAME', 'shop.example.com'],
    ['REDIRECT_STATUS', '200'],
    ['SCRIPT_FILENAME', '/srv/app/public/index.php'],
    ['PATH_INFO', ''],
    ['HTTP_HOST', 'shop.example.com'],
    [
      'HTTP_USER_AGENT',
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
    ],
    ['HTTP_ACCEPT', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'],
    ['HTTP_ACCEPT_LANGUAGE', 'en-US,en;q=0.9,de;q=0.8'],
    ['HTTP_ACCEPT_ENCODING', 'gzip, deflate, br, zstd'],
    ['HTTP_COOKIE', 'session=3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e; theme=dark; _ga=GA1.2.1234567890.1718000000'],
    ['HTTP_CONNECTION', 'keep-alive'],
    ['HTTP_X_REQUEST_ID', `req-${String(requestId).padStart(8, '0')}`],
    ['HTTP_X_CSRF_TOKEN', 'c3RhYmxlLWJlbmNoLXRva2Vu'],
    ['HTTP_REFERER', 'https://shop.example.com/'],
  ];
}

/** The pair bytes of one request's PARAMS stream: what scanPairs sees (30 params, ~1 KB). */
export function paramsBlock(requestId = 1): Buffer {
  return encodePairs(nginxParams(requestId));
}

/**
 * A params block of `count` pairs: the 30 nginx params cycled (duplicates allowed, as nginx and h2o send), so
 * the mix of known names, unknown names and value lengths stays the same and only the size changes.
 */
export function paramsBlockOf(count: number): Buffer {
  const base = nginxParams(1);
  const pairs: Pair[] = [];
  for (let i = 0; i < count; i++) pairs.push(base[i % base.length]!);
  return encodePairs(pairs);
}

/**
 * One whole request without a body: BEGIN_REQUEST (responder, keep-conn), one PARAMS record of 30 params, the
 * empty PARAMS record and the empty STDIN record. 4 records, about 1.1 KB.
 */
export function request(requestId: number): Buffer {
  return Buffer.concat([
    encodeBeginRequest(requestId, Role.RESPONDER, Flag.KEEP_CONN),
    encodeParams(requestId, nginxParams(requestId)),
    encodeRecord(RecordType.STDIN, requestId),
  ]);
}

/** A socket chunk holding `count` whole requests with ids 1..count (nginx multiplexing or pipelining). */
export function requestsChunk(count: number): Buffer {
  const parts: Buffer[] = [];
  for (let id = 1; id <= count; id++) parts.push(request(id));
  return Buffer.concat(parts);
}

/** Size of the request body in `bodyChunk`: one full STDIN record (the most one record holds). */
export const BODY_LENGTH = 0xffff;

/**
 * A socket chunk holding one request with a ~64 KB body: BEGIN_REQUEST, PARAMS (30 params), the empty PARAMS
 * record, one STDIN record of 65535 content bytes and the empty STDIN record. 5 records, about 65 KB.
 */
export function bodyChunk(requestId = 1): Buffer {
  const body = Buffer.alloc(BODY_LENGTH);
  for (let i = 0; i < body.length; i++) body[i] = 0x20 + (i % 95); // printable, deterministic
  return Buffer.concat([
    encodeBeginRequest(requestId, Role.RESPONDER, Flag.KEEP_CONN),
    encodeParams(requestId, nginxParams(requestId)),
    encodeStream(RecordType.STDIN, requestId, body, { end: true }),
  ]);
}

/** A human size: `1.1 KB`, `42 KB` (1 KB = 1024 bytes). */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const kb = bytes / 1024;
  return `${kb < 10 ? kb.toFixed(1) : Math.round(kb)} KB`;
}
