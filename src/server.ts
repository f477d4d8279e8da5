import { createAuthFailureLimiter } from './api-keys/auth-failure-limiter.js';
import { KeyVerifier } from './api-keys/key-verifier.js';
import { bootstrapDefaultWorkspace } from './bootstrap.js';
import type { Config } from './config.js';
import { migrate } from './db/migrate.js';
import { type Db, openDb } from './db/open.js';
import type { AppDeps } from './deps.js';
import { PgSignals } from './engine/pg-signals.js';
import { LocalSignals, type Signals } from './engine/signals.js';
import { Worker } from './engine/worker.js';
import { type App, buildApp } from './http/app.js';
import { purgeExpiredKeys } from './idempotency/idempotency.js';
import { type Clock, HOUR_MS, systemClock } from './lib/time.js';
import { createLogger } from './logger.js';
import { createRateLimiter } from './rate-limit/rate-limiter.js';
import type { Logger } from 'pino';

// The composition root: configuration → database → migrations → the API and/or the
// workers, by role. Nothing below this file reads the environment or builds its own
// dependencies.

export interface Server {
  readonly app: App | null;
  readonly worker: Worker | null;
  readonly deps: AppDeps;
  /** The Default workspace's key when this start created it (printed once). */
  readonly bootstrapKey: { workspace_id: string; api_key: string } | null;
  close(): Promise<void>;
}

export interface StartOptions {
  clock?: Clock;
  logger?: Logger;
  signals?: Signals;
  /** Skip listening (tests drive the app with inject()). */
  listen?: boolean;
}

/** Stops accepting, lets in-flight requests finish, and does not wait on keep-alive
 * connections: Node closes the idle ones only once, so a connection that finishes its
 * request during the drain would otherwise hold the close for the keep-alive timeout. */
async function closeApp(app: App | null): Promise<void> {
  if (!app) return;
  const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
  const force = setTimeout(() => app.server.closeAllConnections(), 10_000);
  try {
    await app.close();
  } finally {
    clearInterval(sweep);
    clearTimeout(force);
  }
}

export async function startServer(config: Config, options: StartOptions = {}): Promise<Server> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const clock = options.clock ?? systemClock;
  const db: Db = openDb(config.databaseUrl, { poolSize: 20 });
  await migrate(db);
  const created = await bootstrapDefaultWorkspace(db, clock);
  const signals = options.signals ?? (db.pool ? new PgSignals(db.pool, config.databaseUrl, logger) : new LocalSignals());
  if (signals instanceof PgSignals) await signals.start();
  const keys = new KeyVerifier(db, clock);
  const deps: AppDeps = { config, db, clock, logger, keys, rateLimiter: createRateLimiter(db, config.rateLimitPerMinute, clock), authFailures: createAuthFailureLimiter(clock, config.authFailuresPerMinute), signals };

  const runsApi = config.role === 'all' || config.role === 'api';
  const runsWorker = config.role === 'all' || config.role === 'worker';
  const app = runsApi ? await buildApp(deps) : null;
  const worker = runsWorker
    ? new Worker({ db, clock, logger, signals, concurrency: config.workerConcurrency, leaseMs: config.leaseMs, pollIntervalMs: config.pollIntervalMs, services: { allowPrivateNetwork: config.allowPrivateNetwork, smtpUrl: config.smtpUrl, maxResultBytes: config.maxResultBytes, maxExecutionResultBytes: config.maxExecutionResultBytes } })
    : null;
  worker?.start();
  if (app && options.listen !== false) await app.listen({ port: config.port, host: config.host });

  const purge = () => purgeExpiredKeys(db.db, clock.now()).catch((err: unknown) => logger.warn({ err }, 'purging idempotency keys failed'));
  void purge();
  const purgeTimer = setInterval(() => void purge(), HOUR_MS);
  purgeTimer.unref();

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      clearInterval(purgeTimer);
      await closeApp(app);
      await worker?.stop();
      await keys.close();
      await signals.close();
      await db.close();
    })());
  return { app, worker, deps, bootstrapKey: created ? { workspace_id: created.workspace_id, api_key: created.api_key } : null, close };
}
