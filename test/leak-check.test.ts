import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { closeLeftovers, stillOpen, track } from './helpers/leaks.js';

// The leak check (test/helpers/leak-check.ts, a setup file of every test file) fails a
// file that leaves a server, database handle or `skipflow` process open.

describe('leak tracker', () => {
  it('reports what is still open, where it was opened, and closes it', async () => {
    let closed = 0;
    const untrackTidy = track('tidy thing', async () => closed++);
    track('leaky thing', async () => closed++);
    untrackTidy();
    expect(stillOpen()).toEqual([expect.stringMatching(/^leaky thing opened at test\/leak-check\.test\.ts:\d+$/)]);
    expect(await closeLeftovers()).toHaveLength(1);
    expect(closed).toBe(1);
    expect(stillOpen()).toEqual([]);
  });

  it('fails a file that leaves a server open, and passes one that closes it (vitest run in a subprocess)', () => {
    const vitest = fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url));
    const result = spawnSync(process.execPath, [vitest, 'run', '--config', 'test/fixtures/leak/vitest.config.ts'], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', CI: '', SKIPFLOW_TEST_POSTGRES_URL: '' },
      timeout: 60_000,
    });
    const output = result.stdout + result.stderr;
    expect(result.status, output).toBe(1);
    expect(output).toMatch(/FAIL +test\/fixtures\/leak\/leaky-server\.fixture\.ts/);
    expect(output).toContain('startTestServer(sqlite) opened at test/fixtures/leak/leaky-server.fixture.ts:6');
    expect(output).toMatch(/✓ test\/fixtures\/leak\/tidy\.fixture\.ts/);
    expect(output).toMatch(/Test Files +1 failed \| 1 passed/);
  });
});
