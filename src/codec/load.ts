// Chooses the scanner: the native addon when it loads and matches this build, the TypeScript twin otherwise.
//
// FASTCGI_NO_NATIVE=1 forces TypeScript (like ws's WS_NO_BUFFER_UTIL); FASTCGI_REQUIRE_NATIVE=1 turns a failed
// native load into a NativeLoadError, so CI cannot pass on the fallback by accident. This is the only module
// that touches the addon; everything else sees the Scanner interface.
import { join } from 'node:path';
import * as layout from './layout';
import type { CodecImplementation, Scanner } from './scanner';
import { typescriptScanner } from './scanner-ts';
import { KNOWN_NAMES_HASH } from '../protocol/known-names';
import { NativeLoadError } from '../errors';

/**
 * Chunks shorter than these stay on the TypeScript path even when the addon is loaded: below them a native
 * call's fixed cost (argument conversion, ~60 ns) outweighs its faster loop. Set from `npm run bench:codec`
 * (see the README's codec table).
 */
export const NATIVE_RECORDS_MIN_BYTES = 4096;
export const NATIVE_PAIRS_MIN_BYTES = 512;

interface NativeBinding {
  scanRecords(buf: Uint8Array, start: number, end: number, out: Uint32Array): number;
  scanPairs(buf: Uint8Array, start: number, end: number, out: Uint32Array): number;
  knownNamesHash: number;
  layout: Record<string, number>;
}

/** What the loader decided, and why. */
export interface CodecInfo {
  /** The implementation that scans large chunks ('native' when the addon is in use). */
  readonly implementation: CodecImplementation;
  /** Why the addon is not in use, when it is not: disabled by FASTCGI_NO_NATIVE, or the load error. */
  readonly nativeUnavailableReason: string | null;
  /** Chunk sizes from which the native path is used (the TypeScript path is faster below them). */
  readonly nativeRecordsMinBytes: number;
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
      throw new Error(`addon layout ${name}=${binding.layout[name]} but TypeScript has ${value}: rebuild the addon (npm run build:native)`);
    }
  }
  if (binding.knownNamesHash !== KNOWN_NAMES_HASH) {
    throw new Error('addon known-name table differs from src/protocol/known-names.json: rebuild the addon (npm run build:native)');
  }
}

/**
 * loadNativeScanner loads the addon through node-gyp-build and checks it against this build.
 * Throws when it cannot be loaded or does not match.
 */
export function loadNativeScanner(): Scanner {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const load = require('node-gyp-build') as (dir: string) => NativeBinding;
  const binding = load(packageRoot);
  checkBinding(binding);
  return Object.freeze({
    implementation: 'native' as const,
    knownNamesHash: binding.knownNamesHash,
    scanRecords: binding.scanRecords,
    scanPairs: binding.scanPairs,
  });
}

// Routes each call by size: the twin for small ranges, the addon for large ones. Outputs are identical, so the
// choice is invisible to callers (the differential tests prove it).
function thresholdScanner(native: Scanner, ts: Scanner): Scanner {
  const nativeRecords = native.scanRecords;
  const nativePairs = native.scanPairs;
  const tsRecords = ts.scanRecords;
  const tsPairs = ts.scanPairs;
  return Object.freeze({
    implementation: 'native' as const,
    knownNamesHash: native.knownNamesHash,
    scanRecords(buf: Uint8Array, start: number, end: number, out: Uint32Array): number {
      return end - start >= NATIVE_RECORDS_MIN_BYTES ? nativeRecords(buf, start, end, out) : tsRecords(buf, start, end, out);
    },
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
    return { scanner: thresholdScanner(native, typescriptScanner), native, reason: null };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (isSet('FASTCGI_REQUIRE_NATIVE')) {
      throw new NativeLoadError(`FASTCGI_REQUIRE_NATIVE is set but the native scanner did not load: ${message}`, { cause: error });
    }
    return { scanner: typescriptScanner, native: null, reason: message };
  }
}

const loaded = load();

/** The scanner the engine uses: size-routed native + TS when the addon is loaded, else the TS twin. */
export const scanner: Scanner = loaded.scanner;

/** The raw native scanner (no size routing), or null; for differential tests and benchmarks. */
export const nativeScanner: Scanner | null = loaded.native;

/** Which codec is in use, documented as the package's `codec` export. */
export const codec: CodecInfo = Object.freeze({
  implementation: loaded.scanner.implementation,
  nativeUnavailableReason: loaded.reason,
  nativeRecordsMinBytes: NATIVE_RECORDS_MIN_BYTES,
  nativePairsMinBytes: NATIVE_PAIRS_MIN_BYTES,
});
