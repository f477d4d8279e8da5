import { parseSecretKey } from './secrets/cipher.js';

// The only module that reads process.env. Every variable is validated at boot and
// a bad one is named in the error, so an operator never meets a half-configured server.

export type Role = 'all' | 'api' | 'worker';

export interface Config {
  readonly databaseUrl: string;
  readonly host: string;
  readonly port: number;
  readonly role: Role;
  readonly workerConcurrency: number;
  readonly allowPrivateNetwork: boolean;
  readonly smtpUrl: string | null;
  /** Requests per minute per workspace; 0 disables the limit. */
  readonly rateLimitPerMinute: number;
  readonly logLevel: string;
  /** How long a claimed execution stays leased without a heartbeat. */
  readonly leaseMs: number;
  /** Fallback poll interval of idle workers (new work normally wakes them at once). */
  readonly pollIntervalMs: number;
  /** In an `all` process, run the engine on its own thread (with its own database
   * connection) instead of on the API's event loop. */
  readonly engineThread: boolean;
  /** Largest step result stored, as JSON bytes; over it the step fails with result_too_large. */
  readonly maxResultBytes: number;
  /** Largest total of one execution's stored step results (bounds a GET with step results). */
  readonly maxExecutionResultBytes: number;
  /** Failed authentications per minute per client address before 429; 0 disables. */
  readonly authFailuresPerMinute: number;
  /** Server-Sent Events streams and long polls one workspace may hold open at once, per api process. */
  readonly maxOpenStreamsPerWorkspace: number;
  /** Base URL printed in inbound webhook URLs (no trailing slash); null: http://HOST:PORT. */
  readonly publicUrl: string | null;
  /** Finished executions older than this many days are pruned; 0 keeps them for ever. */
  readonly retentionDays: number;
  /** SKIPFLOW_SECRET_KEY: 32 bytes as 64 hex digits or base64, the key that encrypts
   * secrets (src/secrets/secret-key.ts); null → a key file on SQLite, none on PostgreSQL. */
  readonly secretKey: string | null;
  /** SKIPFLOW_METRICS_TOKEN: when set, GET /metrics needs it as a Bearer token. */
  readonly metricsToken: string | null;
}

export class ConfigError extends Error {}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
  }
  return value;
}

function databaseUrl(env: NodeJS.ProcessEnv): string {
  const url = env.SKIPFLOW_DATABASE_URL || 'sqlite:./data/skipflow.db';
  if (!/^sqlite:.+/.test(url) && !/^postgres(ql)?:\/\//.test(url)) {
    throw new ConfigError(`SKIPFLOW_DATABASE_URL must be sqlite:PATH or postgres://…, got "${url}"`);
  }
  return url;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const logLevel = env.LOG_LEVEL || 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const smtpUrl = env.SKIPFLOW_SMTP_URL || null;
  if (smtpUrl !== null && !/^smtps?:\/\//.test(smtpUrl)) {
    throw new ConfigError(`SKIPFLOW_SMTP_URL must be smtp://host:port or smtps://host:port, got "${smtpUrl}"`);
  }
  const allowPrivate = env.SKIPFLOW_ALLOW_PRIVATE_NETWORK;
  if (allowPrivate !== undefined && !['', '0', '1'].includes(allowPrivate)) {
    throw new ConfigError(`SKIPFLOW_ALLOW_PRIVATE_NETWORK must be 1 or unset, got "${allowPrivate}"`);
  }
  const engineThread = env.SKIPFLOW_ENGINE_THREAD;
  if (engineThread !== undefined && !['', '0', '1'].includes(engineThread)) {
    throw new ConfigError(`SKIPFLOW_ENGINE_THREAD must be 0 or 1, got "${engineThread}"`);
  }
  const maxResultBytes = integer(env, 'SKIPFLOW_MAX_RESULT_BYTES', 1_048_576, 1024, 268_435_456);
  const maxExecutionResultBytes = integer(env, 'SKIPFLOW_MAX_EXECUTION_RESULT_BYTES', 16_777_216, 1024, 1_073_741_824);
  if (maxExecutionResultBytes < maxResultBytes) {
    throw new ConfigError(
      `SKIPFLOW_MAX_EXECUTION_RESULT_BYTES (${maxExecutionResultBytes}) must be at least SKIPFLOW_MAX_RESULT_BYTES (${maxResultBytes}): one step's result must fit in its execution's total`,
    );
  }
  const publicUrl = (env.SKIPFLOW_PUBLIC_URL || '').replace(/\/+$/, '') || null;
  if (publicUrl !== null && !/^https?:\/\/[^\s/]+(\/\S*)?$/.test(publicUrl)) {
    throw new ConfigError(`SKIPFLOW_PUBLIC_URL must be an http:// or https:// URL, got "${env.SKIPFLOW_PUBLIC_URL}"`);
  }
  const secretKey = env.SKIPFLOW_SECRET_KEY || null;
  if (secretKey !== null) {
    try {
      parseSecretKey(secretKey, 'SKIPFLOW_SECRET_KEY');
    } catch (error) {
      throw new ConfigError((error as Error).message);
    }
  }
  return Object.freeze({
    databaseUrl: databaseUrl(env),
    host: env.HOST || '127.0.0.1',
    port: integer(env, 'PORT', 3000, 0, 65535),
    role: 'all' as Role,
    workerConcurrency: integer(env, 'SKIPFLOW_WORKER_CONCURRENCY', 50, 1, 10_000),
    allowPrivateNetwork: allowPrivate === '1',
    smtpUrl,
    rateLimitPerMinute: integer(env, 'SKIPFLOW_RATE_LIMIT', 6000, 0, 100_000_000),
    logLevel,
    leaseMs: integer(env, 'SKIPFLOW_LEASE_MS', 15_000, 500, 600_000),
    pollIntervalMs: integer(env, 'SKIPFLOW_POLL_INTERVAL_MS', 500, 10, 60_000),
    engineThread: engineThread !== '0',
    maxResultBytes,
    maxExecutionResultBytes,
    authFailuresPerMinute: integer(env, 'SKIPFLOW_AUTH_FAILURE_LIMIT', 20, 0, 1_000_000),
    maxOpenStreamsPerWorkspace: integer(env, 'SKIPFLOW_MAX_OPEN_STREAMS', 50, 1, 100_000),
    publicUrl,
    retentionDays: integer(env, 'SKIPFLOW_RETENTION_DAYS', 30, 0, 36_500),
    secretKey,
    metricsToken: env.SKIPFLOW_METRICS_TOKEN || null,
    ...overrides,
  });
}
