import { isIPv6 } from 'node:net';
import { LruCache } from '../lib/lru-cache.js';
import { MINUTE_MS, type Clock } from '../lib/time.js';

// Failed authentications per client address: SKIPFLOW_AUTH_FAILURE_LIMIT 401s per
// fixed 60-second window (default 20); beyond it every request from that address that
// needs a key is answered 429 rate_limited until the window ends, before its key is
// even looked up. Guessing a 256-bit key is hopeless anyway; what this stops is a
// client turning random keys into database reads. It is kept in memory by each api
// process (a flood is absorbed where it lands; no write per failure). The address is
// the TCP peer's: behind a reverse proxy every client shares the proxy's address.
// An IPv6 client is counted by its /64, the block one host can pick addresses from.

const TRACKED_ADDRESSES = 100_000;

interface Window {
  start: number;
  failures: number;
}

/** The key an address is counted under: IPv4 as is, IPv6 by its first 64 bits. */
export function clientKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const [head, tail = ''] = address.replace(/%.*$/, '').split('::') as [string, string?];
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const words = address.includes('::') ? [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${words.slice(0, 4).map((w) => parseInt(w, 16).toString(16)).join(':')}::/64`;
}

export class AuthFailureLimiter {
  readonly #windows = new LruCache<string, Window>(TRACKED_ADDRESSES);

  constructor(
    private readonly clock: Clock,
    readonly limitPerMinute: number,
  ) {}

  /** Seconds until `address` may try again, or null when it is within its budget. */
  retryAfterSeconds(address: string): number | null {
    // peek: a client that never fails is never tracked, and checking is not a use.
    const window = this.#windows.peek(clientKey(address));
    const now = this.clock.now();
    if (!window || now - window.start >= MINUTE_MS || window.failures < this.limitPerMinute) return null;
    return Math.max(1, Math.ceil((window.start + MINUTE_MS - now) / 1000));
  }

  recordFailure(address: string): void {
    const key = clientKey(address);
    const now = this.clock.now();
    const window = this.#windows.get(key);
    if (window && now - window.start < MINUTE_MS) window.failures++;
    else this.#windows.set(key, { start: now, failures: 1 });
  }
}

export function createAuthFailureLimiter(clock: Clock, limitPerMinute: number): AuthFailureLimiter | null {
  return limitPerMinute === 0 ? null : new AuthFailureLimiter(clock, limitPerMinute);
}
