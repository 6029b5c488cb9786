// The scanners every codec suite runs against: the TS twin always; the addon and the routed scanner (TS head,
// native rest: what the engine uses) whenever the addon can be loaded. The addon is loaded directly, not
// through the engine's env switches, so the differential suites still compare both paths in the
// FASTCGI_NO_NATIVE=1 run; FASTCGI_REQUIRE_NATIVE=1 makes a missing addon a failure.
import type { Scanner } from '../../src/codec/scanner';
import { typescriptScanner } from '../../src/codec/scanner-ts';
import { loadNativeScanner, routedScanner } from '../../src/codec/load';

export interface TestCodec extends Scanner {
  /** Name in test titles: typescript, native, routed. */
  readonly label: string;
}

function tryNative(): Scanner | null {
  try {
    return loadNativeScanner();
  } catch (error) {
    if (process.env.FASTCGI_REQUIRE_NATIVE === '1') throw error;
    return null;
  }
}

const labelled = (scanner: Scanner, label: string): TestCodec => ({ ...scanner, label });

export const nativeScanner: Scanner | null = tryNative();
export const tsScanner: TestCodec = labelled(typescriptScanner, 'typescript');
export const routed: TestCodec | null =
  nativeScanner === null ? null : labelled(routedScanner(nativeScanner, typescriptScanner), 'routed');
export const codecs: TestCodec[] =
  nativeScanner === null ? [tsScanner] : [tsScanner, labelled(nativeScanner, 'native'), routed!];
