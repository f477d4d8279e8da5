import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachBackend } from './helpers/backends.js';
import { MAIN, onlyJson, skipflow } from './helpers/cli-run.js';
import { type TestServer, startTestServer } from './helpers/server.js';

// docs/api.md#command-line (user commands): the CLI over HTTP against a real server,
// driven as a subprocess; once under a pseudo-terminal for the live display.

describeEachBackend('user CLI over HTTP', (backend) => {
  let t: TestServer;
  let env: Record<string, string>;
  const dir = mkdtempSync(join(tmpdir(), 'skipflow-cli-user-'));
  beforeAll(async () => {
    t = await startTestServer(backend, { allowPrivateNetwork: true });
    await t.server.app!.listen({ port: 0, host: '127.0.0.1' });
    env = { SKIPFLOW_URL: `http://127.0.0.1:${(t.server.app!.server.address() as { port: number }).port}`, SKIPFLOW_API_KEY: t.apiKey };
  });
  afterAll(() => t?.close());

  const file = (name: string, value: unknown) => {
    const path = join(dir, name);
    writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
    return path;
  };

  it('applies a workflow file (create, then replace by its id), lists, gets and deletes workflows', async () => {
    const created = onlyJson(await skipflow(['workflows', 'apply', file('wf.json', { name: 'from file', steps: [{ type: 'transform', expression: 'input.x * 2' }] }), '--json'], env));
    expect(created).toMatchObject({ name: 'from file' });
    const replaced = onlyJson(await skipflow(['workflows', 'apply', file('wf2.json', { ...created, name: 'replaced' }), '--json'], env));
    expect(replaced).toMatchObject({ id: created.id, name: 'replaced' });
    const list = onlyJson(await skipflow(['workflows', 'list', '--json'], env));
    expect(list.workflows.map((w: { id: string }) => w.id)).toContain(created.id);
    expect(list.has_more).toBe(false);
    const human = await skipflow(['workflows', 'list'], env);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`${created.id}  replaced`);
    expect(onlyJson(await skipflow(['workflows', 'get', created.id, '--json'], env)).steps).toHaveLength(1);
    expect(onlyJson(await skipflow(['workflows', 'delete', created.id, '--json'], env))).toEqual({ id: created.id, name: 'replaced', deleted: true });
  });

  it('runs with --input / --input-file, --wait exits 0 on success and 1 on failure; executions list/get/stop', async () => {
    const ok = onlyJson(await skipflow(['workflows', 'apply', file('ok.json', { name: 'ok', steps: [{ type: 'transform', name: 'double', expression: 'input.x * 2' }] }), '--json'], env));
    const started = onlyJson(await skipflow(['run', ok.id, '--input', '{"x":2}', '--json'], env));
    expect(started).toMatchObject({ workflow_id: ok.id, status: 'running' });

    const waited = await skipflow(['run', ok.id, '--input-file', file('in.json', { x: 21 }), '--wait', '--json'], env);
    expect(waited.code, waited.stderr).toBe(0);
    const final = onlyJson(waited);
    expect(final).toMatchObject({ status: 'success' });
    expect(final.steps[0]).toMatchObject({ name: 'double', result: 42, status: 'completed' });

    const plain = await skipflow(['run', ok.id, '--input', '{"x":1}', '--wait'], env);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/step 0 double \(transform\) completed/);
    expect(plain.stdout.trim().split('\n').at(-1)).toBe('success');
    expect(plain.stdout).not.toContain('\x1b[');

    const bad = onlyJson(await skipflow(['workflows', 'apply', file('bad.json', { name: 'bad', steps: [{ type: 'transform', expression: '$error("nope")' }] }), '--json'], env));
    const failed = await skipflow(['run', bad.id, '--wait'], env);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/expression_error/);

    const same1 = onlyJson(await skipflow(['run', ok.id, '--idempotency-key', 'cli-key-1', '--json'], env));
    const same2 = onlyJson(await skipflow(['run', ok.id, '--idempotency-key', 'cli-key-1', '--json'], env));
    expect(same2.execution_id).toBe(same1.execution_id);

    const list = onlyJson(await skipflow(['executions', 'list', '--workflow', ok.id, '--limit', '2', '--json'], env));
    expect(list.executions).toHaveLength(2);
    expect(list.has_more).toBe(true);
    const got = onlyJson(await skipflow(['executions', 'get', started.execution_id, '--steps', '--json'], env));
    expect(got.steps[0].result).toBe(4);

    const sleeper = onlyJson(await skipflow(['workflows', 'apply', file('sleep.json', { name: 'sleep', steps: [{ type: 'delay', seconds: 3600 }] }), '--json'], env));
    const asleep = onlyJson(await skipflow(['run', sleeper.id, '--json'], env));
    expect(onlyJson(await skipflow(['executions', 'stop', asleep.execution_id, '--json'], env))).toEqual({ execution_id: asleep.execution_id, status: 'stopped' });
  });

  it('exits 2 with the API’s message on stderr (and one JSON object with --json) on an API error or bad usage', async () => {
    const missing = await skipflow(['executions', 'get', '0'.repeat(24)], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/not found/i);
    expect(missing.stdout).toBe('');
    const asJson = await skipflow(['executions', 'get', '0'.repeat(24), '--json'], env);
    expect(asJson.code).toBe(2);
    expect(onlyJson(asJson)).toMatchObject({ error_code: 'not_found', error: expect.stringMatching(/not found/i) });
    const badKey = await skipflow(['workflows', 'list'], { ...env, SKIPFLOW_API_KEY: 'sk_live_wrong' });
    expect(badKey.code).toBe(2);
    expect(badKey.stderr).toMatch(/Invalid API key/);
    const noKey = await skipflow(['workflows', 'list'], { SKIPFLOW_URL: env.SKIPFLOW_URL! });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(/--api-key|SKIPFLOW_API_KEY/);
    const badInput = await skipflow(['run', '0'.repeat(24), '--input', '{nope'], env);
    expect(badInput.code).toBe(2);
    expect(badInput.stderr).toMatch(/--input is not JSON/);
    const unknown = await skipflow(['executions', 'frobnicate', '--json'], env);
    expect(unknown.code).toBe(2);
    expect(onlyJson(unknown).error_code).toBe('invalid_usage');
    const flags = await skipflow(['--url', 'http://127.0.0.1:1', 'workflows', 'list'], env);
    expect(flags.code).toBe(2);
    const down = await skipflow(['workflows', 'list', '--url', 'http://127.0.0.1:1'], env);
    expect(down.code).toBe(2);
    expect(down.stderr).toMatch(/Could not reach http:\/\/127\.0\.0\.1:1/);
  });

  it('shows a live display under a pseudo-terminal', async () => {
    const wf = onlyJson(await skipflow(['workflows', 'apply', file('tty.json', {
      name: 'tty',
      steps: [
        { type: 'transform', name: 'first', expression: '1' },
        { type: 'delay', name: 'pause', seconds: 1 },
        { type: 'transform', name: 'last', expression: '3' },
      ],
    }), '--json'], env));
    // util-linux `script` gives the command a terminal; its output is what the terminal got.
    const command = `${process.execPath} ${MAIN} run ${wf.id} --wait`;
    // Asynchronously: the server under test runs in this process.
    const { stdout: out } = await promisify(execFile)('script', ['-qfec', command, '/dev/null'], { env: { ...env, PATH: process.env.PATH ?? '', LOG_LEVEL: 'silent' }, encoding: 'utf8', timeout: 30_000 });
    expect(out).toMatch(/\x1b\[2K/); // lines redrawn in place
    expect(out).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] 1 pause \(delay\) running/); // a spinner on the running step
    expect(out).toMatch(/✔ 2 last \(transform\) completed \d+ ms/);
    expect(out).toMatch(/✔ success/);
  });
});
