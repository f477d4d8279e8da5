import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret } from '../src/api-keys/secret.js';
import type { Db } from '../src/db/open.js';
import { type TestDatabase, createTestDatabase, describeEachBackend } from './helpers/backends.js';
import { type TestServer, openTestDb, startTestServer } from './helpers/server.js';

// docs/api.md#command-line: the `skipflow` binary. Every data command prints exactly one JSON object
// with --json; bad input exits non-zero with a message on stderr; `serve` bootstraps
// the Default workspace exactly once, even when processes race; the CLI writes
// beside a running server.

const ROOT = join(import.meta.dirname, '..');
const MAIN = join(ROOT, 'dist', 'cli', 'main.js');
const run = promisify(execFile);
const ALL_SCOPES = ['workflows:read', 'workflows:write', 'workflows:delete', 'workflows:execute', 'executions:read', 'workspace:read', 'secrets:read', 'secrets:write'];
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$/;
const SECRET = /sk_live_[0-9A-Za-z]{43}/g;

async function newestMtime(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}

/** `npm test` builds first; when run alone, build if dist is missing or older than src. */
async function ensureBuilt(): Promise<void> {
  let built = 0;
  try {
    built = statSync(MAIN).mtimeMs;
  } catch {
    built = 0;
  }
  if (built >= (await newestMtime(join(ROOT, 'src')))) return;
  await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, timeout: 120_000 });
}

function cliEnv(url: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SKIPFLOW_DATABASE_URL: url, LOG_LEVEL: 'info' };
  for (const name of ['PORT', 'HOST', 'SKIPFLOW_RATE_LIMIT', 'SKIPFLOW_SMTP_URL', 'NODE_OPTIONS']) delete env[name];
  return env;
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(url: string, args: string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN, ...args], { env: cliEnv(url), timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number | string; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Runs a --json command: exit 0, exactly one JSON line on stdout. */
async function cliJson<T = Record<string, unknown>>(url: string, args: string[]): Promise<T> {
  const res = await cli(url, [...args, '--json']);
  expect(res.code, `skipflow ${args.join(' ')}: ${res.stderr}`).toBe(0);
  expect(res.stdout.endsWith('\n')).toBe(true);
  const lines = res.stdout.split('\n');
  expect(lines, res.stdout).toHaveLength(2);
  expect(lines[1]).toBe('');
  const value = JSON.parse(lines[0]!) as T;
  expect(typeof value === 'object' && value !== null && !Array.isArray(value)).toBe(true);
  return value;
}

async function expectFailure(url: string, args: string[], stderrPattern: RegExp): Promise<void> {
  const res = await cli(url, args);
  expect(res.code, `skipflow ${args.join(' ')} should fail`).toBe(2);
  // With --json the error is the one JSON object on stdout; without it stdout stays empty.
  if (args.includes('--json')) {
    const error = JSON.parse(res.stdout) as { error: string; error_code: string };
    expect(res.stdout.trim().split('\n')).toHaveLength(1);
    expect(error.error).toMatch(stderrPattern);
    expect(typeof error.error_code).toBe('string');
  } else expect(res.stdout).toBe('');
  expect(res.stderr).toMatch(stderrPattern);
  expect(res.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
}

/** A running `skipflow serve` whose stdout is collected. */
class ServeProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(url: string, args: string[]) {
    this.child = spawn(process.execPath, [MAIN, 'serve', ...args], { env: cliEnv(url), stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    this.child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  async started(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.stdout.includes('SkipFlow started')) {
      if (this.child.exitCode !== null) throw new Error(`serve exited ${this.child.exitCode}: ${this.stderr}${this.stdout}`);
      if (Date.now() > deadline) throw new Error(`serve did not start: ${this.stderr}${this.stdout}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  secrets(): string[] {
    return this.stdout.match(SECRET) ?? [];
  }
}

beforeAll(async () => {
  await ensureBuilt();
}, 180_000);

describeEachBackend('skipflow CLI', (backend) => {
  let database: TestDatabase;
  let url: string;
  let direct: Db;

  beforeAll(async () => {
    database = await createTestDatabase(backend);
    url = database.url;
  });
  afterAll(async () => {
    await direct?.close();
    await database?.drop();
  });

  let workspaceId: string;
  let allScopeKey: string;
  let createdKey: { key_id: string; api_key: string };

  it('migrate --json prints the applied migrations, then none', async () => {
    const first = await cliJson<{ applied: string[] }>(url, ['migrate']);
    expect(Object.keys(first)).toEqual(['applied']);
    expect(first.applied.length).toBeGreaterThan(0);
    for (const name of first.applied) expect(typeof name).toBe('string');
    const second = await cliJson(url, ['migrate']);
    expect(second).toEqual({ applied: [] });
    direct = openTestDb(url, { poolSize: 2 });
  });

  it('workspace create --json prints the workspace and an all-scope key', async () => {
    const out = await cliJson<{ workspace_id: string; name: string; credits: number; api_key: string; key_id: string; scopes: string[] }>(url, [
      'workspace', 'create', '--name', 'Acme Corp', '--credits', '250',
    ]);
    expect(Object.keys(out).sort()).toEqual(['api_key', 'credits', 'key_id', 'name', 'scopes', 'workspace_id']);
    expect(out.workspace_id).toMatch(/^[0-9a-f]{24}$/);
    expect(out.key_id).toMatch(/^[0-9a-f]{24}$/);
    expect(out.name).toBe('Acme Corp');
    expect(out.credits).toBe(250);
    expect(out.api_key).toMatch(/^sk_live_[0-9A-Za-z]{43}$/);
    expect([...out.scopes].sort()).toEqual([...ALL_SCOPES].sort());
    expect(out.scopes).toContain('workflows:delete');
    workspaceId = out.workspace_id;
    allScopeKey = out.api_key;

    const ws = await direct.db.selectFrom('workspaces').selectAll().where('id', '=', workspaceId).executeTakeFirstOrThrow();
    expect(ws.name).toBe('Acme Corp');
    expect(Number(ws.credits)).toBe(250);
    const key = await direct.db.selectFrom('api_keys').selectAll().where('id', '=', out.key_id).executeTakeFirstOrThrow();
    expect(key.secret_hash).toBe(hashSecret(out.api_key));
    expect(key.workspace_id).toBe(workspaceId);
  });

  it('workspace create defaults to 0 credits', async () => {
    const out = await cliJson<{ credits: number }>(url, ['workspace', 'create', '--name', 'Empty']);
    expect(out.credits).toBe(0);
  });

  it('keys create --json prints the key with its scopes and expiry', async () => {
    const before = Date.now();
    const out = await cliJson<{ key_id: string; api_key: string; scopes: string[]; workspace_id: string; expires_at: string | null }>(url, [
      'keys', 'create', '--workspace', workspaceId, '--scopes', 'workflows:read,workflows:execute', '--name', 'ci', '--expires-in-days', '30',
    ]);
    expect(Object.keys(out).sort()).toEqual(['api_key', 'expires_at', 'key_id', 'scopes', 'workspace_id']);
    expect(out.api_key).toMatch(/^sk_live_[0-9A-Za-z]{43}$/);
    expect(out.scopes).toEqual(['workflows:read', 'workflows:execute']);
    expect(out.workspace_id).toBe(workspaceId);
    expect(out.expires_at).toMatch(TIMESTAMP);
    const expires = Date.parse(out.expires_at!);
    const thirtyDays = 30 * 86_400_000;
    expect(expires).toBeGreaterThanOrEqual(Math.floor((before + thirtyDays) / 1000) * 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + thirtyDays);
    const row = await direct.db.selectFrom('api_keys').selectAll().where('id', '=', out.key_id).executeTakeFirstOrThrow();
    expect(row.secret_hash).toBe(hashSecret(out.api_key));
    expect(row.name).toBe('ci');
    expect(row.scopes.split(',').sort()).toEqual(['workflows:execute', 'workflows:read']);
    createdKey = out;

    const forever = await cliJson<{ expires_at: string | null; scopes: string[] }>(url, ['keys', 'create', '--workspace', workspaceId, '--scopes', 'workspace:read']);
    expect(forever.expires_at).toBeNull();
    expect(forever.scopes).toEqual(['workspace:read']);
  });

  it('keys list --json shows prefixes, never secrets', async () => {
    const res = await cli(url, ['keys', 'list', '--workspace', workspaceId, '--json']);
    expect(res.code).toBe(0);
    expect(res.stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(res.stdout).not.toMatch(SECRET);
    for (const secret of [allScopeKey, createdKey.api_key]) {
      expect(res.stdout).not.toContain(secret.slice('sk_live_'.length, 'sk_live_'.length + 12));
      expect(res.stdout).not.toContain(hashSecret(secret));
    }
    const out = JSON.parse(res.stdout) as { keys: Record<string, unknown>[] };
    expect(Object.keys(out)).toEqual(['keys']);
    expect(out.keys).toHaveLength(3);
    for (const key of out.keys) {
      expect(Object.keys(key).sort()).toEqual(['created_at', 'expires_at', 'key_id', 'last_used_at', 'name', 'prefix', 'revoked_at', 'scopes']);
      expect(key.created_at).toMatch(TIMESTAMP);
      expect(key.revoked_at).toBeNull();
      expect(String(key.prefix).length).toBeLessThan(20);
    }
    const ci = out.keys.find((k) => k.key_id === createdKey.key_id)!;
    expect(createdKey.api_key.startsWith(String(ci.prefix))).toBe(true);
    expect(ci.name).toBe('ci');
    expect(ci.scopes).toEqual(['workflows:read', 'workflows:execute']);
    expect(ci.expires_at).toMatch(TIMESTAMP);
  });

  it('keys revoke --json revokes the key', async () => {
    const out = await cliJson(url, ['keys', 'revoke', '--key', createdKey.key_id]);
    expect(out).toEqual({ key_id: createdKey.key_id, revoked: true });
    const row = await direct.db.selectFrom('api_keys').select('revoked_at').where('id', '=', createdKey.key_id).executeTakeFirstOrThrow();
    expect(row.revoked_at).not.toBeNull();
    const list = await cliJson<{ keys: { key_id: string; revoked_at: string | null }[] }>(url, ['keys', 'list', '--workspace', workspaceId]);
    expect(list.keys.find((k) => k.key_id === createdKey.key_id)!.revoked_at).toMatch(TIMESTAMP);
  });

  it('credits add --json prints the new balance', async () => {
    const out = await cliJson(url, ['credits', 'add', '--workspace', workspaceId, '--amount', '50']);
    expect(out).toEqual({ workspace_id: workspaceId, credits: 300 });
    const ws = await direct.db.selectFrom('workspaces').select('credits').where('id', '=', workspaceId).executeTakeFirstOrThrow();
    expect(Number(ws.credits)).toBe(300);
  });

  it('workspace update --max-concurrent N|none prints the workspace', async () => {
    const limited = await cliJson<Record<string, unknown>>(url, ['workspace', 'update', '--workspace', workspaceId, '--max-concurrent', '3']);
    expect(Object.keys(limited).sort()).toEqual(['created_at', 'credits', 'max_concurrent_executions', 'name', 'workspace_id']);
    expect(limited).toMatchObject({ workspace_id: workspaceId, name: 'Acme Corp', credits: 300, max_concurrent_executions: 3 });
    expect(limited.created_at).toMatch(TIMESTAMP);
    const row = await direct.db.selectFrom('workspaces').select('max_concurrent_executions').where('id', '=', workspaceId).executeTakeFirstOrThrow();
    expect(row.max_concurrent_executions).toBe(3);
    const unlimited = await cliJson(url, ['workspace', 'update', '--workspace', workspaceId, '--max-concurrent', 'none']);
    expect(unlimited).toMatchObject({ workspace_id: workspaceId, max_concurrent_executions: null });
  });

  it('an unknown workspace or key exits non-zero with a message on stderr and changes nothing', async () => {
    const unknown = '000000000000000000000000';
    await Promise.all([
      expectFailure(url, ['keys', 'create', '--workspace', unknown, '--scopes', 'workflows:read', '--json'], /workspace/),
      expectFailure(url, ['keys', 'revoke', '--key', unknown, '--json'], /key/),
      expectFailure(url, ['credits', 'add', '--workspace', 'not-an-id', '--amount', '5', '--json'], /workspace/),
      expectFailure(url, ['workspace', 'update', '--workspace', unknown, '--max-concurrent', '3', '--json'], /workspace/),
    ]);
    await expectFailure(url, ['keys', 'create', '--workspace', workspaceId, '--scopes', 'workflows:read,workflows:fly', '--json'], /workflows:fly/);
    const ws = await direct.db.selectFrom('workspaces').select(['credits', 'max_concurrent_executions']).where('id', '=', workspaceId).executeTakeFirstOrThrow();
    expect(Number(ws.credits)).toBe(300);
    expect(ws.max_concurrent_executions).toBeNull();
    const keys = await direct.db.selectFrom('api_keys').select('id').execute();
    expect(keys).toHaveLength(4); // two workspaces' keys + the two made by keys create
  });

  it('a bad configuration is a message, not a stack', async () => {
    await expectFailure('mysql://nope', ['migrate', '--json'], /SKIPFLOW_DATABASE_URL/);
  });
});

describeEachBackend('skipflow serve bootstrap', (backend) => {
  it('on an empty database prints the Default key once, and never again', async () => {
    const database = await createTestDatabase(backend);
    const first = new ServeProcess(database.url, ['--port', '0', '--role', 'api']);
    try {
      await first.started();
      const printed = first.secrets();
      expect(printed).toHaveLength(1);
      expect(first.stdout).toMatch(/Default/);
      await first.stop();
      const second = new ServeProcess(database.url, ['--port', '0', '--role', 'api']);
      try {
        await second.started();
        expect(second.secrets()).toEqual([]);
      } finally {
        await second.stop();
      }
      const db = openTestDb(database.url, { poolSize: 1 });
      try {
        const workspaces = await db.db.selectFrom('workspaces').selectAll().execute();
        expect(workspaces.map((w) => [w.name, Number(w.credits)])).toEqual([['Default', 1000]]);
        const keys = await db.db.selectFrom('api_keys').selectAll().execute();
        expect(keys).toHaveLength(1);
        expect(keys[0]!.secret_hash).toBe(hashSecret(printed[0]!));
        expect(keys[0]!.scopes.split(',').sort()).toEqual([...ALL_SCOPES].sort());
      } finally {
        await db.close();
      }
    } finally {
      await first.stop();
      await database.drop();
    }
  });

  if (backend === 'postgres') {
    it('two serve processes started at once on one PostgreSQL database create one Default workspace; one prints a key', async () => {
      const database = await createTestDatabase(backend);
      const processes = [
        new ServeProcess(database.url, ['--port', '0', '--role', 'api']),
        new ServeProcess(database.url, ['--port', '0', '--role', 'api']),
      ];
      try {
        await Promise.all(processes.map((p) => p.started()));
        const printed = processes.map((p) => p.secrets());
        expect(printed.map((s) => s.length).sort()).toEqual([0, 1]);
        const db = openTestDb(database.url, { poolSize: 1 });
        try {
          const workspaces = await db.db.selectFrom('workspaces').select(['name']).execute();
          expect(workspaces).toEqual([{ name: 'Default' }]);
          const keys = await db.db.selectFrom('api_keys').select('secret_hash').execute();
          expect(keys).toEqual([{ secret_hash: hashSecret(printed.flat()[0]!) }]);
        } finally {
          await db.close();
        }
      } finally {
        await Promise.all(processes.map((p) => p.stop()));
        await database.drop();
      }
    });
  }
});

describeEachBackend('the CLI beside a running server', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(backend);
  });
  afterAll(() => t?.close());

  it('keys create, credits add and keys revoke write beside the running server', async () => {
    const url = t.database.url;
    const key = await cliJson<{ key_id: string; api_key: string }>(url, ['keys', 'create', '--workspace', t.workspaceId, '--scopes', 'workspace:read']);
    const withNewKey = await t.request({ method: 'GET', url: '/api/v1/workspace', key: key.api_key });
    expect(withNewKey.statusCode).toBe(200);
    expect(withNewKey.json().credits).toBe(1000);
    expect((await t.request({ method: 'GET', url: '/api/v1/workflows', key: key.api_key })).statusCode).toBe(403);

    // The CLI adds credits while the server is busy writing.
    const wf = await t.request({ method: 'POST', url: '/api/v1/workflows', body: { name: 'busy', steps: [{ type: 'transform', expression: '1' }] } });
    const busy = Promise.all(Array.from({ length: 10 }, () => t.request({ method: 'POST', url: `/api/v1/workflows/${wf.json().id}/run-async` })));
    const added = await cliJson(url, ['credits', 'add', '--workspace', t.workspaceId, '--amount', '25']);
    const runs = await busy;
    expect(runs.map((r) => r.statusCode)).toEqual(Array(10).fill(202));
    expect(added).toEqual({ workspace_id: t.workspaceId, credits: expect.any(Number) });
    const after = (await t.request({ method: 'GET', url: '/api/v1/workspace' })).json();
    expect(after.credits).toBe(1000 + 25 - 10);

    // keys revoke from the CLI lands in the server's database (auth.test.ts measures
    // how fast a revocation written by another process takes effect).
    await cliJson(url, ['keys', 'revoke', '--key', key.key_id]);
    const row = await t.server.deps.db.db.selectFrom('api_keys').select('revoked_at').where('id', '=', key.key_id).executeTakeFirstOrThrow();
    expect(row.revoked_at).not.toBeNull();
  });
});

describe('skipflow argument errors', () => {
  let database: TestDatabase;
  let workspaceId: string;
  beforeAll(async () => {
    database = await createTestDatabase('sqlite');
    await cliJson(database.url, ['migrate']); // the other commands never create a database
    workspaceId = (await cliJson<{ workspace_id: string }>(database.url, ['workspace', 'create', '--name', 'Args', '--credits', '1'])).workspace_id;
  });
  afterAll(() => database?.drop());

  it('bad arguments exit non-zero with a message on stderr, and nothing is written', async () => {
    const url = database.url;
    await Promise.all([
      expectFailure(url, ['keys', 'create', '--workspace', workspaceId, '--scopes', 'workflows:read,workflows:fly', '--json'], /unknown scope "workflows:fly"/),
      expectFailure(url, ['keys', 'create', '--workspace', workspaceId, '--scopes', ',', '--json'], /scope/),
      expectFailure(url, ['keys', 'create', '--workspace', workspaceId, '--scopes', 'workflows:read', '--expires-in-days', '0', '--json'], /expires-in-days/),
      expectFailure(url, ['credits', 'add', '--workspace', workspaceId, '--amount', 'lots', '--json'], /amount/),
      expectFailure(url, ['credits', 'add', '--workspace', workspaceId, '--json'], /amount/),
      expectFailure(url, ['workspace', 'update', '--workspace', workspaceId, '--max-concurrent', '0', '--json'], /max-concurrent/),
      expectFailure(url, ['workspace', 'create', '--name', '', '--json'], /name/),
      expectFailure(url, ['frobnicate'], /unknown command/i),
    ]);
    const db = openTestDb(url);
    try {
      expect(await db.db.selectFrom('workspaces').select(['credits', 'max_concurrent_executions']).execute()).toEqual([{ credits: 1, max_concurrent_executions: null }]);
      expect(await db.db.selectFrom('api_keys').select('id').execute()).toHaveLength(1);
    } finally {
      await db.close();
    }
  });
});

describe('skipflow --help', () => {
  it('lists the commands', async () => {
    const res = await cli('sqlite::memory:', ['--help']);
    expect(res.code).toBe(0);
    for (const command of ['serve', 'migrate', 'workspace', 'keys', 'credits']) expect(res.stdout).toContain(command);
  });
});
