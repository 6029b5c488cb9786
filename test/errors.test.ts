import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import * as api from '../src/index';
import { ErrorCode, FastCGIError, ProtocolError, TimeoutError, scanErrorToProtocolError } from '../src/errors';
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
    for (const error of [
      L.ERR_BAD_VERSION,
      L.ERR_PAIR_LENGTH_TRUNCATED,
      L.ERR_PAIR_DATA_TRUNCATED,
      L.ERR_INVALID_ARGUMENT,
    ]) {
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

  it('are all FastCGIErrors: every error class the package exports', () => {
    const classes = Object.entries(api as Record<string, unknown>).filter(
      (e): e is [string, new () => unknown] => e[0].endsWith('Error') && typeof e[1] === 'function',
    );
    expect(classes.length).toBeGreaterThan(10);
    for (const [name, value] of classes)
      expect((value as unknown) === FastCGIError || value.prototype instanceof FastCGIError, name).toBe(true);
  });

  it('have one timeout class for server and client timers; ClientTimeoutError is another name for it', async () => {
    expect(api.ClientTimeoutError).toBe(TimeoutError);
    // A client timer: connecting to an address that never answers the SYN is slow to arrange portably, so the
    // request timer: a backend that accepts and never answers.
    const net = await import('node:net');
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const client = api.createClient({
      address: { host: '127.0.0.1', port: (silent.address() as import('node:net').AddressInfo).port },
      requestTimeout: 100,
      multiplex: false,
    });
    const error = await client.request({ params: { REQUEST_URI: '/' } }).then(
      () => null,
      (e: unknown) => e,
    );
    await client.close();
    silent.close();
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ name: 'TimeoutError', code: ErrorCode.REQUEST_TIMEOUT, timer: 'request' });
  });

  it('is what the library throws: no module outside the CLI throws a plain Error, RangeError or TypeError', () => {
    const root = join(__dirname, '..', 'src');
    // scanner-ts.ts: the TypeScript scanner throws the TypeError the addon's argument check throws (the codec
    // suites hold both to it). cgi-params.ts: BadPathError never leaves the gateway, which answers 400.
    const allowed = new Set(['codec/scanner-ts.ts:TypeError', 'cgi/params.ts:BadPathError']);
    const fastcgiClasses = new Set(
      Object.entries(api)
        .filter(([n]) => n.endsWith('Error'))
        .map(([n]) => n),
    );
    const found: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        const file = relative(root, path);
        if (entry.isDirectory()) {
          if (file !== 'cli') walk(path);
        } else if (entry.name.endsWith('.ts')) {
          for (const [, name] of readFileSync(path, 'utf8').matchAll(/throw new (\w+)\(/g)) {
            if (!fastcgiClasses.has(name!) && !allowed.has(`${file}:${name}`)) found.push(`${file}: throw new ${name}`);
          }
        }
      }
    };
    walk(root);
    expect(found).toEqual([]);
  });
});
