// The differential codec check, standalone: random FastCGI streams (valid, mutated, truncated and garbage)
// scanned by the installed package's addon, its routed scanner and its TypeScript twin, which must agree on
// every output slot. Plain CommonJS with no dependencies, because it runs where the suite cannot: under
// qemu-user with an arm64 Node, against the linux-arm64 prebuild. Copied into the consumer project and run
// there, so that `require('fastcgi-engine')` is the installed package.
//
//   node differential-check.cjs [streams=3000] [seed=1]
// Prints one summary line and a JSON line; exits 1 on any mismatch or when the addon is not in use.
'use strict';
const { dirname, join, relative } = require('node:path');

const pkg = dirname(require.resolve('fastcgi-engine/package.json'));
const engine = require('fastcgi-engine');
const load = require(join(pkg, 'dist', 'codec', 'load.js'));
const L = require(join(pkg, 'dist', 'codec', 'layout.js'));
const { typescriptScanner } = require(join(pkg, 'dist', 'codec', 'scanner-ts.js'));
const { KNOWN_NAMES } = require(join(pkg, 'dist', 'codec', 'known-names.js'));
const addon = require(require.resolve('node-gyp-build', { paths: [pkg] })).path(pkg);

const streams = Number(process.argv[2] || 3000);
let seed = Number(process.argv[3] || 1) >>> 0 || 1;

function random() {
  // xorshift32: the same streams on every machine for a given seed.
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed / 0x100000000;
}
const int = (n) => Math.floor(random() * n);
const pick = (list) => list[int(list.length)];
const bytes = (n) => Uint8Array.from({ length: n }, () => int(256));

function encodeLength(n, forceLong) {
  return n < 128 && !forceLong ? [n] : [0x80 | (n >>> 24), (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

function pairBlock() {
  const parts = [];
  const count = int(8);
  for (let i = 0; i < count; i++) {
    const kind = int(7);
    let name;
    if (kind < 3) name = Buffer.from(pick(KNOWN_NAMES), 'latin1');
    else if (kind < 5) name = bytes(int(24));
    else if (kind < 6) name = Buffer.from(`${pick(KNOWN_NAMES)}X`, 'latin1');
    else name = bytes(127 + int(200));
    const value = int(5) === 0 ? bytes(120 + int(480)) : bytes(int(40));
    parts.push(
      ...encodeLength(name.length, int(8) === 0),
      ...encodeLength(value.length, int(8) === 0),
      ...name,
      ...value,
    );
  }
  return Uint8Array.from(parts);
}

function record(type, requestId, content, padding) {
  const header = [
    L.FCGI_VERSION,
    type,
    requestId >> 8,
    requestId & 0xff,
    content.length >> 8,
    content.length & 0xff,
    padding,
    0,
  ];
  return [...header, ...content, ...new Uint8Array(padding)];
}

/** A stream and the params blocks in it. */
function stream() {
  const out = [];
  const blocks = [];
  const count = 1 + int(12);
  for (let i = 0; i < count; i++) {
    const requestId = int(4) === 0 ? int(65536) : 1 + int(3);
    const padding = int(10) === 0 ? int(256) : int(8);
    const kind = int(10);
    if (kind < 2) out.push(...record(1, requestId, Uint8Array.from([0, 1, int(2), 0, 0, 0, 0, 0]), padding));
    else if (kind < 5) {
      const block = pairBlock();
      blocks.push(block);
      out.push(...record(pick([4, 4, 4, 9, 10]), requestId, block, padding));
    } else if (kind < 8)
      out.push(...record(pick([5, 6, 7, 8]), requestId, bytes(int(5) === 0 ? 1000 + int(3000) : int(200)), padding));
    else if (kind < 9) out.push(...record(pick([2, 3, 11]), requestId, bytes(int(16)), padding));
    else out.push(...record(12 + int(244), requestId, bytes(int(64)), padding));
  }
  return { buf: Uint8Array.from(out), blocks };
}

/** `data` at a random offset of a larger buffer: the addon must honour byteOffset. */
function placed(data) {
  const offset = int(16);
  const backing = new Uint8Array(offset + data.length + int(16)).fill(0xa5);
  backing.set(data, offset);
  return backing.subarray(offset, offset + data.length);
}

const scanners = [
  ['native', load.nativeScanner],
  ['routed', load.scanner],
];
let comparisons = 0;
let mismatches = 0;
const examples = [];

function compare(kind, buf, start, end, capacity) {
  const stride = kind === 'scanRecords' ? L.REC_STRIDE : L.PAIR_STRIDE;
  const expected = new Uint32Array(L.OUT_HEADER_SLOTS + capacity * stride).fill(0xdeadbeef);
  const expectedCount = typescriptScanner[kind](buf, start, end, expected);
  for (const [label, scanner] of scanners) {
    const out = new Uint32Array(expected.length).fill(0xdeadbeef);
    const count = scanner[kind](buf, start, end, out);
    comparisons++;
    let same = count === expectedCount;
    for (let i = 0; same && i < out.length; i++) same = out[i] === expected[i];
    if (!same) {
      mismatches++;
      if (examples.length < 5) {
        examples.push({
          label,
          kind,
          start,
          end,
          capacity,
          count,
          expectedCount,
          bytes: Buffer.from(buf.subarray(start, Math.min(end, start + 64))).toString('hex'),
        });
      }
    }
  }
}

function window(length) {
  const a = int(length + 1);
  const b = int(length + 1);
  return a <= b ? [a, b] : [b, a];
}

const capacities = [1, 2, 3, 8, 64, 1024];
for (let n = 0; n < streams; n++) {
  let { buf, blocks } = stream();
  const variant = n % 10;
  if (variant === 7 || variant === 8) {
    buf = buf.slice();
    for (let m = 1 + int(3); m > 0; m--) buf[int(buf.length)] = int(256);
  } else if (variant === 9) {
    buf = int(2) === 0 ? buf.subarray(0, int(buf.length + 1)) : bytes(int(600));
  }
  buf = placed(buf);
  compare('scanRecords', buf, 0, buf.length, pick(capacities));
  compare('scanRecords', buf, ...window(buf.length), pick(capacities));
  for (const block of blocks) {
    const placedBlock = placed(block);
    compare('scanPairs', placedBlock, 0, placedBlock.length, pick(capacities));
    compare('scanPairs', placedBlock, 0, int(placedBlock.length + 1), pick(capacities));
  }
  compare('scanPairs', buf, ...window(buf.length), pick(capacities));
}

const summary = {
  arch: process.arch,
  node: process.version,
  implementation: engine.codec.implementation,
  nativeUnavailableReason: engine.codec.nativeUnavailableReason,
  addon: relative(pkg, addon),
  streams,
  comparisons,
  mismatches,
  examples,
};
console.log(
  `differential check on ${process.arch} (node ${process.version}, addon ${summary.addon}): ${streams} streams, ` +
    `${comparisons} scans compared with the TypeScript scanner, ${mismatches} mismatches`,
);
console.log(JSON.stringify(summary));
process.exitCode = mismatches === 0 && engine.codec.implementation === 'native' && load.nativeScanner !== null ? 0 : 1;
