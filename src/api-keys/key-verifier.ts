import type { ApiKeyRow } from '../db/schema.js';
import type { Db } from '../db/open.js';
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

export const KEY_CACHE_TTL_MS = 4_000;
const NEGATIVE_TTL_MS = 1_000;
const MAX_ENTRIES = 10_000;
const LAST_USED_FLUSH_MS = 10_000;

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
  readonly #entries = new Map<string, Entry>();
  readonly #loading = new Map<string, Promise<Entry>>();
  readonly #used = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly ttlMs = KEY_CACHE_TTL_MS,
  ) {
    this.#timer = setInterval(() => void this.flushLastUsed().catch(() => {}), LAST_USED_FLUSH_MS);
    this.#timer.unref();
  }

  /** Returns the key's context, or null for a malformed, unknown, expired or revoked key. */
  async verify(secret: string): Promise<AuthContext | null> {
    if (!SECRET_PATTERN.test(secret)) return null;
    const hash = hashSecret(secret);
    const now = this.clock.now();
    let entry = this.#entries.get(hash);
    const ttl = entry?.key ? this.ttlMs : NEGATIVE_TTL_MS;
    if (!entry || now - entry.loadedAt >= ttl) entry = await this.#load(hash);
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
          if (this.#entries.size >= MAX_ENTRIES) this.#entries.clear();
          this.#entries.set(hash, entry);
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
