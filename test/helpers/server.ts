import type { LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { type Config, loadConfig } from '../../src/config.js';
import { migrate } from '../../src/db/migrate.js';
import { type Db, type OpenOptions, openDb } from '../../src/db/open.js';
import { type Server, type StartOptions, startServer as startRealServer } from '../../src/server.js';
import { createWorkspaceWithKey } from '../../src/workspaces/create-workspace.js';
import { type BackendName, type TestDatabase, createTestDatabase } from './backends.js';
import { track } from './leaks.js';

// A real SkipFlow (API + worker) on a fresh database of the given backend. Tests talk
// to it through app.inject() (no socket) or, when they need the wire, by listening.

export interface TestServer {
  readonly server: Server;
  readonly database: TestDatabase;
  readonly config: Config;
  /** The Default workspace's all-scope key. */
  readonly apiKey: string;
  readonly workspaceId: string;
  request(opts: { method: string; url: string; key?: string | null; body?: unknown; headers?: Record<string, string> }): Promise<LightMyRequestResponse>;
  /** Another workspace with its own all-scope key. */
  createWorkspace(name?: string, credits?: number): Promise<{ workspaceId: string; apiKey: string }>;
  close(): Promise<void>;
}

export const silentLogger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export async function startTestServer(
  backend: BackendName,
  overrides: Partial<Config> = {},
  options: StartOptions = {},
): Promise<TestServer> {
  const database = await createTestDatabase(backend);
  const config = loadConfig({}, { databaseUrl: database.url, rateLimitPerMinute: 0, authFailuresPerMinute: 0, logLevel: 'silent', leaseMs: 2000, pollIntervalMs: 100, engineThread: false, ...overrides });
  const server = await startRealServer(config, { logger: silentLogger, listen: false, ...options });
  if (!server.bootstrapKey) throw new Error('expected a fresh database to bootstrap the Default workspace');
  const apiKey = server.bootstrapKey.api_key;
  const app = server.app!;
  const closeAll = async () => {
    await server.close();
    await database.drop();
  };
  const untrack = track(`startTestServer(${backend})`, closeAll);
  return {
    server,
    database,
    config,
    apiKey,
    workspaceId: server.bootstrapKey.workspace_id,
    request: ({ method, url, key, body, headers }) =>
      app.inject({
        method: method as 'GET',
        url,
        headers: {
          ...(key === null ? {} : { authorization: `Bearer ${key ?? apiKey}` }),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      }),
    createWorkspace: async (name = 'Other', credits = 1000) => {
      const created = await server.deps.db.db
        .transaction()
        .execute((trx) => createWorkspaceWithKey(trx, { name, credits, now: Date.now() }));
      return { workspaceId: created.workspace_id, apiKey: created.api_key };
    },
    close: async () => {
      untrack();
      await closeAll();
    },
  };
}

/** Polls until `check` returns a truthy value or the time runs out. */
export async function eventually<T>(check: () => Promise<T | undefined | null | false>, timeoutMs = 10_000, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Waits a fixed time on purpose: to show that something does NOT happen meanwhile (no
 * condition wait can prove an absence), or to let wall-clock time pass (an expiry, a
 * due time). Waiting for something to happen is `eventually`'s job. */
export function settle(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** src/server.ts's startServer, tracked until closed (test/helpers/leaks.ts). */
export async function startServer(config: Config, options: StartOptions = {}): Promise<Server> {
  const server = await startRealServer(config, options);
  const close = server.close.bind(server);
  const untrack = track(`startServer(role ${config.role})`, close);
  return Object.assign(server, {
    close: () => {
      untrack();
      return close();
    },
  });
}

/** src/db/open.ts's openDb, tracked until closed. */
export function openTestDb(url: string, options: OpenOptions = {}): Db {
  const db = openDb(url, options);
  const close = db.close.bind(db);
  const untrack = track(`openDb(${url.split(':')[0]})`, close);
  return Object.assign(db, {
    close: () => {
      untrack();
      return close();
    },
  });
}

/** Opens and migrates a database directly (for tests that inspect rows). */
export async function openMigrated(url: string): Promise<Db> {
  const db = openTestDb(url, { poolSize: 4 });
  await migrate(db);
  return db;
}
