import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as api from '../src/index';
import { ErrorCode, ProtocolError, scanErrorToProtocolError } from '../src/errors';
import * as L from '../src/codec/layout';

describe('error codes', () => {
  it('are unique, exported, and each listed in the README error table', () => {
    const codes = Object.values(ErrorCode);
    expect(new Set(codes).size).toBe(codes.length);
    expect(api.ErrorCode).toBe(ErrorCode);
    const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
    for (const code of codes) expect(readme, `README lacks ${code}`).toContain(`\`${code}\``);
  });

  it('give every scanner error a specific code and message', () => {
    const seen = new Set<string>();
    for (const error of [L.ERR_BAD_VERSION, L.ERR_PAIR_LENGTH_TRUNCATED, L.ERR_PAIR_DATA_TRUNCATED, L.ERR_INVALID_ARGUMENT]) {
      const e = scanErrorToProtocolError({ error, offset: 3, value: 72 }, 100);
      expect(e).toBeInstanceOf(ProtocolError);
      expect(e.offset).toBe(103);
      seen.add(e.code);
    }
    expect(seen.size).toBe(4);
  });

  it('name the class and keep the cause', () => {
    const cause = new Error('dlopen failed');
    const e = new api.NativeLoadError('no addon', { cause });
    expect(e.name).toBe('NativeLoadError');
    expect(e.cause).toBe(cause);
    expect(e).toBeInstanceOf(api.FastCGIError);
  });
});
