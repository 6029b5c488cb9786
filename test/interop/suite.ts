// Registering interop suites: skipped (naming the Debian package) or failed (FASTCGI_INTEROP_REQUIRED=1) when
// a program they need is missing. Kept apart from harness.ts so plain scripts can import the harness.
import * as fs from 'node:fs';
import { afterAll, describe, it } from 'vitest';
import { findBinary, REQUIRED, stopAll } from './harness';

/** A program a suite needs: the binary (or a file, e.g. an Apache module) and the Debian package with it. */
export interface Need {
  binary?: string;
  file?: string;
  pkg: string;
}

export function present(need: Need): boolean {
  if (need.binary !== undefined && findBinary(need.binary) === null) return false;
  if (need.file !== undefined && !fs.existsSync(need.file)) return false;
  return true;
}

/**
 * describeServer registers a suite that needs real programs. All present: a plain describe. Something missing:
 * with FASTCGI_INTEROP_REQUIRED=1 a failing test naming the packages; otherwise the suite is skipped with the
 * packages in its title.
 */
export function describeServer(title: string, needs: Need[], body: () => void): void {
  const missing = needs.filter((n) => !present(n));
  if (missing.length === 0) {
    describe(title, () => {
      // A last resort after the suite's own afterAll hooks (after-hooks run in reverse order): whatever this
      // worker started and is still running.
      afterAll(stopAll);
      body();
    });
    return;
  }
  const packages = [...new Set(missing.map((n) => n.pkg))].join(' ');
  const what = missing.map((n) => n.binary ?? n.file).join(', ');
  const message = `${what} not found: install the Debian package(s) ${packages} (apt-get install ${packages})`;
  if (REQUIRED) {
    describe(title, () => {
      it(`needs ${packages}`, () => {
        throw new Error(`${message}; FASTCGI_INTEROP_REQUIRED=1 makes this a failure`);
      });
    });
    return;
  }
  // In the report (the suite's title) and on the console, which every reporter shows.
  console.warn(`interop: skipping "${title}": ${message}; set FASTCGI_INTEROP_REQUIRED=1 to fail instead`);
  describe.skip(`${title} [skipped: ${message}; set FASTCGI_INTEROP_REQUIRED=1 to fail instead]`, body);
}
