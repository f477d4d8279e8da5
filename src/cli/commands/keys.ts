import type { Command } from 'commander';
import { SCOPES, parseScopes } from '../../api-keys/scopes.js';
import { createApiKey, listApiKeys, revokeApiKey, toKeyListItem } from '../../api-keys/store.js';
import { isId } from '../../lib/ids.js';
import { formatTimestamp, systemClock } from '../../lib/time.js';
import { findWorkspace } from '../../workspaces/store.js';
import { CliError, positiveInt, print, withDb } from '../output.js';

export function keysCommands(program: Command): void {
  const keys = program.command('keys').description('manage API keys');

  keys
    .command('create')
    .description('create an API key (the secret is shown once)')
    .requiredOption('--workspace <id>', 'workspace id')
    .requiredOption('--scopes <list>', `comma-separated scopes, from: ${SCOPES.join(', ')}`)
    .option('--name <name>', 'a label for the key', 'default')
    .option('--expires-in-days <d>', 'expire the key after D days', positiveInt('--expires-in-days', 1))
    .option('--json', 'print one JSON object')
    .action(async (opts: { workspace: string; scopes: string; name: string; expiresInDays?: number; json?: boolean }) => {
      let scopes;
      try {
        scopes = parseScopes(opts.scopes);
      } catch (error) {
        throw new CliError((error as Error).message);
      }
      const created = await withDb(async (db) => {
        if (!isId(opts.workspace) || !(await findWorkspace(db.db, opts.workspace))) throw new CliError(`no workspace ${opts.workspace}`);
        return createApiKey(db.db, { workspaceId: opts.workspace, scopes, name: opts.name, expiresInDays: opts.expiresInDays, now: systemClock.now() });
      });
      const out = {
        key_id: created.row.id,
        api_key: created.secret,
        scopes,
        workspace_id: opts.workspace,
        expires_at: formatTimestamp(created.row.expires_at),
      };
      print(!!opts.json, out, `API key (shown once, store it now): ${out.api_key}\nkey id ${out.key_id}, scopes ${scopes.join(',')}, expires ${out.expires_at ?? 'never'}`);
    });

  keys
    .command('list')
    .description('list a workspace’s keys (prefixes only)')
    .requiredOption('--workspace <id>', 'workspace id')
    .option('--json', 'print one JSON object')
    .action(async (opts: { workspace: string; json?: boolean }) => {
      const rows = await withDb(async (db) => {
        if (!isId(opts.workspace) || !(await findWorkspace(db.db, opts.workspace))) throw new CliError(`no workspace ${opts.workspace}`);
        return listApiKeys(db.db, opts.workspace);
      });
      const items = rows.map(toKeyListItem);
      const human = items
        .map((k) => `${k.key_id}  ${k.prefix}…  ${k.name}  [${k.scopes.join(',')}]${k.revoked_at ? '  revoked' : ''}${k.expires_at ? `  expires ${k.expires_at}` : ''}`)
        .join('\n');
      print(!!opts.json, { keys: items }, human || 'no keys');
    });

  keys
    .command('revoke')
    .description('revoke a key (every process stops accepting it within 5 seconds)')
    .requiredOption('--key <id>', 'key id')
    .option('--json', 'print one JSON object')
    .action(async (opts: { key: string; json?: boolean }) => {
      const found = await withDb((db) => (isId(opts.key) ? revokeApiKey(db.db, opts.key, systemClock.now()) : Promise.resolve(false)));
      if (!found) throw new CliError(`no key ${opts.key}`);
      print(!!opts.json, { key_id: opts.key, revoked: true }, `Key ${opts.key} revoked.`);
    });
}
