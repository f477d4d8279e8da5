import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadConfig } from '../../config.js';
import { newSecretKeyText, parseSecretKey } from '../../secrets/cipher.js';
import { rotateSecretKey } from '../../secrets/rotate-key.js';
import { keyFilePath, loadSecretKey } from '../../secrets/secret-key.js';
import { CliError, print, withDb } from '../output.js';

// `skipflow secrets rotate-key`: re-encrypts every secret under a new key. The new key
// comes from SKIPFLOW_NEW_SECRET_KEY or --new-key-file (never the command line, which
// shell histories and process lists keep); on SQLite with a key file and neither
// given, a new key is generated and replaces the key file.

export function secretsCommands(program: Command): void {
  program
    .command('secrets')
    .description('manage the key that encrypts secrets')
    .command('rotate-key')
    .description('re-encrypt every secret under a new key (stop the servers first, restart them with the new key)')
    .option('--new-key-file <path>', 'a file holding the new key (64 hex digits or base64 of 32 bytes); default $SKIPFLOW_NEW_SECRET_KEY')
    .option('--json', 'print one JSON object')
    .action(async (opts: { newKeyFile?: string; json?: boolean }) => {
      const config = loadConfig();
      const current = loadSecretKey(config);
      if (current === null) throw new CliError('no current key: set SKIPFLOW_SECRET_KEY to the key the secrets were written with');
      const keyFile = config.secretKey === null ? keyFilePath(config.databaseUrl) : null;
      let newText: string;
      let generated = false;
      if (opts.newKeyFile !== undefined) newText = readFileSync(opts.newKeyFile, 'utf8');
      else if (process.env.SKIPFLOW_NEW_SECRET_KEY) newText = process.env.SKIPFLOW_NEW_SECRET_KEY;
      else if (keyFile !== null) {
        newText = newSecretKeyText();
        generated = true;
      } else throw new CliError('give the new key in SKIPFLOW_NEW_SECRET_KEY or with --new-key-file');
      let newKey: Buffer;
      try {
        newKey = parseSecretKey(newText, opts.newKeyFile ? `the key in ${opts.newKeyFile}` : 'SKIPFLOW_NEW_SECRET_KEY');
      } catch (error) {
        throw new CliError((error as Error).message);
      }
      // A generated key is on disk before the database uses it: if this process dies
      // after the commit, `secret.key.new` holds the key the secrets are under.
      const pending = keyFile !== null && generated ? `${keyFile}.new` : null;
      if (pending) writeFileSync(pending, `${newText}\n`, { mode: 0o600 });
      let rotated: { secrets: number };
      try {
        rotated = await withDb((db) => rotateSecretKey(db, current.key, newKey));
      } catch (error) {
        throw new CliError(`rotation failed, nothing was changed: ${(error as Error).message}`);
      }
      if (pending && keyFile) renameSync(pending, keyFile);
      const next = pending && keyFile ? `the key file ${keyFile} now holds the new key` : 'set SKIPFLOW_SECRET_KEY to the new key';
      print(!!opts.json, { rotated: rotated.secrets, key_file: pending ? keyFile : null }, `Re-encrypted ${rotated.secrets} secrets; ${next}, then restart every server.`);
    });
}
