// Tests that expressions never hold the event loop: run a body while sampling the loop.

/** Runs `body` while sampling the event loop every 5 ms; returns its value (or the
 * error it threw), the longest gap between samples and the time taken. */
export async function sampled<T>(body: () => Promise<T>): Promise<{ value: T | Error; maxGap: number; ms: number }> {
  let last = Date.now();
  let maxGap = 0;
  const timer = setInterval(() => {
    const now = Date.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 5);
  const t0 = Date.now();
  const value = await body().catch((e: Error) => e);
  const ms = Date.now() - t0;
  clearInterval(timer);
  return { value, maxGap: Math.max(maxGap, Date.now() - last), ms };
}
