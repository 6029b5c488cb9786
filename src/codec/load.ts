// Chooses the scanner: the native addon when it loads and matches this build, the TypeScript twin otherwise.
//
// FASTCGI_NO_NATIVE=1 forces TypeScript (like ws's WS_NO_BUFFER_UTIL); FASTCGI_REQUIRE_NATIVE=1 turns a failed
// native load into a NativeLoadError, so CI cannot pass on the fallback by accident. FASTCGI_NATIVE_ADDON=<path
// of a .node file> loads that build instead of node-gyp-build's pick, under the same checks: it is how the
// ASan + UBSan build of scripts/sanitize-addon.sh runs the suites. This is the only module that touches the
// addon; everything else sees the Scanner interface.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as layout from './layout';
import type { CodecImplementation, Scanner } from './scanner';
import { typescriptScanner } from './scanner-ts';
import { KNOWN_NAMES_HASH } from './known-names';
import { NativeLoadError } from '../errors';

/**
 * How the engine splits work between the TS twin and the addon, from `npm run bench:codec` (README, codec
 * tables). A native call costs ~80 ns before its loop starts; its loop then saves ~5 ns per record and ~20 ns
 * per pair. Records: the first TS_HEAD_RECORDS records of a chunk are scanned in TS and only the rest go to
 * the addon, because record count, not bytes, decides the win (a 64 KB chunk of body records holds 5 records,
 * a 4 KB chunk of requests 16). Pairs: blocks of NATIVE_PAIRS_MIN_BYTES or more go to the addon; the
 * crossover is at 4-5 pairs (~110 B) and pairs are short, so bytes predict the count well enough.
 */
export const TS_HEAD_RECORDS = 8;
export const NATIVE_PAIRS_MIN_BYTES = 128;

type ScanFn = (buf: Uint8Array, start: number, end: number, out: Uint32Array) => number;

interface NativeBinding {
  scanRecords(buf: Uint8Array, start: number, end: number, out: Uint32Array): number;
  scanPairs(buf: Uint8Array, start: number, end: number, out: Uint32Array): number;
  knownNamesHash: number;
  layout: Record<string, number>;
  /** Linux only (native/precise-timer.cc). */
  PreciseTimer?: PreciseTimerConstructor;
}

/** A timerfd-backed timer on the event loop: `arm(ns)` calls back at that CLOCK_MONOTONIC time (process.hrtime's clock). */
export interface PreciseTimerHandle {
  arm(deadlineNs: number): void;
  disarm(): void;
  close(): void;
}
export type PreciseTimerConstructor = new (callback: () => void) => PreciseTimerHandle;

// The binding the scanner came from; the load generator's timer lives in the same addon.
let loadedBinding: NativeBinding | null = null;

/** The addon's precise timer, when the addon is in use and the platform has one (Linux); else null. */
export function nativePreciseTimer(): PreciseTimerConstructor | null {
  return loadedBinding?.PreciseTimer ?? null;
}

/** What the loader decided, and why. */
export interface CodecInfo {
  /** The implementation that scans large chunks ('native' when the addon is in use). */
  readonly implementation: CodecImplementation;
  /** Why the addon is not in use, when it is not: disabled by FASTCGI_NO_NATIVE, or the load error. */
  readonly nativeUnavailableReason: string | null;
  /** Records per chunk scanned in TypeScript before the addon takes over. */
  readonly tsHeadRecords: number;
  /** Params blocks from this size on are scanned by the addon. */
  readonly nativePairsMinBytes: number;
}

const packageRoot = join(__dirname, '..', '..');

function isSet(name: string): boolean {
  const value = process.env[name];
  return value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
}

function checkBinding(binding: NativeBinding): void {
  for (const [name, value] of Object.entries(layout)) {
    if (typeof value === 'number' && binding.layout[name] !== value) {
      throw new NativeLoadError(
        `addon layout ${name}=${binding.layout[name]} but TypeScript has ${value}: rebuild the addon (npm run build:native)`,
      );
    }
  }
  if (binding.knownNamesHash !== KNOWN_NAMES_HASH) {
    throw new NativeLoadError(
      'addon known-name table differs from src/codec/known-names.json: rebuild the addon (npm run build:native)',
    );
  }
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0]!.trim();
}

function installNote(): string | null {
  try {
    return firstLine(readFileSync(join(packageRoot, 'build', 'native-unavailable.txt'), 'utf8')) || null;
  } catch {
    return null;
  }
}

/**
 * loadNativeScanner loads the addon through node-gyp-build and checks it against this build.
 * Throws a NativeLoadError (one line) when it cannot be loaded or does not match.
 */
export function loadNativeScanner(): Scanner {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const load = require('node-gyp-build') as (dir: string) => NativeBinding;
  let binding: NativeBinding;
  const addonPath = process.env.FASTCGI_NATIVE_ADDON;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    binding = addonPath ? (require(addonPath) as NativeBinding) : load(packageRoot);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // node-gyp-build's "No native build was found for platform=... node=..." tells what is missing, not why:
    // the install script left that in build/native-unavailable.txt (no prebuild and no toolchain, say).
    const note = message.startsWith('No native build was found') ? installNote() : null;
    throw new NativeLoadError(note ?? firstLine(message), { cause: error });
  }
  checkBinding(binding);
  loadedBinding = binding;
  return Object.freeze({
    implementation: 'native' as const,
    knownNamesHash: binding.knownNamesHash,
    scanRecords: binding.scanRecords,
    scanPairs: binding.scanPairs,
  });
}

// Scans the first `head` items with `first` and the rest, if any, with `rest`, into one output array as if a
// single call had done it (the differential tests hold the routed scanner to the TS twin's output).
// `rest` starts right after the head's descriptors, so its output header lands on the head's last
// OUT_HEADER_SLOTS slots: those are saved around the call and its header is moved to the front.
function chain(first: ScanFn, rest: ScanFn, stride: number, head: number): ScanFn {
  const split = layout.OUT_HEADER_SLOTS + head * stride;
  const tail = split - layout.OUT_HEADER_SLOTS;
  const saved = new Uint32Array(layout.OUT_HEADER_SLOTS);
  // Views of the caller's array, made once per array: a subarray costs more than the scan it would route.
  let lastOut: Uint32Array | null = null;
  let headView: Uint32Array = saved;
  let restView: Uint32Array = saved;
  return (buf, start, end, out) => {
    if (out.length < split + layout.OUT_HEADER_SLOTS + stride) return first(buf, start, end, out);
    if (out !== lastOut) {
      lastOut = out;
      headView = out.subarray(0, split);
      restView = out.subarray(tail);
    }
    const headCount = first(buf, start, end, headView);
    if (headCount < head || out[layout.OUT_ERROR] !== layout.ERR_NONE || out[layout.OUT_CONSUMED] === end)
      return headCount;
    for (let i = 0; i < layout.OUT_HEADER_SLOTS; i++) saved[i] = out[tail + i]!;
    const restCount = rest(buf, out[layout.OUT_CONSUMED]!, end, restView);
    out[layout.OUT_COUNT] = headCount + restCount;
    out[layout.OUT_CONSUMED] = out[tail + layout.OUT_CONSUMED]!;
    out[layout.OUT_ERROR] = out[tail + layout.OUT_ERROR]!;
    out[layout.OUT_ERROR_OFFSET] = out[tail + layout.OUT_ERROR_OFFSET]!;
    out[layout.OUT_ERROR_VALUE] = out[tail + layout.OUT_ERROR_VALUE]!;
    for (let i = 0; i < layout.OUT_HEADER_SLOTS; i++) out[tail + i] = saved[i]!;
    return headCount + restCount;
  };
}

/**
 * routedScanner combines the addon and the TS twin as the constants above say. Same output as either alone.
 */
export function routedScanner(native: Scanner, ts: Scanner): Scanner {
  const nativePairs = native.scanPairs;
  const tsPairs = ts.scanPairs;
  return Object.freeze({
    implementation: 'native' as const,
    knownNamesHash: native.knownNamesHash,
    scanRecords: chain(ts.scanRecords, native.scanRecords, layout.REC_STRIDE, TS_HEAD_RECORDS),
    scanPairs(buf: Uint8Array, start: number, end: number, out: Uint32Array): number {
      return end - start >= NATIVE_PAIRS_MIN_BYTES ? nativePairs(buf, start, end, out) : tsPairs(buf, start, end, out);
    },
  });
}

function load(): { scanner: Scanner; native: Scanner | null; reason: string | null } {
  if (isSet('FASTCGI_NO_NATIVE')) {
    if (isSet('FASTCGI_REQUIRE_NATIVE')) {
      throw new NativeLoadError('FASTCGI_NO_NATIVE and FASTCGI_REQUIRE_NATIVE are both set');
    }
    return { scanner: typescriptScanner, native: null, reason: 'disabled by FASTCGI_NO_NATIVE' };
  }
  try {
    const native = loadNativeScanner();
    return { scanner: routedScanner(native, typescriptScanner), native, reason: null };
  } catch (error) {
    // One line: codec.nativeUnavailableReason is meant for a log line or a health endpoint.
    const message = firstLine(error instanceof Error ? error.message : String(error));
    if (isSet('FASTCGI_REQUIRE_NATIVE')) {
      throw new NativeLoadError(`FASTCGI_REQUIRE_NATIVE is set but the native scanner did not load: ${message}`, {
        cause: error,
      });
    }
    return { scanner: typescriptScanner, native: null, reason: message };
  }
}

const loaded = load();

/** The scanner the engine uses: routedScanner(native, TS) when the addon is loaded, else the TS twin. */
export const scanner: Scanner = loaded.scanner;

/** The raw native scanner (no size routing), or null; for differential tests and benchmarks. */
export const nativeScanner: Scanner | null = loaded.native;

/** Which codec is in use, documented as the package's `codec` export. */
export const codec: CodecInfo = Object.freeze({
  implementation: loaded.scanner.implementation,
  nativeUnavailableReason: loaded.reason,
  tsHeadRecords: TS_HEAD_RECORDS,
  nativePairsMinBytes: NATIVE_PAIRS_MIN_BYTES,
});
