#!/usr/bin/env node
// Writes seed inputs for native/fuzz/fuzz_scanner.cc into the directory argv[2]: real-shaped FastCGI traffic
// gets the fuzzer past the version and length checks at once instead of after millions of guesses.
// Each seed starts with the target's 3 config bytes: capacity - 1, start offset, output slack (see its header).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node scripts/make-fuzz-seeds.mjs <corpus-dir>');
  process.exit(2);
}

const BEGIN_REQUEST = 1;
const PARAMS = 4;
const STDIN = 5;

function record(type, content, padding = (8 - (content.length % 8)) % 8, requestId = 1) {
  const header = Buffer.alloc(8);
  header.writeUInt8(1, 0);
  header.writeUInt8(type, 1);
  header.writeUInt16BE(requestId, 2);
  header.writeUInt16BE(content.length, 4);
  header.writeUInt8(padding, 6);
  return Buffer.concat([header, content, Buffer.alloc(padding)]);
}

function length(n) {
  if (n < 128) return Buffer.from([n]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((n | 0x80000000) >>> 0);
  return b;
}

function pairs(entries) {
  return Buffer.concat(
    entries.flatMap(([name, value]) => [
      length(Buffer.byteLength(name)),
      length(Buffer.byteLength(value)),
      Buffer.from(name + value),
    ]),
  );
}

// What nginx's fastcgi_params sends, plus a long user agent and cookie and a long unknown name, so both the
// 1-byte and the 4-byte length forms appear on values and on names.
const params = pairs([
  ['SCRIPT_FILENAME', '/var/www/html/index.php'],
  ['QUERY_STRING', 'a=1&b=2'],
  ['REQUEST_METHOD', 'POST'],
  ['CONTENT_TYPE', 'application/x-www-form-urlencoded'],
  ['CONTENT_LENGTH', '11'],
  ['SCRIPT_NAME', '/index.php'],
  ['REQUEST_URI', '/index.php?a=1&b=2'],
  ['DOCUMENT_URI', '/index.php'],
  ['DOCUMENT_ROOT', '/var/www/html'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
  ['REQUEST_SCHEME', 'https'],
  ['HTTPS', 'on'],
  ['GATEWAY_INTERFACE', 'CGI/1.1'],
  ['SERVER_SOFTWARE', 'nginx/1.24.0'],
  ['REMOTE_ADDR', '203.0.113.7'],
  ['REMOTE_PORT', '51234'],
  ['SERVER_ADDR', '10.0.0.2'],
  ['SERVER_PORT', '443'],
  ['SERVER_NAME', 'example.com'],
  ['REDIRECT_STATUS', '200'],
  ['HTTP_HOST', 'example.com'],
  [
    'HTTP_USER_AGENT',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
      'Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80',
  ],
  ['HTTP_COOKIE', Array.from({ length: 12 }, (_, i) => `session_${i}=${'x'.repeat(20)}`).join('; ')],
  ['HTTP_X_' + 'LONG_HEADER_NAME_'.repeat(8), 'unknown name with a 4-byte length'],
  ['HTTP_ACCEPT', '*/*'],
]);

const body = Buffer.from('hello=world');
const beginRequest = Buffer.from([0, 1, 0, 0, 0, 0, 0, 0]); // role RESPONDER, flags 0
const stream = Buffer.concat([
  record(BEGIN_REQUEST, beginRequest),
  record(PARAMS, params),
  record(PARAMS, Buffer.alloc(0)),
  record(STDIN, body),
  record(STDIN, Buffer.alloc(0)),
]);
const paramsContentStart = 16 + 8; // after BEGIN_REQUEST (16 bytes) and the PARAMS header

const padded = Buffer.concat(
  Array.from({ length: 16 }, (_, i) => record(STDIN, Buffer.alloc(i * 3, 0x61 + i), i * 17, i + 1)),
); // paddings 0, 17, ..., 255

// Every known name, and each one again with its last letter lower-cased, so the lookup's every branch and every
// failed final compare are in the corpus from the start.
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const knownNames = JSON.parse(readFileSync(join(root, 'src/codec/known-names.json'), 'utf8'));
const knownPairs = pairs(
  knownNames.flatMap((n) => [
    [n, '1'],
    [n.slice(0, -1) + n.slice(-1).toLowerCase(), ''],
  ]),
);

const cfg = (capacity, start, slack) => Buffer.from([capacity - 1, start, slack]);
const seeds = {
  request: [cfg(64, 0, 0), stream],
  'request-cap1': [cfg(1, 0, 3), stream],
  'request-from-params': [cfg(64, paramsContentStart, 0), stream],
  params: [cfg(64, 0, 0), params],
  'params-cap1': [cfg(1, 0, 1), params],
  'params-known-names': [cfg(64, 0, 0), knownPairs],
  'params-data-truncated': [cfg(64, 0, 0), params.subarray(0, params.length - 5)],
  'params-length-truncated': [cfg(64, 0, 0), params, Buffer.from([0x80, 0x00])],
  'padding-0-255': [cfg(8, 0, 0), padded],
  'record-65535': [cfg(4, 0, 0), record(STDIN, Buffer.alloc(65535, 0x7a)), record(STDIN, Buffer.alloc(0))],
  'truncated-header': [cfg(64, 0, 0), Buffer.from([1, PARAMS, 0, 1, 0])],
  'http-request': [cfg(64, 0, 0), Buffer.from('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n')],
  'out-too-short': [cfg(64, 0, 0xf0 | 12), stream],
};

mkdirSync(dir, { recursive: true });
for (const [name, parts] of Object.entries(seeds)) {
  writeFileSync(join(dir, `seed-${name}`), Buffer.concat(parts));
}
console.log(`fuzz: wrote ${Object.keys(seeds).length} seeds to ${dir}`);
