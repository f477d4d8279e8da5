import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { Execution, ExecutionListItem, Workflow, WorkflowInput } from '../../../client/index.js';
import { EXIT } from '../../exit-codes.js';
import { CliError } from '../../output.js';
import { type ConnectionOptions, clientFor, printJson, withConnection } from './connection.js';
import { liveDisplay, plainDisplay } from './live-display.js';

// The everyday commands of a SkipFlow user, over HTTP (docs/api.md#command-line):
// run, executions list/get/stop/retry, workflows list/get/apply/delete.

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new CliError(`${what} is not JSON: ${(error as Error).message}`);
  }
}

function readFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read ${what} ${path}: ${(error as Error).message}`);
  }
}

function intOption(name: string, min: number, max: number) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new CliError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
    return n;
  };
}

function executionLine(e: ExecutionListItem): string {
  return `${e.execution_id}  ${e.status.padEnd(7)}  ${e.workflow_name}  ${e.trigger.type}  ${e.created_at}${e.completed_at ? ` → ${e.completed_at}` : ''}`;
}

function executionText(e: Execution): string {
  const lines = [`${e.execution_id} ${e.status} (workflow ${e.workflow_id} "${e.workflow_name}")`, `started ${e.started_at}${e.completed_at ? `, completed ${e.completed_at}` : ''}`];
  if (e.error) lines.push(`error (${e.error_code}): ${e.error}`);
  for (const s of e.steps ?? []) {
    lines.push(`  step ${s.index}${s.name ? ` ${s.name}` : ''} (${s.type}) ${s.status}${s.duration_ms === null ? '' : ` ${s.duration_ms} ms`}${s.error ? ` — ${s.error_code}: ${s.error}` : ''}`);
  }
  return lines.join('\n');
}

function workflowLine(w: Workflow): string {
  return `${w.id}  ${w.name}  ${w.steps.length} step(s)  updated ${w.updated_at}`;
}

export function userCommands(program: Command): void {
  withConnection(
    program
      .command('run <workflowId>')
      .description('start an execution of a workflow (over HTTP)')
      .option('--input <json>', 'the execution’s input, as JSON')
      .option('--input-file <file>', 'read the input from a JSON file')
      .option('--idempotency-key <key>', 'reuse a key to make a repeated run start nothing new')
      .option('--wait', 'follow the execution until it ends; exit 1 if it fails or is stopped'),
  ).action(async (workflowId: string, opts: ConnectionOptions & { input?: string; inputFile?: string; idempotencyKey?: string; wait?: boolean }) => {
    if (opts.input !== undefined && opts.inputFile !== undefined) throw new CliError('give --input or --input-file, not both');
    const input = opts.input !== undefined ? parseJson(opts.input, '--input') : opts.inputFile !== undefined ? parseJson(readFile(opts.inputFile, '--input-file'), `--input-file ${opts.inputFile}`) : undefined;
    const client = clientFor(opts);
    const accepted = await client.workflows.runAsync(workflowId, { input, ...(opts.idempotencyKey ? { idempotencyKey: opts.idempotencyKey } : {}) });
    if (!opts.wait) {
      if (opts.json) printJson(accepted);
      else process.stdout.write(`${accepted.execution_id} running\n`);
      return;
    }
    const write = (text: string) => void process.stderr.write(text);
    const display = opts.json ? null : process.stdout.isTTY ? liveDisplay((t) => void process.stdout.write(t)) : plainDisplay((t) => void process.stdout.write(t));
    try {
      for await (const event of client.executions.events(accepted.execution_id)) display?.event(event);
    } catch (error) {
      // The stream is a convenience: the long poll below still gets the outcome.
      write(`skipflow: the event stream failed (${(error as Error).message}); waiting for the result\n`);
    }
    const final = await client.executions.waitFor(accepted.execution_id, { includeStepResults: true });
    if (opts.json) printJson(final);
    else display?.end(final);
    if (final.status !== 'success') process.exitCode = EXIT.executionFailed;
  });

  const executions = program.command('executions').description('list, inspect, stop and retry executions (over HTTP)');
  withConnection(
    executions
      .command('list')
      .description('list executions, newest first')
      .option('--workflow <id>', 'only this workflow’s')
      .option('--status <status>', 'running, success, failed or stopped')
      .option('--limit <n>', '1–100 (default 20)', intOption('--limit', 1, 100)),
  ).action(async (opts: ConnectionOptions & { workflow?: string; status?: string; limit?: number }) => {
    const page = await clientFor(opts).executions.list({ workflowId: opts.workflow, status: opts.status, limit: opts.limit });
    if (opts.json) printJson(page);
    else process.stdout.write(page.executions.length ? `${page.executions.map(executionLine).join('\n')}\n` : 'No executions.\n');
  });
  withConnection(executions.command('get <id>').description('show an execution').option('--steps', 'include each step’s status and result')).action(
    async (id: string, opts: ConnectionOptions & { steps?: boolean }) => {
      const execution = await clientFor(opts).executions.get(id, { includeStepResults: Boolean(opts.steps) });
      if (opts.json) printJson(execution);
      else process.stdout.write(`${executionText(execution)}\n`);
    },
  );
  withConnection(executions.command('stop <id>').description('stop a running execution')).action(async (id: string, opts: ConnectionOptions) => {
    const stopped = await clientFor(opts).executions.stop(id);
    if (opts.json) printJson(stopped);
    else process.stdout.write(`${stopped.execution_id} stopped\n`);
  });
  withConnection(executions.command('retry <id>').description('run a failed or stopped execution again').option('--from <where>', 'failed_step (default) or start')).action(
    async (id: string, opts: ConnectionOptions & { from?: string }) => {
      if (opts.from !== undefined && opts.from !== 'start' && opts.from !== 'failed_step') throw new CliError(`--from must be start or failed_step, got "${opts.from}"`);
      const accepted = await clientFor(opts).executions.retry(id, opts.from ? { from: opts.from as 'start' | 'failed_step' } : {});
      if (opts.json) printJson(accepted);
      else process.stdout.write(`${accepted.execution_id} running (retry of ${accepted.retry_of})\n`);
    },
  );

  const workflows = program.command('workflows').description('list, show, apply and delete workflows (over HTTP)');
  withConnection(workflows.command('list').description('list workflows, newest first').option('--limit <n>', '1–100 (default 20)', intOption('--limit', 1, 100))).action(
    async (opts: ConnectionOptions & { limit?: number }) => {
      const page = await clientFor(opts).workflows.list({ limit: opts.limit });
      if (opts.json) printJson(page);
      else process.stdout.write(page.workflows.length ? `${page.workflows.map(workflowLine).join('\n')}\n` : 'No workflows.\n');
    },
  );
  withConnection(workflows.command('get <id>').description('show a workflow')).action(async (id: string, opts: ConnectionOptions) => {
    const workflow = await clientFor(opts).workflows.get(id);
    if (opts.json) printJson(workflow);
    else process.stdout.write(`${JSON.stringify(workflow, null, 2)}\n`);
  });
  withConnection(workflows.command('apply <file>').description('create the workflow a JSON file describes, or replace the one whose "id" it names')).action(
    async (file: string, opts: ConnectionOptions) => {
      const definition = parseJson(readFile(file, 'workflow file'), `workflow file ${file}`);
      if (definition === null || typeof definition !== 'object' || Array.isArray(definition)) throw new CliError(`workflow file ${file} must hold a JSON object`);
      const { id, ...fields } = definition as Record<string, unknown>;
      // Fields a GET returns but a write does not take: a file saved from `workflows get` applies as it is.
      for (const key of ['created_by', 'created_at', 'updated_at', 'last_run_at']) delete fields[key];
      const client = clientFor(opts);
      const workflow = id === undefined ? await client.workflows.create(fields as WorkflowInput) : await client.workflows.update(String(id), fields as WorkflowInput);
      if (opts.json) printJson(workflow);
      else process.stdout.write(`${id === undefined ? 'created' : 'replaced'} ${workflow.id} "${workflow.name}"\n`);
    },
  );
  withConnection(workflows.command('delete <id>').description('delete a workflow (its running executions are stopped)')).action(async (id: string, opts: ConnectionOptions) => {
    const deleted = await clientFor(opts).workflows.delete(id);
    if (opts.json) printJson(deleted);
    else process.stdout.write(`deleted ${deleted.id} "${deleted.name}"\n`);
  });
}
