// Exponential backoff with "equal jitter": half the computed delay is kept, the other
// half is random, so retries of many executions spread out without ever retrying
// sooner than half the nominal delay. A server's Retry-After wins when it is longer.

export interface RetryPolicy {
  maxAttempts: number;
  backoffMs: number;
  factor: number;
  maxBackoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 1, backoffMs: 1000, factor: 2, maxBackoffMs: 60_000 };

export function retryPolicy(retry: {
  max_attempts?: number;
  backoff_ms?: number;
  factor?: number;
  max_backoff_ms?: number;
} | undefined): RetryPolicy {
  return {
    maxAttempts: retry?.max_attempts ?? DEFAULT_RETRY.maxAttempts,
    backoffMs: retry?.backoff_ms ?? DEFAULT_RETRY.backoffMs,
    factor: retry?.factor ?? DEFAULT_RETRY.factor,
    maxBackoffMs: retry?.max_backoff_ms ?? DEFAULT_RETRY.maxBackoffMs,
  };
}

/** Delay before attempt `failedAttempts + 1`. */
export function backoffDelay(policy: RetryPolicy, failedAttempts: number, retryAfterMs: number | null, random = Math.random): number {
  const nominal = Math.min(policy.maxBackoffMs, policy.backoffMs * policy.factor ** Math.max(0, failedAttempts - 1));
  const jittered = nominal / 2 + random() * (nominal / 2);
  return Math.round(Math.max(jittered, retryAfterMs ?? 0));
}
