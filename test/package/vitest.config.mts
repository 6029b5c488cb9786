// `npm run test:install`: install the packed tarball into temp consumer projects and prove it there
// (test/package/*.install.ts). Not in the default `npm test`, which picks *.test.ts only: each file runs
// `npm install` against the registry, and the setup packs the tarball with its prebuilds first.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/package/**/*.install.ts'],
    globalSetup: ['test/package/global-setup.ts'],
    testTimeout: 240_000,
    hookTimeout: 300_000,
    pool: 'forks',
    // One consumer at a time: installs, a nested codec suite and qemu each want a core.
    fileParallelism: false,
  },
});
