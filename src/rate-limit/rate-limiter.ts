import { sql } from 'kysely';
import type { Db } from '../db/open.js';
import type { Clock } from '../lib/time.js';

// docs/api.md#limits: a fixed 60-second window per workspace, shared by all its keys and by all
// api processes on one database; rejected requests do not count.
//
// On SQLite there is exactly one server process, so the window lives in memory and
// costs nothing. On PostgreSQL the count is one upsert on `rate_windows` per request,
// which every api process sees: an exact shared limit, paid for with one round trip.

export const WINDOW_MS = 60_000;

export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the window resets. */
  resetSeconds: number;
}

export interface RateLimiter {
  take(workspaceId: string): Promise<RateDecision>;
}

function decision(limit: number, count: number, allowed: boolean, windowStart: number, now: number): RateDecision {
  return {
    allowed,
    limit,
    remaining: Math.max(0, limit - count),
    resetSeconds: Math.max(1, Math.ceil((windowStart + WINDOW_MS - now) / 1000)),
  };
}

export class MemoryRateLimiter implements RateLimiter {
  readonly #windows = new Map<string, { start: number; count: number }>();

  constructor(
    private readonly limit: number,
    private readonly clock: Clock,
  ) {}

  async take(workspaceId: string): Promise<RateDecision> {
    const now = this.clock.now();
    const start = now - (now % WINDOW_MS);
    let window = this.#windows.get(workspaceId);
    if (!window || window.start !== start) {
      window = { start, count: 0 };
      this.#windows.set(workspaceId, window);
    }
    if (window.count >= this.limit) return decision(this.limit, window.count, false, start, now);
    window.count += 1;
    return decision(this.limit, window.count, true, start, now);
  }
}

export class DbRateLimiter implements RateLimiter {
  #lastPurge = 0;

  constructor(
    private readonly db: Db,
    private readonly limit: number,
    private readonly clock: Clock,
  ) {}

  async take(workspaceId: string): Promise<RateDecision> {
    const now = this.clock.now();
    const start = now - (now % WINDOW_MS);
    // Counts only while under the limit: the conditional DO UPDATE returns no row for
    // a request that is rejected, so rejected requests never count.
    const row = await this.db.db
      .insertInto('rate_windows')
      .values({ workspace_id: workspaceId, window_start: start, count: 1 })
      .onConflict((oc) =>
        oc
          .columns(['workspace_id', 'window_start'])
          .doUpdateSet({ count: sql`rate_windows.count + 1` })
          .where('rate_windows.count', '<', this.limit),
      )
      .returning('count')
      .executeTakeFirst();
    if (now - this.#lastPurge > WINDOW_MS) {
      this.#lastPurge = now;
      void this.db.db.deleteFrom('rate_windows').where('window_start', '<', start - WINDOW_MS).execute().catch(() => {});
    }
    if (!row) return decision(this.limit, this.limit, false, start, now);
    return decision(this.limit, row.count, true, start, now);
  }
}

export function createRateLimiter(db: Db, limit: number, clock: Clock): RateLimiter | null {
  if (limit === 0) return null;
  return db.sharedAcrossProcesses ? new DbRateLimiter(db, limit, clock) : new MemoryRateLimiter(limit, clock);
}
