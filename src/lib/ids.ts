import { randomBytes } from 'node:crypto';

// Ids are laid out as a MongoDB ObjectId (docs/api.md#identifiers): 4-byte big-endian Unix seconds,
// a 5-byte random value chosen once per process, a 3-byte counter. Ids made by one
// process therefore sort in creation order, which is what cursor pagination relies on.

const processRandom = randomBytes(5).toString('hex');
let counter = randomBytes(3).readUIntBE(0, 3);
let lastSeconds = 0;

export const ID_PATTERN = /^[0-9a-f]{24}$/;

export function newId(nowMs: number = Date.now()): string {
  // Never let the time part go backwards within a process (clock steps), so the
  // creation order of one process stays the sort order.
  const seconds = Math.max(Math.floor(nowMs / 1000), lastSeconds);
  lastSeconds = seconds;
  counter = (counter + 1) & 0xffffff;
  return seconds.toString(16).padStart(8, '0') + processRandom + counter.toString(16).padStart(6, '0');
}

export function isId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}
