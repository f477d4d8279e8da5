import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { type TestDatabase, createTestDatabase, describeEachBackend } from './helpers/backends.js';
import { type Child, spawnSkipflow } from './helpers/child.js';
import { onlyJson, skipflow } from './helpers/cli-run.js';
import { eventually } from './helpers/server.js';

// docs/api.md#command-line (admin commands): workspace list / update --credits,
// errors as one JSON object with --json and exit code 2, help that names the scopes
// and the required options, no silent creation of an empty database, and the Default
// workspace made only by a process that serves the API.

describeEachBackend('admin CLI', (backend) => {
  let database: TestDatabase | undefined;
  let child: Child | undefined;
  afterEach(async () => {
    child?.process.kill('SIGKILL');
    await child?.exited();
    await database?.drop();
    child = undefined;
    database = undefined;
  });

  it('lists workspaces and makes credits unlimited (null) or metered again', async () => {
    database = await createTestDatabase(backend);
    const env = { SKIPFLOW_DATABASE_URL: database.url };
    expect((await skipflow(['migrate', '--json'], env)).code).toBe(0);
    const a = onlyJson(await skipflow(['workspace', 'create', '--name', 'A', '--credits', '5', '--json'], env));
    const b = onlyJson(await skipflow(['workspace', 'create', '--name', 'B', '--json'], env));
    const unlimited = onlyJson(await skipflow(['workspace', 'update', '--workspace', a.workspace_id, '--credits', 'unlimited', '--json'], env));
    expect(unlimited).toMatchObject({ workspace_id: a.workspace_id, credits: null });
    const list = onlyJson(await skipflow(['workspace', 'list', '--json'], env));
    // Newest first by id (two processes in one second may order either way).
    const ids = list.workspaces.map((w: { workspace_id: string }) => w.workspace_id);
    expect(ids).toEqual([...ids].sort().reverse());
    expect(Object.fromEntries(list.workspaces.map((w: { workspace_id: string; credits: number | null }) => [w.workspace_id, w.credits]))).toEqual({ [a.workspace_id]: null, [b.workspace_id]: 0 });
    expect(Object.keys(list.workspaces[0]).sort()).toEqual(['created_at', 'credits', 'max_concurrent_executions', 'name', 'workspace_id']);
    const human = await skipflow(['workspace', 'list'], env);
    expect(human.stdout).toContain('credits unlimited');
    const metered = onlyJson(await skipflow(['workspace', 'update', '--workspace', a.workspace_id, '--credits', '7', '--json'], env));
    expect(metered.credits).toBe(7);
    const bad = await skipflow(['workspace', 'update', '--workspace', a.workspace_id, '--credits', 'lots', '--json'], env);
    expect(bad.code).toBe(2);
    expect(onlyJson(bad)).toEqual({ error: expect.stringContaining('--credits'), error_code: 'invalid_usage' });
    const unknown = await skipflow(['workspace', 'update', '--workspace', 'f'.repeat(24), '--credits', '1', '--json'], env);
    expect(unknown.code).toBe(2);
    expect(onlyJson(unknown).error).toMatch(/no workspace/);
  });

  it('bootstraps the Default workspace only in a process that serves the API', async () => {
    database = await createTestDatabase(backend);
    const env = { SKIPFLOW_DATABASE_URL: database.url };
    child = spawnSkipflow(['serve', '--role', 'worker'], env);
    await eventually(async () => child!.output().includes('SkipFlow started'), 15_000);
    expect(child.output()).not.toMatch(/sk_live_/);
    expect(onlyJson(await skipflow(['workspace', 'list', '--json'], env)).workspaces).toEqual([]);
    child.process.kill('SIGTERM');
    await child.exited();
    child = spawnSkipflow(['serve', '--role', 'api', '--port', '0'], env);
    await child.waitForPort();
    expect(child.output()).toMatch(/sk_live_/);
    expect(onlyJson(await skipflow(['workspace', 'list', '--json'], env)).workspaces.map((w: { name: string }) => w.name)).toEqual(['Default']);
  });
});

it('refuses to create an empty database by accident, naming the path it looked at', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skipflow-nodb-'));
  const path = join(dir, 'typo.db');
  for (const args of [['workspace', 'list'], ['keys', 'list', '--workspace', 'a'.repeat(24)], ['credits', 'add', '--workspace', 'a'.repeat(24), '--amount', '1']]) {
    const res = await skipflow(args, { SKIPFLOW_DATABASE_URL: `sqlite:${path}` });
    expect(res.code, args.join(' ')).toBe(2);
    expect(res.stderr).toContain(path);
    const json = await skipflow([...args, '--json'], { SKIPFLOW_DATABASE_URL: `sqlite:${path}` });
    expect(onlyJson(json)).toMatchObject({ error_code: 'database_not_found', error: expect.stringContaining(path) });
  }
  expect(existsSync(path)).toBe(false);
  expect((await skipflow(['migrate', '--json'], { SKIPFLOW_DATABASE_URL: `sqlite:${path}` })).code).toBe(0);
  expect(existsSync(path)).toBe(true);
});

it('help lists the scopes and marks required options; usage errors exit 2', async () => {
  const help = await skipflow(['keys', 'create', '--help'], {});
  expect(help.code).toBe(0);
  for (const scope of ['workflows:read', 'workflows:write', 'workflows:delete', 'workflows:execute', 'executions:read', 'workspace:read']) expect(help.stdout).toContain(scope);
  expect(help.stdout).toMatch(/--workspace <id>\s+workspace id \(required\)/);
  expect(help.stdout).toMatch(/--scopes <list>[^(]*\(required\)\s*\n\s+--name/);
  expect(help.stdout).not.toMatch(/--name <name>[^\n]*\(required\)/);
  const missing = await skipflow(['keys', 'create', '--json'], {});
  expect(missing.code).toBe(2);
  expect(onlyJson(missing)).toMatchObject({ error_code: 'invalid_usage', error: expect.stringMatching(/--workspace/) });
  const userHelp = await skipflow(['--help'], {});
  for (const command of ['run', 'executions', 'workflows', 'workspace', 'keys', 'credits', 'serve', 'migrate']) expect(userHelp.stdout).toContain(command);
});
