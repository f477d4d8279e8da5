import { sql } from 'kysely';
import type { AppDeps } from '../deps.js';
import { HOUR_MS } from '../lib/time.js';
import { earliestFireTime, fireDueSchedules, pruneTicks, type TickOutcome } from './fire-schedules.js';

// Wakes for the earliest stored fire time, like the engine wakes for its earliest
// sleeper: one timer, re-armed after every round from what the database says. A
// create or edit on any process signals "work available" (LISTEN/NOTIFY across
// PostgreSQL processes) and makes every runner re-read it; a slow re-check covers a
// lost notification. croner computes fire times; its timers are never used.
//
// Time: `now()` is the database's clock in production, so processes with skewed clocks
// agree on what is due; tests inject their own.

type Deps = Pick<AppDeps, 'db' | 'clock' | 'signals' | 'logger'>;

/** The database's clock, epoch ms: what every process compares fire times with. */
export async function databaseTime(db: AppDeps['db']): Promise<number> {
  const { rows } = await sql<{ now: number }>`select ${db.nowMs()} as now`.execute(db.db);
  return Number(rows[0]!.now);
}

export interface ScheduleRunnerOptions {
  now(): Promise<number>;
  /** Longest time between two looks at the database when nothing is due sooner. */
  recheckMs: number;
}

/** Fewest milliseconds between two rounds prompted by signals. */
const SIGNAL_ROUND_MS = 200;
/** Longest single timer (setTimeout overflows past ~24.8 days). */
const MAX_TIMER_MS = 3_600_000;

export class ScheduleRunner {
  #state: 'idle' | 'running' | 'stopped' = 'idle';
  #timer: NodeJS.Timeout | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #unsubscribe: (() => void) | null = null;
  #waiting = false;
  #signalTimer: NodeJS.Timeout | undefined;
  #lastRoundAt = 0;
  #prunedAt = 0;

  constructor(
    private readonly deps: Deps,
    private readonly options: ScheduleRunnerOptions,
  ) {}

  start(): void {
    if (this.#state !== 'idle') return;
    this.#state = 'running';
    // Every execution start signals too, thousands a second under load: coalesce them
    // into at most one round per SIGNAL_ROUND_MS (an edit still applies well within a second).
    this.#unsubscribe = this.deps.signals.onWorkAvailable(() => {
      if (this.#waiting || this.#signalTimer) return;
      const wait = Math.max(0, this.#lastRoundAt + SIGNAL_ROUND_MS - Date.now());
      this.#signalTimer = setTimeout(() => {
        this.#signalTimer = undefined;
        void this.runOnce();
      }, wait);
      this.#signalTimer.unref();
    });
    void this.runOnce();
  }

  async stop(): Promise<void> {
    this.#state = 'stopped';
    this.#unsubscribe?.();
    clearTimeout(this.#timer);
    clearTimeout(this.#signalTimer);
    await this.#queue;
  }

  /** One round (after any round in progress): fires what is due, then re-arms the timer. */
  runOnce(): Promise<TickOutcome[]> {
    this.#waiting = true;
    const round = this.#queue.then(() => {
      this.#waiting = false;
      return this.#round();
    });
    this.#queue = round.catch(() => undefined);
    return round;
  }

  async #round(): Promise<TickOutcome[]> {
    if (this.#state !== 'running') return [];
    this.#lastRoundAt = Date.now();
    let outcomes: TickOutcome[] = [];
    let wait = this.options.recheckMs;
    try {
      const now = await this.options.now();
      outcomes = await fireDueSchedules(this.deps, now);
      if (now - this.#prunedAt >= HOUR_MS) {
        this.#prunedAt = now;
        await pruneTicks(this.deps, now);
      }
      const next = await earliestFireTime(this.deps);
      if (next !== null) wait = Math.min(wait, Math.max(0, next - (await this.options.now())) + 5);
    } catch (err) {
      this.deps.logger.error({ err }, 'firing schedules failed; retrying shortly');
      wait = Math.min(wait, 250);
    }
    this.#arm(wait);
    return outcomes;
  }

  #arm(ms: number): void {
    if (this.#state !== 'running') return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.runOnce(), Math.min(ms, MAX_TIMER_MS));
    this.#timer.unref();
  }
}
