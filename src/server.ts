import { createAuthFailureLimiter } from './api-keys/auth-failure-limiter.js';
import { KeyVerifier } from './api-keys/key-verifier.js';
import { bootstrapDefaultWorkspace } from './bootstrap.js';
import type { Config } from './config.js';
import { migrate } from './db/migrate.js';
import { type Db, openDb } from './db/open.js';
import type { AppDeps } from './deps.js';
import { type EngineThread, startEngineThread } from './engine/engine-host.js';
import type { Signals } from './db/signals.js';
import { Worker } from './engine/worker.js';
import { type App, buildApp } from './http/app.js';
import { purgeExpiredKeys } from './idempotency/idempotency.js';
import { type Clock, HOUR_MS, systemClock } from './lib/time.js';
import { createLogger } from './logger.js';
import { createRateLimiter } from './rate-limit/rate-limiter.js';
import { ScheduleRunner, databaseTime } from './schedules/schedule-runner.js';
import { DeliveryWorker } from './notifications/delivery-worker.js';
import { Pruner } from './retention/prune.js';
import type { Logger } from 'pino';
import { verifySecretKey } from './secrets/key-check.js';
import { ensureSecretKey } from './secrets/secret-key.js';

// The composition root: configuration → database → migrations → the API and/or the
// workers, by role. Nothing below this file reads the environment or builds its own
// dependencies.

export interface Server {
  readonly app: App | null;
  /** The engine when it runs on this thread (role `worker`, or `all` without its own thread). */
  readonly worker: Worker | null;
  /** The engine when it runs on its own thread (role `all`, the default). */
  readonly engineThread: EngineThread | null;
  readonly deps: AppDeps;
  /** Fires schedule ticks (every process that runs workers). */
  readonly scheduler: ScheduleRunner | null;
  /** The sender of completion notifications (worker and all processes). */
  readonly deliveries: DeliveryWorker | null;
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
  // Only a process that serves the API creates the Default workspace and prints its
  // key: a worker's log is rarely where an operator looks for it.
  const created = config.role === 'all' || config.role === 'api' ? await bootstrapDefaultWorkspace(db, clock) : null;
  let secretKey;
  try {
    secretKey = ensureSecretKey(config, logger);
    await verifySecretKey(db, secretKey);
  } catch (error) {
    await db.close();
    throw error;
  }
  const signals = options.signals ?? (await db.createSignals(logger));
  const keys = new KeyVerifier(db, clock);
  const deps: AppDeps = { config, db, clock, logger, keys, rateLimiter: createRateLimiter(db, config.rateLimitPerMinute, clock), authFailures: createAuthFailureLimiter(clock, config.authFailuresPerMinute), signals, secretKey };

  const runsApi = config.role === 'all' || config.role === 'api';
  const runsWorker = config.role === 'all' || config.role === 'worker';
  const app = runsApi ? await buildApp(deps) : null;
  // A thread cannot share an injected clock or signals object: tests that inject them
  // run the engine on this thread.
  const threaded = runsWorker && runsApi && config.engineThread && !options.clock && !options.signals;
  const engineThread = threaded ? await startEngineThread({ config, logger, signals, pretty: Boolean(process.stdout.isTTY) }) : null;
  const worker = runsWorker && !threaded ? Worker.fromConfig(config, { db, clock, logger, signals }) : null;
  worker?.start();
  // Fire times are compared with the database's clock unless a test injects one.
  const scheduler = runsWorker
    ? new ScheduleRunner({ db, clock, logger, signals }, { now: options.clock ? async () => clock.now() : () => databaseTime(db), recheckMs: Math.min(5000, config.pollIntervalMs * 10) })
    : null;
  scheduler?.start();
  // Notifications and retention run where the engine's work runs (on this thread).
  const deliveries = runsWorker ? new DeliveryWorker({ db, clock, logger, allowPrivateNetwork: config.allowPrivateNetwork, pollIntervalMs: config.pollIntervalMs }) : null;
  deliveries?.start();
  const pruner = runsWorker ? new Pruner({ db, clock, logger, retentionDays: config.retentionDays }) : null;
  pruner?.start();
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
      await scheduler?.stop();
      await worker?.stop();
      await deliveries?.stop();
      await pruner?.stop();
      await engineThread?.stop();
      await keys.close();
      await signals.close();
      await db.close();
    })());
  return { app, worker, engineThread, deps, scheduler, deliveries, bootstrapKey: created ? { workspace_id: created.workspace_id, api_key: created.api_key } : null, close };
}
