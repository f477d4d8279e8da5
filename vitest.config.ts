import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Fails a test file that leaves a server, database handle or child process open.
    setupFiles: ['test/helpers/leak-check.ts'],
    // Each file gets its own databases (see test/helpers/backends.ts), so files may run in parallel.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
