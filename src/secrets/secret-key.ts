import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { parseSecretKey, newSecretKeyText } from './cipher.js';

// Where the key that encrypts secrets comes from: SKIPFLOW_SECRET_KEY when it is set;
// otherwise, on SQLite, a `secret.key` file beside the database (made on the first
// start, mode 0600, and logged, so that a single-machine install works out of the
// box and the operator knows which file to back up with the database); on PostgreSQL
// nothing — several machines share the database, and a key file on one of them
// would not be on the others, so the operator must set the variable.

export interface SecretKey {
  readonly key: Buffer;
  /** What an operator would call it in a message: the variable or the file. */
  readonly source: string;
}

/** The key file's path for a SQLite database URL, or null (PostgreSQL, in-memory). */
export function keyFilePath(databaseUrl: string): string | null {
  if (!databaseUrl.startsWith('sqlite:')) return null;
  const path = databaseUrl.slice('sqlite:'.length);
  if (path === ':memory:' || path === '') return null;
  return join(dirname(resolve(path)), 'secret.key');
}

/** Reads the configured key, without creating anything (the engine thread, the CLI). */
export function loadSecretKey(config: Pick<Config, 'secretKey' | 'databaseUrl'>): SecretKey | null {
  if (config.secretKey !== null) return { key: parseSecretKey(config.secretKey, 'SKIPFLOW_SECRET_KEY'), source: 'SKIPFLOW_SECRET_KEY' };
  const file = keyFilePath(config.databaseUrl);
  if (file === null || !existsSync(file)) return null;
  return { key: parseSecretKey(readFileSync(file, 'utf8'), `the key file ${file}`), source: `the key file ${file}` };
}

/** At `serve`: as loadSecretKey, but on SQLite without a key it makes the key file first. */
export function ensureSecretKey(config: Pick<Config, 'secretKey' | 'databaseUrl'>, logger: Logger): SecretKey | null {
  const file = config.secretKey === null ? keyFilePath(config.databaseUrl) : null;
  if (file !== null && !existsSync(file)) {
    try {
      // `wx`: of two processes starting at once, one writes the file and the other reads it.
      writeFileSync(file, `${newSecretKeyText()}\n`, { mode: 0o600, flag: 'wx' });
      chmodSync(file, 0o600); // the mode given to writeFileSync is masked by the umask
      logger.warn({ keyFile: file }, 'created a key for secrets beside the database; back it up with the database (without it the secrets cannot be read)');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  const loaded = loadSecretKey(config);
  if (loaded) logger.info({ source: loaded.source }, 'secrets are encrypted with the key from this source');
  return loaded;
}
