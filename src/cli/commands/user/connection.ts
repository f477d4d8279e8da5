import type { Command } from 'commander';
import { SkipFlowClient } from '../../../client/index.js';
import { CliError } from '../../output.js';

// The user commands talk to a server over HTTP, through the TypeScript client (one
// implementation of retries, errors and streaming). Where: --url / SKIPFLOW_URL
// (default http://127.0.0.1:3000); who: --api-key / SKIPFLOW_API_KEY.

export interface ConnectionOptions {
  url?: string;
  apiKey?: string;
  json?: boolean;
}

export function withConnection(command: Command): Command {
  return command
    .option('--url <url>', 'server URL (default $SKIPFLOW_URL or http://127.0.0.1:3000)')
    .option('--api-key <key>', 'API key (default $SKIPFLOW_API_KEY)')
    .option('--json', 'print one JSON object');
}

export function clientFor(opts: ConnectionOptions): SkipFlowClient {
  const baseUrl = opts.url ?? process.env.SKIPFLOW_URL ?? 'http://127.0.0.1:3000';
  const apiKey = opts.apiKey ?? process.env.SKIPFLOW_API_KEY;
  if (!apiKey) throw new CliError('no API key: pass --api-key or set SKIPFLOW_API_KEY');
  try {
    new URL(baseUrl);
  } catch {
    throw new CliError(`--url must be a URL such as http://127.0.0.1:3000, got "${baseUrl}"`);
  }
  return new SkipFlowClient({ baseUrl, apiKey, retry: { maxAttempts: 3 } });
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}
