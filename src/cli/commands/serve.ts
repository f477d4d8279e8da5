import type { Command } from 'commander';
import { type Role, loadConfig } from '../../config.js';
import { migrate } from '../../db/migrate.js';
import { openDb } from '../../db/open.js';
import { checkDatabase } from '../check-database.js';
import { checkPortFree } from '../check-port.js';
import { CliError, positiveInt, print } from '../output.js';
import { startupFailureMessage } from '../startup-failure.js';

const ROLES: Role[] = ['all', 'api', 'worker'];

export function serveCommands(program: Command): void {
  program
    .command('serve')
    .description('run the API and/or the workers')
    .option('--port <n>', 'listen port (default $PORT or 3000)', positiveInt('--port'))
    .option('--host <h>', 'listen address (default $HOST or 127.0.0.1)')
    .option('--role <role>', 'all | api | worker', 'all')
    .action(async (opts: { port?: number; host?: string; role: string }) => {
      if (!ROLES.includes(opts.role as Role)) throw new CliError(`--role must be one of ${ROLES.join(', ')}`);
      const overrides = { role: opts.role as Role, ...(opts.port !== undefined ? { port: opts.port } : {}), ...(opts.host ? { host: opts.host } : {}) };
      const config = loadConfig(process.env, overrides);
      // Loaded on demand: the HTTP stack is most of the CLI's start-up time, and the
      // other commands (run by scripts, often in loops) never need it.
      const { startServer } = await import('../../server.js');
      let server: Awaited<ReturnType<typeof startServer>>;
      try {
        if (config.role !== 'worker') await checkPortFree(config.port, config.host);
        await checkDatabase(config.databaseUrl);
        server = await startServer(config);
      } catch (error) {
        // One line naming the cause; main exits non-zero, whatever is half-started.
        throw new CliError(startupFailureMessage(error, config));
      }
      if (server.bootstrapKey) {
        process.stdout.write(
          `\n  ┌ SkipFlow created the "Default" workspace (${server.bootstrapKey.workspace_id}) with 1000 credits.\n` +
            `  │ Its API key, with every scope — shown this once, store it now:\n` +
            `  │   ${server.bootstrapKey.api_key}\n  └\n\n`,
        );
      }
      const address = server.app ? server.app.server.address() : null;
      server.deps.logger.info({ role: config.role, address, database: config.databaseUrl.replace(/\/\/[^@]*@/, '//***@') }, 'SkipFlow started');
      const shutdown = (signal: string) => {
        server.deps.logger.info({ signal }, 'shutting down');
        server.close().then(
          () => process.exit(0),
          (err: unknown) => {
            server.deps.logger.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
    });

  program
    .command('migrate')
    .description('bring the database schema up to date')
    .option('--json', 'print one JSON object')
    .action(async (opts: { json?: boolean }) => {
      const config = loadConfig();
      let applied: string[];
      try {
        await checkDatabase(config.databaseUrl);
        const db = openDb(config.databaseUrl, { poolSize: 1 });
        try {
          applied = await migrate(db);
        } finally {
          await db.close();
        }
      } catch (error) {
        throw new CliError(startupFailureMessage(error, config));
      }
      print(!!opts.json, { applied }, applied.length ? `Applied: ${applied.join(', ')}` : 'Schema is up to date.');
    });
}
