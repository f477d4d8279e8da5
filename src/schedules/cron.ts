import { Cron } from 'croner';
import { invalid } from '../errors.js';

// Fire times, and nothing else, come from croner: it parses 5- and 6-field patterns
// and applies a time zone's daylight-saving rules the way classic cron does (a local
// time skipped by spring-forward fires at the first valid time after it; one repeated
// by fall-back fires once). Its own timers are never used: the next fire time is
// stored in the database and the scheduler (schedule-runner.ts) wakes for it.

export interface CronSpec {
  cron: string;
  timezone: string;
}

/** Throws 400 naming `timezone` when it is not an IANA zone this runtime knows. */
export function checkTimezone(timezone: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    throw invalid(`timezone: "${timezone}" is not an IANA time zone name (e.g. "Europe/Paris", "UTC")`);
  }
}

function pattern(spec: CronSpec): Cron {
  const fields = spec.cron.trim().split(/\s+/);
  // croner also takes 7 fields (a year) and nicknames (@daily): not part of the contract.
  if (fields.length !== 5 && fields.length !== 6) {
    throw invalid(`cron: "${spec.cron}" must have 5 fields (minute hour day month weekday) or 6 (seconds first)`);
  }
  checkTimezone(spec.timezone);
  try {
    // legacyMode (the default, OR of day-of-month and day-of-week) is classic cron.
    return new Cron(spec.cron, { timezone: spec.timezone, paused: true });
  } catch (error) {
    throw invalid(`cron: "${spec.cron}" does not parse (${(error as Error).message})`);
  }
}

/** Validates a cron and time zone (400 naming the field). */
export function checkCron(spec: CronSpec): void {
  pattern(spec);
}

/** The next `count` fire times strictly after `afterMs`, in epoch milliseconds. */
export function fireTimesAfter(spec: CronSpec, afterMs: number, count: number): number[] {
  const cron = pattern(spec);
  return cron.nextRuns(count, new Date(afterMs)).map((d) => d.getTime());
}

/** The first fire time strictly after `afterMs`, or null when the pattern never fires again. */
export function nextFireAfter(spec: CronSpec, afterMs: number): number | null {
  return fireTimesAfter(spec, afterMs, 1)[0] ?? null;
}

/** The latest fire time in [fromMs, toMs], or null (the tick a catch-up runs). */
export function latestFireBetween(spec: CronSpec, fromMs: number, toMs: number): number | null {
  if (fromMs > toMs) return null;
  // previousRuns is strict and works in whole seconds: look back from just past toMs.
  const latest = pattern(spec)
    .previousRuns(3, new Date(toMs + 1000))
    .map((d) => d.getTime())
    .find((t) => t <= toMs);
  return latest !== undefined && latest >= fromMs ? latest : null;
}
