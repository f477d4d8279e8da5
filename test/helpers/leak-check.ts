import { afterAll } from 'vitest';
import { closeLeftovers, stillOpen } from './leaks.js';

// A setup file (vitest.config.ts `setupFiles`): after each test file's own hooks, fail
// the file if a server, database handle or child process opened through the helpers
// was never closed. A leaked worker keeps claiming executions, and a leaked server or
// pool keeps sockets open, so later files would be flaky for reasons of their own.
// What was left open is closed here, so the run can go on.

/** A child killed in the last afterEach may not have reported its exit yet. */
const EXIT_GRACE_MS = 2000;

afterAll(async () => {
  for (const deadline = Date.now() + EXIT_GRACE_MS; stillOpen().length > 0 && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const leftovers = await closeLeftovers();
  if (leftovers.length > 0) {
    throw new Error(`this test file left ${leftovers.length} resource(s) open; close each one in the test or its afterAll/afterEach:\n  ${leftovers.join('\n  ')}`);
  }
});
