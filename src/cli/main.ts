#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config.js';
import { creditsCommands } from './commands/credits.js';
import { keysCommands } from './commands/keys.js';
import { pruneCommands } from './commands/prune.js';
import { secretsCommands } from './commands/secrets.js';
import { serveCommands } from './commands/serve.js';
import { userCommands } from './commands/user/index.js';
import { workspaceCommands } from './commands/workspace.js';
import { markRequiredOptions } from './help.js';
import { SkipFlowError } from '../client/errors.js';
import { CliError } from './output.js';
import { EXIT } from './exit-codes.js';

const json = process.argv.includes('--json');

const program = new Command('skipflow')
  .description('SkipFlow: durable workflow executions behind a REST API')
  .version('0.1.0')
  .showHelpAfterError()
  // With --json, a usage error is the one JSON object on stdout (printed below).
  .configureOutput({ outputError: (text, write) => (json ? undefined : write(text)) })
  .exitOverride();

serveCommands(program);
workspaceCommands(program);
keysCommands(program);
creditsCommands(program);
pruneCommands(program);
secretsCommands(program);
userCommands(program);
markRequiredOptions(program);

function fail(message: string, code: string): never {
  if (json) process.stdout.write(`${JSON.stringify({ error: message, error_code: code })}\n`);
  process.stderr.write(`skipflow: ${message}\n`);
  process.exit(EXIT.usageOrApiError);
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // --help and --version end with code 0; everything else is bad usage.
    if (error.exitCode === 0) process.exit(0);
    fail(error.message.replace(/^error: /, ''), 'invalid_usage');
  }
  if (error instanceof CliError) fail(error.message, error.code);
  // The API's own message and code (or why it could not be reached).
  if (error instanceof SkipFlowError) fail(error.status ? `${error.message} (HTTP ${error.status}${error.requestId ? `, request ${error.requestId}` : ''})` : error.message, error.code);
  if (error instanceof ConfigError) fail(error.message, 'invalid_configuration');
  fail(String((error as Error)?.stack ?? error), 'internal_error');
}
