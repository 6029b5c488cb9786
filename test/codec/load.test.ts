import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { codec, scanner } from '../../src/codec/load';
import { nativeScanner } from '../helpers/codecs';

const root = join(__dirname, '..', '..');

// Runs a snippet in a fresh process with the given env, against the TS sources (through tsx).
function probe(env: Record<string, string>, code: string) {
  return spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
    cwd: root,
    env: { ...process.env, FASTCGI_NO_NATIVE: '', FASTCGI_REQUIRE_NATIVE: '', ...env },
    encoding: 'utf8',
  });
}

describe('codec loader', () => {
  it('says which implementation is in use and why', () => {
    expect(['native', 'typescript']).toContain(codec.implementation);
    expect(scanner.implementation).toBe(codec.implementation);
    if (codec.implementation === 'typescript') expect(codec.nativeUnavailableReason).toEqual(expect.any(String));
    else expect(codec.nativeUnavailableReason).toBeNull();
  });

  it('uses TypeScript when FASTCGI_NO_NATIVE=1', () => {
    const result = probe(
      { FASTCGI_NO_NATIVE: '1' },
      "const { codec } = require('./src/codec/load'); console.log(codec.implementation, codec.nativeUnavailableReason)",
    );
    expect(result.stdout.trim()).toBe('typescript disabled by FASTCGI_NO_NATIVE');
  });

  it.skipIf(nativeScanner === null)('uses the addon by default when it loads', () => {
    const result = probe({}, "const { codec } = require('./src/codec/load'); console.log(codec.implementation)");
    expect(result.stdout.trim()).toBe('native');
  });

  it('fails with NativeLoadError when FASTCGI_REQUIRE_NATIVE=1 and the addon cannot be used', () => {
    const result = probe({ FASTCGI_REQUIRE_NATIVE: '1', FASTCGI_NO_NATIVE: '1' }, "require('./src/codec/load')");
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(
      /NativeLoadError[\s\S]*FCGI_ERR_NATIVE_LOAD|FCGI_ERR_NATIVE_LOAD[\s\S]*NativeLoadError/,
    );
  });

  it('keeps native/generated in step with layout.ts and known-names.json', () => {
    expect(() =>
      execFileSync(process.execPath, ['scripts/gen-native-headers.mjs', '--check'], { cwd: root, stdio: 'pipe' }),
    ).not.toThrow();
  });
});
