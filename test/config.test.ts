import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

// The configuration table's defaults, and bad values named at boot.

describe('configuration', () => {
  it('defaults to the documented table', () => {
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
      engineThread: true,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('takes over a dead worker’s executions within 30 seconds by default', () => {
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
      SKIPFLOW_ENGINE_THREAD: 'yes',
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

describe('result bounds', () => {
  it('default to 1 MiB per step and 16 MiB per execution, and read their variables', () => {
    expect(loadConfig({})).toMatchObject({ maxResultBytes: 1_048_576, maxExecutionResultBytes: 16_777_216 });
    expect(loadConfig({ SKIPFLOW_MAX_RESULT_BYTES: '2048', SKIPFLOW_MAX_EXECUTION_RESULT_BYTES: '4096' })).toMatchObject({
      maxResultBytes: 2048,
      maxExecutionResultBytes: 4096,
    });
  });

  it('refuse bad values, and a total smaller than one step', () => {
    for (const env of [{ SKIPFLOW_MAX_RESULT_BYTES: '10' }, { SKIPFLOW_MAX_RESULT_BYTES: 'lots' }, { SKIPFLOW_MAX_EXECUTION_RESULT_BYTES: '0' }]) {
      expect(() => loadConfig(env), JSON.stringify(env)).toThrow(Object.keys(env)[0]!);
    }
    expect(() => loadConfig({ SKIPFLOW_MAX_RESULT_BYTES: '8192', SKIPFLOW_MAX_EXECUTION_RESULT_BYTES: '4096' })).toThrow(/must be at least SKIPFLOW_MAX_RESULT_BYTES/);
  });
});

describe('amplification bounds', () => {
  it('default to 20 failed authentications a minute per address and 50 open streams per workspace', () => {
    expect(loadConfig({})).toMatchObject({ authFailuresPerMinute: 20, maxOpenStreamsPerWorkspace: 50 });
    expect(loadConfig({ SKIPFLOW_AUTH_FAILURE_LIMIT: '0', SKIPFLOW_MAX_OPEN_STREAMS: '7' })).toMatchObject({ authFailuresPerMinute: 0, maxOpenStreamsPerWorkspace: 7 });
  });

  it('name a bad value', () => {
    expect(() => loadConfig({ SKIPFLOW_AUTH_FAILURE_LIMIT: '-1' })).toThrow('SKIPFLOW_AUTH_FAILURE_LIMIT');
    expect(() => loadConfig({ SKIPFLOW_MAX_OPEN_STREAMS: '0' })).toThrow('SKIPFLOW_MAX_OPEN_STREAMS');
  });
});

describe('SKIPFLOW_PUBLIC_URL', () => {
  it('defaults to the listen address; trailing slashes are dropped; a non-URL is named', async () => {
    const { publicBaseUrl } = await import('../src/webhooks/webhook-use-cases.js');
    expect(loadConfig({}).publicUrl).toBeNull();
    expect(publicBaseUrl(loadConfig({ PORT: '4000', HOST: '0.0.0.0' }))).toBe('http://0.0.0.0:4000');
    expect(publicBaseUrl(loadConfig({ SKIPFLOW_PUBLIC_URL: 'https://flows.example.com/base/' }))).toBe('https://flows.example.com/base');
    expect(() => loadConfig({ SKIPFLOW_PUBLIC_URL: 'flows.example.com' })).toThrow(/SKIPFLOW_PUBLIC_URL/);
  });
});
