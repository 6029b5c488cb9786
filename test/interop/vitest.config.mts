// `npm run test:interop`: the suites that start real web servers (test/interop/*.interop.ts) plus the
// deployment-doc check. They are not in the default `npm test` (vitest.config.mts picks *.test.ts only, so the
// doc check runs there too): each file starts servers and moves hundreds of megabytes, and CI runs this
// config once rather than once per scanner.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/interop/**/*.interop.ts', 'test/interop/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two files at a time: each runs a web server and the app; stall and abort timings need some CPU left.
    maxWorkers: 2,
  },
});
