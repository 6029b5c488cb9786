// The scanners every codec suite runs against: the TS twin always, the addon whenever it can be loaded.
// The addon is loaded directly (not through the engine's env switches), so the differential suites still
// compare both paths in the FASTCGI_NO_NATIVE=1 run; FASTCGI_REQUIRE_NATIVE=1 makes a missing addon a failure.
import type { Scanner } from '../../src/codec/scanner';
import { typescriptScanner } from '../../src/codec/scanner-ts';
import { loadNativeScanner } from '../../src/codec/load';

function tryNative(): Scanner | null {
  try {
    return loadNativeScanner();
  } catch (error) {
    if (process.env.FASTCGI_REQUIRE_NATIVE === '1') throw error;
    return null;
  }
}

export const nativeScanner: Scanner | null = tryNative();
export const tsScanner: Scanner = typescriptScanner;
export const codecs: Scanner[] = nativeScanner === null ? [tsScanner] : [tsScanner, nativeScanner];
