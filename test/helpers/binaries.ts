// Finding the external programs some tests run (php-fpm, cgi-fcgi, the interop web servers), and skipping a
// test that needs a missing one, naming the Debian package to install, unless FASTCGI_INTEROP_REQUIRED=1,
// which makes that a failure.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestContext } from 'vitest';

/** FASTCGI_INTEROP_REQUIRED=1: a missing program fails the tests that need it instead of skipping them. */
export const REQUIRED = process.env.FASTCGI_INTEROP_REQUIRED === '1';

/** Searched after PATH: the sbin directories are often not on a non-root PATH. */
const EXTRA_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin'];

/** The first executable named one of `names` (in that order of preference) on PATH or in EXTRA_DIRS, or null. */
export function findBinary(names: string | readonly string[]): string | null {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter((d) => d !== '');
  for (const name of typeof names === 'string' ? [names] : names) {
    for (const dir of [...dirs, ...EXTRA_DIRS]) {
      const candidate = path.join(dir, name);
      try {
        fs.accessSync(candidate, fs.constants.X_OK);
        return candidate;
      } catch {
        // next
      }
    }
  }
  return null;
}

/**
 * `binary` when found; otherwise skips the test (a failure with FASTCGI_INTEROP_REQUIRED=1) with a message
 * naming `what` and the Debian package `pkg`.
 */
export function requireBinary(context: TestContext, binary: string | null, what: string, pkg: string): string {
  if (binary !== null) return binary;
  const message = `${what} not found: install the Debian package ${pkg} (apt-get install ${pkg})`;
  if (REQUIRED) throw new Error(`${message}; FASTCGI_INTEROP_REQUIRED=1 makes this a failure`);
  context.skip(`${message}; set FASTCGI_INTEROP_REQUIRED=1 to fail instead of skipping`);
  throw new Error('unreachable');
}
