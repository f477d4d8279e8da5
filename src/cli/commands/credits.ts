import type { Command } from 'commander';
import { isId } from '../../lib/ids.js';
import { addCredits } from '../../workspaces/store.js';
import { CliError, positiveInt, print, withDb } from '../output.js';

export function creditsCommands(program: Command): void {
  program
    .command('credits')
    .description('manage credits')
    .command('add')
    .description('add credits to a workspace')
    .requiredOption('--workspace <id>', 'workspace id')
    .requiredOption('--amount <n>', 'credits to add', positiveInt('--amount', 1))
    .option('--json', 'print one JSON object')
    .action(async (opts: { workspace: string; amount: number; json?: boolean }) => {
      const credits = await withDb((db) => (isId(opts.workspace) ? addCredits(db.db, opts.workspace, opts.amount) : Promise.resolve(undefined)));
      if (credits === undefined) throw new CliError(`no workspace ${opts.workspace}`);
      print(!!opts.json, { workspace_id: opts.workspace, credits }, `Workspace ${opts.workspace} now has ${credits} credits.`);
    });
}
