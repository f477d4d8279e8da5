import { request } from 'undici';
import { outboundDispatcher } from '../engine/net/guarded-dispatcher.js';

// One attempt of one delivery: a POST through the one SSRF-guarded connection pool
// of the process (the http step's), redirects never followed (undici's `request`
// follows none), 15 seconds for the whole exchange. Loaded on the first delivery, so
// starting the server loads no HTTP client.

export const ATTEMPT_TIMEOUT_MS = 15_000;

export type AttemptOutcome =
  | { kind: 'response'; statusCode: number; retryAfter: string | undefined }
  | { kind: 'error'; message: string }
  /** The process is shutting down: the attempt does not count. */
  | { kind: 'cancelled' };

export async function sendAttempt(args: { url: string; headers: Record<string, string>; body: string; allowPrivateNetwork: boolean; cancel: AbortSignal }): Promise<AttemptOutcome> {
  const timeout = AbortSignal.timeout(ATTEMPT_TIMEOUT_MS);
  const signal = AbortSignal.any([timeout, args.cancel]);
  try {
    const response = await request(args.url, {
      method: 'POST',
      headers: args.headers,
      body: args.body,
      dispatcher: outboundDispatcher(args.allowPrivateNetwork),
      signal,
    });
    // The body is not ours to keep; it is read (bounded by the timeout) so the
    // connection can be reused.
    await response.body.dump({ limit: 65_536 }).catch(() => {});
    const retryAfter = response.headers['retry-after'];
    return { kind: 'response', statusCode: response.statusCode, retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter };
  } catch (error) {
    if (args.cancel.aborted) return { kind: 'cancelled' };
    if (timeout.aborted) return { kind: 'error', message: `no response within ${ATTEMPT_TIMEOUT_MS / 1000} s` };
    return { kind: 'error', message: error instanceof Error ? error.message : String(error) };
  }
}
