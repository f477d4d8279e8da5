import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

// docs/api.md#configuration (the README's table): the defaults, and bad values named at boot.

describe('configuration', () => {
  it('defaults to the documented values', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      databaseUrl: 'sqlite:./data/skipflow.db',
      port: 3000,
      host: '127.0.0.1',
      workerConcurrency: 50,
      allowPrivateNetwork: false,
      smtpUrl: null,
      rateLimitPerMinute: 6000,
      logLevel: 'info',
      role: 'all',
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('takes over a dead worker’s executions within 30 seconds by default (docs/api.md#execution)', () => {
    // A claim is retaken when its lease expires: the lease must be shorter than the bound.
    expect(loadConfig({}).leaseMs).toBeLessThanOrEqual(30_000);
  });

  it('names the variable that is wrong', () => {
    const bad: Record<string, string> = {
      PORT: '70000',
      SKIPFLOW_WORKER_CONCURRENCY: '0',
      SKIPFLOW_RATE_LIMIT: '-1',
      SKIPFLOW_DATABASE_URL: 'mysql://x',
      SKIPFLOW_SMTP_URL: 'http://mail',
      SKIPFLOW_ALLOW_PRIVATE_NETWORK: 'yes',
      LOG_LEVEL: 'loud',
    };
    for (const [name, value] of Object.entries(bad)) {
      expect(() => loadConfig({ [name]: value }), name).toThrow(ConfigError);
      expect(() => loadConfig({ [name]: value }), name).toThrow(name);
    }
  });

  it('reads every variable of the table', () => {
    const config = loadConfig({
      SKIPFLOW_DATABASE_URL: 'postgres://u@h/db',
      PORT: '8080',
      HOST: '0.0.0.0',
      SKIPFLOW_ALLOW_PRIVATE_NETWORK: '1',
      SKIPFLOW_SMTP_URL: 'smtp://127.0.0.1:2525',
      SKIPFLOW_RATE_LIMIT: '0',
      LOG_LEVEL: 'debug',
    });
    expect(config).toMatchObject({
      databaseUrl: 'postgres://u@h/db',
      port: 8080,
      host: '0.0.0.0',
      allowPrivateNetwork: true,
      smtpUrl: 'smtp://127.0.0.1:2525',
      rateLimitPerMinute: 0,
      logLevel: 'debug',
    });
  });
});
