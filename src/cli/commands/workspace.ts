import type { Command } from 'commander';
import { isId } from '../../lib/ids.js';
import { systemClock } from '../../lib/time.js';
import { createWorkspaceWithKey } from '../../workspaces/create-workspace.js';
import { findWorkspace, listWorkspaces, setCredits, setMaxConcurrent, toWorkspaceView } from '../../workspaces/store.js';
import { CliError, positiveInt, print, withDb } from '../output.js';

export function workspaceCommands(program: Command): void {
  const workspace = program.command('workspace').description('create and configure workspaces');

  workspace
    .command('create')
    .description('create a workspace and an API key with every scope')
    .requiredOption('--name <name>', 'workspace name')
    .option('--credits <n>', 'initial credits', positiveInt('--credits'), 0)
    .option('--json', 'print one JSON object')
    .action(async (opts: { name: string; credits: number; json?: boolean }) => {
      if (opts.name.trim() === '' || opts.name.length > 200) throw new CliError('--name must be 1–200 characters');
      const created = await withDb((db) =>
        db.db.transaction().execute((trx) => createWorkspaceWithKey(trx, { name: opts.name, credits: opts.credits, now: systemClock.now() })),
      );
      print(
        !!opts.json,
        created,
        `Workspace ${created.workspace_id} "${created.name}" with ${created.credits} credits.\n` +
          `API key (shown once, store it now): ${created.api_key}\nkey id ${created.key_id}, scopes ${created.scopes.join(',')}`,
      );
    });

  workspace
    .command('update')
    .description('change a workspace’s limits')
    .requiredOption('--workspace <id>', 'workspace id')
    .option('--max-concurrent <n|none>', 'maximum running executions, or "none" for no limit')
    .option('--credits <n|unlimited>', 'set the balance, or "unlimited" (nothing is debited, runs are never refused for credits)')
    .option('--json', 'print one JSON object')
    .action(async (opts: { workspace: string; maxConcurrent?: string; credits?: string; json?: boolean }) => {
      if (!isId(opts.workspace)) throw new CliError(`no workspace ${opts.workspace}`);
      const credits = opts.credits === undefined ? undefined : opts.credits === 'unlimited' ? null : positiveInt('--credits')(opts.credits);
      const view = await withDb(async (db) => {
        if (credits !== undefined && !(await setCredits(db.db, opts.workspace, credits))) throw new CliError(`no workspace ${opts.workspace}`);
        if (opts.maxConcurrent !== undefined) {
          const max = opts.maxConcurrent === 'none' ? null : positiveInt('--max-concurrent', 1)(opts.maxConcurrent);
          if (!(await setMaxConcurrent(db.db, opts.workspace, max))) throw new CliError(`no workspace ${opts.workspace}`);
        }
        const row = await findWorkspace(db.db, opts.workspace);
        if (!row) throw new CliError(`no workspace ${opts.workspace}`);
        return toWorkspaceView(row);
      });
      print(!!opts.json, view, `Workspace ${view.workspace_id}: max concurrent executions ${view.max_concurrent_executions ?? 'unlimited'}, ${view.credits ?? 'unlimited'} credits.`);
    });

  workspace
    .command('list')
    .description('list every workspace, newest first')
    .option('--json', 'print one JSON object')
    .action(async (opts: { json?: boolean }) => {
      const workspaces = (await withDb((db) => listWorkspaces(db.db))).map(toWorkspaceView);
      const lines = workspaces.map((w) => `${w.workspace_id}  ${w.name}  credits ${w.credits ?? 'unlimited'}  max concurrent ${w.max_concurrent_executions ?? 'none'}  created ${w.created_at}`);
      print(!!opts.json, { workspaces }, lines.length ? lines.join('\n') : 'No workspaces.');
    });
}
