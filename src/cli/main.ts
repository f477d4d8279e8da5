#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config.js';
import { creditsCommands } from './commands/credits.js';
import { keysCommands } from './commands/keys.js';
import { pruneCommands } from './commands/prune.js';
import { secretsCommands } from './commands/secrets.js';
import { serveCommands } from './commands/serve.js';
import { workspaceCommands } from './commands/workspace.js';
import { CliError } from './output.js';

const program = new Command('skipflow')
  .description('SkipFlow: durable workflow executions behind a REST API')
  .version('0.1.0')
  .showHelpAfterError()
  .exitOverride();

serveCommands(program);
workspaceCommands(program);
keysCommands(program);
creditsCommands(program);
pruneCommands(program);
secretsCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode);
  const known = error instanceof CliError || error instanceof ConfigError;
  process.stderr.write(`skipflow: ${known ? (error as Error).message : String((error as Error)?.stack ?? error)}\n`);
  process.exit(1);
}
