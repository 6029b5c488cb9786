import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..');

function run(args: string[]) {
  return spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
}

// The built package, resolved by name through package.json "exports" (npm ci builds dist/ via `prepare`).
describe.skipIf(!existsSync(join(root, 'dist', 'index.js')))('the package entry points', () => {
  it('load with require and with import, sharing one copy of each class', () => {
    const cjs = run([
      '-e',
      "const f = require('fastcgi-engine'); console.log(typeof f.Decoder, f.codec.implementation)",
    ]);
    expect(cjs.stderr).toBe('');
    const esm = run([
      '--input-type=module',
      '-e',
      "import { Decoder, ProtocolError, codec } from 'fastcgi-engine'; import { createRequire } from 'node:module'; const r = createRequire(import.meta.url)('fastcgi-engine'); console.log(typeof Decoder, codec.implementation, r.ProtocolError === ProtocolError)",
    ]);
    expect(esm.stderr).toBe('');
    const [kind, implementation] = cjs.stdout.trim().split(' ');
    expect(kind).toBe('function');
    expect(esm.stdout.trim()).toBe(`function ${implementation} true`);
  });

  it('ship type declarations', () => {
    expect(existsSync(join(root, 'dist', 'index.d.ts'))).toBe(true);
  });

  it('block deep imports', () => {
    expect(run(['-e', "require('fastcgi-engine/dist/codec/load')"]).stderr).toMatch(/ERR_PACKAGE_PATH_NOT_EXPORTED/);
  });
});
