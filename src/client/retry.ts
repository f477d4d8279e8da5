import { SkipFlowError } from './errors.js';

// Which failures are worth the same request again, and how long to wait: 408, 409 (a
// duplicate of the same Idempotency-Key still in flight), 429 and 5xx, and failures
// with no answer at all. Bounded exponential backoff with full jitter, never shorter
// than the server's Retry-After.

export interface RetryOptions {
  /** Attempts in all, the first included (default 5). */
  maxAttempts?: number;
  /** First backoff (default 250 ms); doubles each attempt. */
  baseDelayMs?: number;
  /** Longest backoff, Retry-After included (default 30 s). */
  maxDelayMs?: number;
}

export const RETRYABLE_STATUS = new Set([408, 409, 429]);

export function isRetryable(error: unknown): boolean {
  if (!(error instanceof SkipFlowError)) return false;
  return error.status === 0 || RETRYABLE_STATUS.has(error.status) || error.status >= 500;
}

export function retryDelayMs(options: RetryOptions, attempt: number, error: SkipFlowError, random: () => number = Math.random): number {
  const base = options.baseDelayMs ?? 250;
  const max = options.maxDelayMs ?? 30_000;
  const exponential = Math.min(max, base * 2 ** (attempt - 1));
  const jittered = exponential / 2 + (random() * exponential) / 2;
  const server = error.retryAfterSeconds === null ? 0 : error.retryAfterSeconds * 1000;
  return Math.min(max, Math.max(jittered, server));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason)), { once: true });
  });
}
