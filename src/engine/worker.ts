import { createChildExecutions } from '../executions/child-executions.js';
import { createSecretSource } from '../secrets/secret-source.js';
import { loadSecretKey } from '../secrets/secret-key.js';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Db } from '../db/open.js';
import type { Clock } from '../lib/time.js';
import { versionSteps } from '../workflows/version-cache.js';
import { Checkpointer } from './checkpoint.js';
import { type ClaimedExecution, claimBatch, nextWakeDelay, releaseLeases, tick } from './lease.js';
import { runExecution } from './run-execution.js';
import type { Signals } from '../db/signals.js';
import type { StepServices } from './steps/step-type.js';

// A worker runs at most `concurrency` executions at once. It claims due executions
// in batches whenever it has free slots and something may be due: at once when new
// work is signalled, when one of its executions ends, when the earliest sleeper is
// due, and on a slow poll as the fallback. A sleeping execution holds no slot and no
// memory: it is a row with an `available_at` in the future. One timer tracks the
// earliest wake-up: when it fires (and at start), the worker asks the database for
// the next one, so later sleepers — its own, those left by a previous process — wake
// on time without waiting for the poll.
//
// Lifecycle: idle → running (start) → draining (stop: no new claims, in-flight
// executions get `graceMs` to finish) → stopped (the rest are aborted and their
// leases handed back so another process can take them at once).

export interface WorkerOptions {
  readonly db: Db;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly signals: Signals;
  readonly concurrency: number;
  readonly leaseMs: number;
  readonly pollIntervalMs: number;
  readonly services: StepServices;
}

const MAX_BATCH = 100;
/** The worker's tick: how often a busy worker checks whether any of its executions
 * was stopped by another process or taken over (a stop made in this process is
 * signalled at once), so a step in flight is aborted within a second wherever it
 * runs. Every few ticks (a third of the lease) the same tick renews the leases. */
const TICK_MS = 400;
/** How soon a failed claim is tried again. */
const RETRY_CLAIM_MS = 250;
/** Longest single wake timer (setTimeout overflows past ~24.8 days); it re-arms. */
const MAX_TIMER_MS = 3_600_000;

export class Worker {
  readonly id = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  readonly #running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  readonly #checkpoints: Checkpointer;
  readonly #unsubscribe: Array<() => void> = [];
  #state: 'idle' | 'running' | 'draining' | 'stopped' = 'idle';
  #fillScheduled = false;
  #filling = false;
  #fillAgain = false;
  /** Settles when the fill in progress (if any) has launched what it claimed. */
  #fillIdle: Promise<void> = Promise.resolve();
  #pollTimer: NodeJS.Timeout | undefined;
  #tickTimer: NodeJS.Timeout | undefined;
  #ticking = false;
  #renewedAt = 0;
  #wakeTimer: NodeJS.Timeout | undefined;
  #wakeAt = Infinity;
  /** Ask the database when the next sleeper is due, after the next claim round. */
  #lookAhead = true;

  static fromConfig(config: Config, deps: Pick<WorkerOptions, 'db' | 'clock' | 'logger' | 'signals'>): Worker {
    return new Worker({
      ...deps,
      concurrency: config.workerConcurrency,
      leaseMs: config.leaseMs,
      pollIntervalMs: config.pollIntervalMs,
      services: {
        allowPrivateNetwork: config.allowPrivateNetwork,
        smtpUrl: config.smtpUrl,
        maxResultBytes: config.maxResultBytes,
        maxExecutionResultBytes: config.maxExecutionResultBytes,
        secrets: createSecretSource(deps.db, loadSecretKey(config)),
        children: createChildExecutions(deps),
      },
    });
  }

  constructor(private readonly options: WorkerOptions) {
    this.#checkpoints = new Checkpointer(options.db, options.logger);
  }

  get activeExecutions(): number {
    return this.#running.size;
  }

  start(): void {
    if (this.#state !== 'idle') return;
    this.#state = 'running';
    const { signals, pollIntervalMs, leaseMs } = this.options;
    // New work may not be due yet by the database's clock (which the claim compares
    // with) even though it is by ours: the look-ahead then times the retry by the
    // database's clock instead of leaving it to the poll.
    this.#unsubscribe.push(
      signals.onWorkAvailable(() => {
        this.#lookAhead = true;
        this.#requestFill();
      }),
    );
    this.#unsubscribe.push(signals.onStopRequested((id) => this.#running.get(id)?.controller.abort()));
    this.#pollTimer = setInterval(() => this.#requestFill(), pollIntervalMs);
    this.#tickTimer = setInterval(() => void this.#tick(), Math.min(TICK_MS, Math.max(100, Math.floor(leaseMs / 3))));
    this.#renewedAt = this.options.clock.now();
    this.#requestFill();
  }

  /** Stops claiming, lets in-flight executions finish for up to graceMs, then aborts
   * the rest and hands their leases back. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.#state !== 'running') return;
    this.#state = 'draining';
    for (const off of this.#unsubscribe.splice(0)) off();
    clearInterval(this.#pollTimer);
    clearTimeout(this.#wakeTimer);
    // A claim already in flight launches what it took; those are drained like the rest.
    await this.#fillIdle;
    const all = () => Promise.all([...this.#running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all(), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    for (const { controller } of this.#running.values()) controller.abort();
    await all();
    clearInterval(this.#tickTimer);
    await releaseLeases(this.options.db, this.id).catch((err: unknown) => this.options.logger.warn({ err }, 'could not release leases'));
    this.#state = 'stopped';
  }

  #requestFill(): void {
    if (this.#fillScheduled || this.#state !== 'running') return;
    this.#fillScheduled = true;
    setImmediate(() => {
      this.#fillScheduled = false;
      void this.#fill();
    });
  }

  async #fill(): Promise<void> {
    if (this.#filling) {
      this.#fillAgain = true;
      return;
    }
    this.#filling = true;
    let idle!: () => void;
    this.#fillIdle = new Promise((resolve) => (idle = resolve));
    try {
      do {
        this.#fillAgain = false;
        while (this.#state === 'running') {
          const wanted = Math.min(this.options.concurrency - this.#running.size, MAX_BATCH);
          if (wanted <= 0) break;
          const batch = await claimBatch(this.options.db, { owner: this.id, limit: wanted, leaseMs: this.options.leaseMs });
          for (const claimed of batch) this.#launch(claimed);
          if (batch.length < wanted) break;
        }
        if (this.#lookAhead && this.#state === 'running') {
          this.#lookAhead = false;
          const delay = await nextWakeDelay(this.options.db);
          if (delay !== null) this.#wakeFor(this.options.clock.now() + Math.max(0, delay));
        }
      } while (this.#fillAgain && this.#state === 'running');
    } catch (err) {
      this.#lookAhead = true;
      // Try again soon rather than at the next poll, which may be far off: a failed
      // claim (a lock timeout, a dropped connection) must not leave due work waiting.
      this.options.logger.error({ err }, 'claiming executions failed; retrying shortly');
      setTimeout(() => this.#requestFill(), Math.min(RETRY_CLAIM_MS, this.options.pollIntervalMs)).unref();
    } finally {
      this.#filling = false;
      idle();
    }
  }

  #launch(claimed: ClaimedExecution): void {
    const controller = new AbortController();
    const { clock, logger, db } = this.options;
    const deps = { clock, logger, db, checkpoints: this.#checkpoints, services: this.options.services, onSleep: (until: number) => this.#wakeFor(until) };
    const done = versionSteps(db.db, claimed.version_id)
      .then(async (defs) => {
        await runExecution(deps, claimed, defs, controller.signal);
      })
      .catch((err: unknown) => {
        // The lease will expire and another claim will pick the execution up again.
        logger.error({ err, executionId: claimed.id }, 'execution run failed; it will be retried after its lease expires');
      })
      .finally(() => {
        // The same execution may already be claimed again (a zero-length backoff).
        if (this.#running.get(claimed.id)?.done === done) this.#running.delete(claimed.id);
        this.#requestFill();
      });
    this.#running.set(claimed.id, { controller, done });
  }

  /** Wakes the worker when the earliest known sleeper is due; the look-ahead then finds the next. */
  #wakeFor(until: number): void {
    if (until >= this.#wakeAt || this.#state !== 'running') return;
    this.#wakeAt = until;
    clearTimeout(this.#wakeTimer);
    this.#wakeTimer = setTimeout(() => {
      this.#wakeAt = Infinity;
      this.#lookAhead = true;
      this.#requestFill();
    }, Math.min(MAX_TIMER_MS, Math.max(0, until - this.options.clock.now())));
    this.#wakeTimer.unref();
  }

  /** Renews the leases (every third of the lease) and aborts the executions this
   * worker lost: stopped, finished or taken over elsewhere (their writes would be
   * fenced anyway). One statement pair, in id order like every other writer. */
  async #tick(): Promise<void> {
    if (this.#ticking || this.#running.size === 0) return;
    this.#ticking = true;
    const { db, leaseMs, clock, logger } = this.options;
    try {
      const renew = clock.now() - this.#renewedAt >= leaseMs / 3;
      if (renew) this.#renewedAt = clock.now();
      const lost = await tick(db, { owner: this.id, ids: [...this.#running.keys()], renewMs: renew ? leaseMs : null });
      for (const id of lost) this.#running.get(id)?.controller.abort();
    } catch (err) {
      logger.warn({ err }, 'worker tick failed (lease renewal, stop check)');
    } finally {
      this.#ticking = false;
    }
  }
}
