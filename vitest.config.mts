import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Sockets and child processes: forks isolate them best and keep one failing test from hanging another.
    pool: 'forks',
  },
});
