import { sql } from 'kysely';
import { openDb } from '../db/open.js';

// `serve` asks the database one trivial question before anything else starts, with a
// deadline: pg has no connect timeout of its own, so a host that accepts the TCP
// connection but never answers (or drops packets) would otherwise hold the start-up
// for minutes with nothing printed. A refused connection or an unopenable file fails
// here at once; the deadline only covers the silent case.

export const DATABASE_CHECK_TIMEOUT_MS = 5_000;

export class DatabaseTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`the database did not answer within ${timeoutMs / 1000} s`);
    this.name = 'DatabaseTimeoutError';
  }
}

export async function checkDatabase(url: string, timeoutMs = DATABASE_CHECK_TIMEOUT_MS): Promise<void> {
  const db = openDb(url, { poolSize: 1 });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DatabaseTimeoutError(timeoutMs)), timeoutMs);
  });
  try {
    await Promise.race([sql`select 1`.execute(db.db), deadline]);
  } finally {
    clearTimeout(timer);
  }
  // Closed only after an answer: closing a pool whose connection attempt hangs would hang too.
  await db.close();
}
