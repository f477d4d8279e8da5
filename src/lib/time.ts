// Times are stored as integer milliseconds since the epoch and rendered in exactly
// one public format (docs/api.md#timestamps): `YYYY-MM-DDTHH:MM:SS+00:00`, seconds precision.

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export function formatTimestamp(ms: number | null | undefined): string | null {
  if (ms === null || ms === undefined) return null;
  return new Date(ms).toISOString().slice(0, 19) + '+00:00';
}

/** Parses an ISO 8601 timestamp that carries an explicit offset (`Z` or `±HH:MM`). */
export function parseTimestampWithOffset(value: string): number | null {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(value)) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

export const MINUTE_MS = 60_000;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;
