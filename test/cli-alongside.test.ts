import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, expect, it } from 'vitest';
import { type TestDatabase, createTestDatabase } from './helpers/backends.js';
import { CLI, type Child, spawnSkipflow } from './helpers/child.js';

// With SQLite, one machine runs one server process and the CLI may write alongside it.
// The default `serve` has two connections writing (the API's and the engine's), and
// SQLite's busy handler is off: a CLI write that meets the server's write lock must
// wait for it, not fail with "database is locked".

const exec = promisify(execFile);

let database: TestDatabase | undefined;
let server: Child | undefined;
afterEach(async () => {
  if (server && server.process.exitCode === null) {
    server.process.kill('SIGTERM');
    await server.exited();
  }
  server = undefined;
  await database?.drop();
  database = undefined;
});

it('CLI writes succeed while the server writes under load (SQLite)', async () => {
  database = await createTestDatabase('sqlite');
  const env = { SKIPFLOW_DATABASE_URL: database.url, SKIPFLOW_RATE_LIMIT: '0', PORT: '0' };
  server = spawnSkipflow(['serve'], env);
  const port = await server.waitForPort();
  const key = /sk_live_[0-9A-Za-z]{43}/.exec(server.output())![0];
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  const workspaceId = String((await call('GET', '/api/v1/workspace')).json.workspace_id);
  const wf = await call('POST', '/api/v1/workflows', { name: 'load', steps: [{ type: 'transform', expression: 'input.n + 1' }, { type: 'transform', expression: 'steps[0] * 2' }] });
  let loading = true;
  let started = 0;
  const load = Promise.all(
    Array.from({ length: 20 }, async (_, n) => {
      while (loading) if ((await call('POST', `/api/v1/workflows/${String(wf.json.id)}/run-async`, { input: { n } })).status === 202) started++;
    }),
  );
  const cli = (args: string[]) => exec(process.execPath, [CLI, ...args, '--json'], { env: { PATH: process.env.PATH ?? '', ...env } });
  for (let i = 0; i < 5; i++) await cli(['credits', 'add', '--workspace', workspaceId, '--amount', '1000']);
  loading = false;
  await load;
  expect(started).toBeGreaterThan(0);
  const ws = (await call('GET', '/api/v1/workspace')).json;
  expect(ws.credits).toBe(1000 + 5 * 1000 - started);
}, 60_000);
