import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, type Server, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type TestDatabase, createTestDatabase, describeEachBackend } from './helpers/backends.js';
import { CLI } from './helpers/child.js';
import { closedPort } from './helpers/net.js';
import { openMigrated } from './helpers/server.js';

// Every start-up failure ends the process non-zero with one line on stderr that names
// the cause — never a hang, never a stack trace. Each case spawns the built CLI; a
// process still alive after HANG_MS is killed and the case fails (a hang detector,
// not a timing assertion: each failure is expected within a second or, for a silent
// database, just after the 5 s database deadline).

const HANG_MS = 20_000;

interface Ended {
  code: number | null;
  stderr: string;
  stdout: string;
}

async function runUntilExit(args: string[], env: Record<string, string>): Promise<Ended> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const hang = setTimeout(() => child.kill('SIGKILL'), HANG_MS);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(hang);
  if (signal === 'SIGKILL') throw new Error(`skipflow ${args.join(' ')} hung for ${HANG_MS} ms:\n${stdout}${stderr}`);
  return { code, stderr, stdout };
}

function expectOneLine(ended: Ended, cause: RegExp): void {
  expect(ended.code, ended.stderr + ended.stdout).not.toBe(0);
  const lines = ended.stderr.split('\n').filter((line) => line.trim() !== '');
  expect(lines, ended.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^skipflow: /);
  expect(lines[0]).toMatch(cause);
  expect(lines[0]).not.toMatch(/\bat .*\.js:\d+/);
}

describe('start-up failures that need no database', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('an SQLite path whose directory cannot be created (under /proc)', async () => {
    const ended = await runUntilExit(['serve', '--port', '0'], { SKIPFLOW_DATABASE_URL: 'sqlite:/proc/nonexistent/x.db' });
    expectOneLine(ended, /SQLite database \/proc\/nonexistent\/x\.db: its directory \/proc\/nonexistent cannot be created \(ENOENT\)/);
  });

  it('skipflow migrate with the same path', async () => {
    const ended = await runUntilExit(['migrate'], { SKIPFLOW_DATABASE_URL: 'sqlite:/proc/nonexistent/x.db' });
    expectOneLine(ended, /directory \/proc\/nonexistent cannot be created/);
  });

  it('an SQLite path that is a directory', async () => {
    dir = mkdtempSync(join(tmpdir(), 'skipflow-start-'));
    const ended = await runUntilExit(['serve', '--port', '0'], { SKIPFLOW_DATABASE_URL: `sqlite:${dir}` });
    expectOneLine(ended, /cannot open the SQLite database .*: unable to open database file \(SQLITE_CANTOPEN\)/);
  });

  it('PostgreSQL refusing connections', async () => {
    const port = await closedPort();
    const ended = await runUntilExit(['serve', '--port', '0'], { SKIPFLOW_DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/x` });
    expectOneLine(ended, new RegExp(`PostgreSQL at 127\\.0\\.0\\.1:${port}/x: connection refused`));
  });

  it('a PostgreSQL address that accepts connections and never answers', async () => {
    const silent: Server = createServer(() => {}); // takes the socket, says nothing
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const port = (silent.address() as AddressInfo).port;
      const ended = await runUntilExit(['serve', '--port', '0'], { SKIPFLOW_DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/x` });
      expectOneLine(ended, /cannot reach PostgreSQL at .*: it did not answer within 5 s/);
    } finally {
      silent.close();
    }
  });

  it.each([
    [{ PORT: 'eighty' }, /PORT must be an integer between 0 and 65535, got "eighty"/],
    [{ SKIPFLOW_WORKER_CONCURRENCY: '0' }, /SKIPFLOW_WORKER_CONCURRENCY must be an integer/],
    [{ SKIPFLOW_DATABASE_URL: 'mysql://x' }, /SKIPFLOW_DATABASE_URL must be sqlite:PATH or postgres/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL must be one of/],
  ])('a bad variable %o', async (env, cause) => {
    const ended = await runUntilExit(['serve', '--port', '0'], env as Record<string, string>);
    expectOneLine(ended, cause);
  });
});

describeEachBackend('start-up failures', (backend) => {
  let database: TestDatabase | undefined;
  let busy: Server | undefined;
  afterEach(async () => {
    busy?.close();
    await database?.drop();
    database = undefined;
    busy = undefined;
  });

  it('a port already in use', async () => {
    database = await createTestDatabase(backend);
    busy = createServer();
    busy.listen(0, '127.0.0.1');
    await once(busy, 'listening');
    const port = (busy.address() as AddressInfo).port;
    const ended = await runUntilExit(['serve', '--port', String(port)], { SKIPFLOW_DATABASE_URL: database.url });
    expectOneLine(ended, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use`));
    // Refused before the database was touched: the Default workspace (whose key is
    // printed once) was not created, so the next start that succeeds prints its key.
    const db = await openMigrated(database.url);
    try {
      expect(await db.db.selectFrom('workspaces').select('id').execute()).toEqual([]);
    } finally {
      await db.close();
    }
  });
});
