import type { Command } from 'commander';

/** Appends "(required)" to every mandatory option's help line, on every command, so
 * `--help` says what must be given without trial and error. */
export function markRequiredOptions(command: Command): void {
  for (const option of command.options) {
    if (option.mandatory && !option.description.endsWith('(required)')) option.description = `${option.description} (required)`;
  }
  for (const sub of command.commands) markRequiredOptions(sub);
}
