import type { Logger } from 'pino';
import type { AuthFailureLimiter } from './api-keys/auth-failure-limiter.js';
import type { KeyVerifier } from './api-keys/key-verifier.js';
import type { Config } from './config.js';
import type { Db } from './db/open.js';
import type { Signals } from './db/signals.js';
import type { SecretKey } from './secrets/secret-key.js';
import type { Clock } from './lib/time.js';
import type { RateLimiter } from './rate-limit/rate-limiter.js';

/** What the HTTP shell and the use cases receive from the composition root. */
export interface AppDeps {
  readonly config: Config;
  readonly db: Db;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly keys: KeyVerifier;
  readonly rateLimiter: RateLimiter | null;
  /** Failed authentications per client address; null when SKIPFLOW_AUTH_FAILURE_LIMIT=0. */
  readonly authFailures?: AuthFailureLimiter | null;
  readonly signals: Signals;
  /** The key that encrypts secrets (src/secrets/secret-key.ts); null: none configured. */
  readonly secretKey?: SecretKey | null;
}
