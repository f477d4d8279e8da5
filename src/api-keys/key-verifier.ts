import type { ApiKeyRow } from '../db/schema.js';
import type { Db } from '../db/open.js';
import { LruCache } from '../lib/lru-cache.js';
import type { Clock } from '../lib/time.js';
import type { Scope } from './scopes.js';
import { SECRET_PATTERN, hashSecret } from './secret.js';
import { findKeyByHash, touchLastUsed } from './store.js';

// Verifying a key must not cost a database round trip on every request of a hot
// path, yet a revoked key must stop working on every process within 5 seconds.
// Each process caches what it read for KEY_CACHE_TTL_MS (4 s) and then reads the row
// again, so a revocation made anywhere — another api process, the CLI — is seen
// within 4 s plus one request. Expiry is checked against the clock on every request,
// so an expired key stops at once. last_used_at is written in batches (at most every
// LAST_USED_FLUSH_MS), since a write per request would cost more than the request.
//
// Both caches are bounded LRUs, and kept apart: known keys (KEY_CACHE_CAPACITY) and
// hashes that matched no key (UNKNOWN_CACHE_CAPACITY, remembered for
// UNKNOWN_KEY_TTL_MS, so one bad key repeated costs one query a second). A flood of
// random keys therefore only churns the unknown cache and never evicts the keys in
// real use — the old single map emptied itself at 10,000 entries, after which every
// real request went to the database again. Failed authentications are also limited
// per client address (api-keys/auth-failure-limiter.ts).

export const KEY_CACHE_TTL_MS = 4_000;
export const UNKNOWN_KEY_TTL_MS = 1_000;
export const KEY_CACHE_CAPACITY = 10_000;
export const UNKNOWN_CACHE_CAPACITY = 10_000;
const LAST_USED_FLUSH_MS = 10_000;

export interface KeyVerifierOptions {
  readonly ttlMs?: number;
  readonly capacity?: number;
  readonly unknownCapacity?: number;
}

export interface AuthContext {
  readonly workspaceId: string;
  readonly keyId: string;
  readonly scopes: ReadonlySet<Scope>;
}

interface Entry {
  key: ApiKeyRow | null;
  auth: AuthContext | null;
  loadedAt: number;
}

export class KeyVerifier {
  readonly #known: LruCache<string, Entry>;
  /** Hash of a secret that matched no key → when that was read. */
  readonly #unknown: LruCache<string, number>;
  readonly #ttlMs: number;
  readonly #loading = new Map<string, Promise<Entry>>();
  readonly #used = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    options: KeyVerifierOptions = {},
  ) {
    this.#ttlMs = options.ttlMs ?? KEY_CACHE_TTL_MS;
    this.#known = new LruCache(options.capacity ?? KEY_CACHE_CAPACITY);
    this.#unknown = new LruCache(options.unknownCapacity ?? UNKNOWN_CACHE_CAPACITY);
    this.#timer = setInterval(() => void this.flushLastUsed().catch(() => {}), LAST_USED_FLUSH_MS);
    this.#timer.unref();
  }

  /** Returns the key's context, or null for a malformed, unknown, expired or revoked key. */
  async verify(secret: string): Promise<AuthContext | null> {
    if (!SECRET_PATTERN.test(secret)) return null;
    const hash = hashSecret(secret);
    const now = this.clock.now();
    const unknownSince = this.#unknown.get(hash);
    if (unknownSince !== undefined && now - unknownSince < UNKNOWN_KEY_TTL_MS) return null;
    let entry = this.#known.get(hash);
    if (!entry || now - entry.loadedAt >= this.#ttlMs) entry = await this.#load(hash);
    const key = entry.key;
    if (!key || key.revoked_at !== null || (key.expires_at !== null && key.expires_at <= now)) return null;
    this.#used.set(key.id, now);
    return entry.auth;
  }

  #load(hash: string): Promise<Entry> {
    let pending = this.#loading.get(hash);
    if (!pending) {
      pending = findKeyByHash(this.db.db, hash)
        .then((key) => {
          const entry: Entry = {
            key: key ?? null,
            auth: key ? { workspaceId: key.workspace_id, keyId: key.id, scopes: new Set(key.scopes.split(',') as Scope[]) } : null,
            loadedAt: this.clock.now(),
          };
          if (key) {
            this.#known.set(hash, entry);
            this.#unknown.delete(hash);
          } else {
            this.#known.delete(hash); // deleted since it was cached
            this.#unknown.set(hash, entry.loadedAt);
          }
          return entry;
        })
        .finally(() => this.#loading.delete(hash));
      this.#loading.set(hash, pending);
    }
    return pending;
  }

  async flushLastUsed(): Promise<void> {
    if (this.#used.size === 0) return;
    // One write per distinct time is plenty: group keys by the last time they were seen.
    const latest = Math.max(...this.#used.values());
    const ids = [...this.#used.keys()];
    this.#used.clear();
    await touchLastUsed(this.db.db, ids, latest);
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flushLastUsed().catch(() => {});
  }
}
