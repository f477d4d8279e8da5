import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Each file gets its own databases (see test/helpers/backends.ts), so files may run in parallel.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
