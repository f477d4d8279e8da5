import type { Command } from 'commander';
import { loadConfig } from '../../config.js';
import { enableIncrementalVacuum, pruneExecutions, retentionCutoff, sqliteAutoVacuum } from '../../retention/prune.js';
import { CliError, positiveInt, print, withDb } from '../output.js';

// `skipflow prune`: the background pruner's work, now. `--vacuum` (SQLite) converts a
// database created before incremental vacuum was the default; it rewrites the file.

export function pruneCommands(program: Command): void {
  program
    .command('prune')
    .description('delete finished executions older than the retention period (with their steps and deliveries)')
    .option('--older-than-days <n>', 'instead of SKIPFLOW_RETENTION_DAYS', positiveInt('--older-than-days', 0))
    .option('--vacuum', 'SQLite: switch an older database to incremental vacuum (rewrites the file; stop the server first)')
    .option('--json', 'print one JSON object')
    .action(async (opts: { olderThanDays?: number; vacuum?: boolean; json?: boolean }) => {
      const days = opts.olderThanDays ?? loadConfig().retentionDays;
      if (days === 0 && opts.olderThanDays === undefined) throw new CliError('SKIPFLOW_RETENTION_DAYS is 0 (keep for ever); give --older-than-days N to prune anyway');
      const result = await withDb(async (db) => {
        const deleted = await pruneExecutions(db, retentionCutoff(Date.now(), days));
        let vacuumed = false;
        if (opts.vacuum && db.kind === 'sqlite' && (await sqliteAutoVacuum(db)) !== 2) {
          await enableIncrementalVacuum(db);
          vacuumed = true;
        }
        return { deleted, vacuumed };
      });
      const out = opts.vacuum ? result : { deleted: result.deleted };
      print(!!opts.json, out, `Deleted ${result.deleted} executions finished more than ${days} days ago.${result.vacuumed ? ' The database now returns freed pages to the file system.' : ''}`);
    });
}
