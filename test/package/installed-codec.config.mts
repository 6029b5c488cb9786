// The suite's codec tests (test/codec/scanner.test.ts and test/differential/) with the checkout's codec loader
// replaced by the installed package's compiled one, so that the addon they hold to the TypeScript twin is the
// one `npm install` left in the consumer project (FASTCGI_INSTALLED_PACKAGE), not the checkout's build/.
// Run by prebuilt.install.ts, not by itself.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const installed = process.env.FASTCGI_INSTALLED_PACKAGE;
if (installed === undefined || installed === '')
  throw new Error('FASTCGI_INSTALLED_PACKAGE must name the installed fastcgi-engine');

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  resolve: {
    // '../../src/codec/load' from the tests and helpers, '../codec/load' from the sources they import.
    alias: [{ find: /^(\.\.\/)+(src\/)?codec\/load$/, replacement: join(installed, 'dist', 'codec', 'load.js') }],
  },
  test: {
    include: ['test/codec/scanner.test.ts', 'test/differential/**/*.test.ts'],
    testTimeout: 60_000,
    pool: 'forks',
  },
});
