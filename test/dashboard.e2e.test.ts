import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkflow, finished, get, run } from './helpers/api.js';
import { type DashboardServer, launchBrowser, screenshot, signIn, startDashboardServer, unnamedControls } from './helpers/browser.js';
import { eventually } from './helpers/server.js';

// The dashboard end to end, in headless Chromium against a real server on loopback
// (SQLite: the dashboard only speaks HTTP, so the backend does not matter here). The
// features whose APIs live on other branches are in dashboard-integrations.e2e.test.ts.

let t: DashboardServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const requests: string[] = [];

beforeAll(async () => {
  t = await startDashboardServer();
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('request', (request) => requests.push(request.url()));
}, 60_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await t?.close();
});

const rowOf = (id: string) => page.locator(`tr[data-execution-id="${id}"]`);

describe('the dashboard', () => {
  it('is served at / with index.html uncached, hashed assets immutable, deep links answered, API 404s still JSON', async () => {
    const index = await fetch(`${t.baseUrl}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/text\/html/);
    expect(index.headers.get('cache-control')).toBe('no-cache');
    expect(index.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await index.text();
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)![1]!;
    const script = await fetch(`${t.baseUrl}${asset}`);
    expect(script.status).toBe(200);
    expect(script.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(script.headers.get('content-type')).toMatch(/javascript/);
    for (const deep of ['/executions', '/executions/665f1a2b3c4d5e6f7a8b9c0d', '/workflows', '/workflows/abc', '/secrets']) {
      const response = await fetch(`${t.baseUrl}${deep}`);
      expect(response.status, deep).toBe(200);
      expect(await response.text()).toBe(html);
    }
    // Nothing of the API is shadowed: unknown API paths stay authenticated JSON errors.
    for (const [path, key, status] of [
      ['/api/v1/nope', null, 401],
      ['/api/v1/nope', t.apiKey, 404],
      ['/hooks/wh_unknown', t.apiKey, 404],
      ['/assets/missing.js', null, 404],
      ['/assets/..%2f..%2fpackage.json', null, 404],
      ['/elsewhere', t.apiKey, 404],
    ] as const) {
      const response = await fetch(`${t.baseUrl}${path}`, key ? { headers: { authorization: `Bearer ${key}` } } : {});
      expect(response.status, path).toBe(status);
      expect(response.headers.get('content-type'), path).toMatch(/application\/json/);
      expect(((await response.json()) as { error_code: string }).error_code).toBeTypeOf('string');
    }
    expect((await t.request({ method: 'GET', url: '/api/v1/workspace' })).statusCode).toBe(200);
  });

  it('signs in with a pasted key kept in sessionStorage only, refuses a wrong one, and signs out', async () => {
    await page.goto(`${t.baseUrl}/`);
    await screenshot(page, 'sign-in');
    await page.getByLabel('API key', { exact: true }).fill('sk_live_wrong');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/Invalid API key/);
    // Keyboard only: focus the field, type, Enter.
    await page.getByLabel('API key', { exact: true }).fill('');
    await page.getByLabel('API key', { exact: true }).focus();
    await page.keyboard.type(t.apiKey);
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Sign out', exact: true }).waitFor();
    expect(await page.evaluate(() => Object.values(sessionStorage))).toEqual([t.apiKey]);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    expect(await context.cookies()).toEqual([]);
    for (const name of ['Executions', 'Workflows', 'Secrets']) await expect.poll(() => page.getByRole('link', { name, exact: true }).count()).toBe(1);
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.getByLabel('API key', { exact: true }).waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await signIn(page, t.baseUrl, t.apiKey);
  });

  it('shows the workspace credits', async () => {
    const workspace = (await t.request({ method: 'GET', url: '/api/v1/workspace' })).json() as { credits: number };
    await page.reload();
    await expect.poll(() => page.getByTestId('credits').textContent()).toBe(`Credits: ${workspace.credits}`);
  });

  it('lists executions with their columns, links each row, filters by status and workflow, and pages with the cursor', async () => {
    const ok = await createWorkflow(t, [{ type: 'transform', name: 'double', expression: 'input.n * 2' }], 'Doubler');
    const bad = await createWorkflow(t, [{ type: 'transform', expression: '$error("boom")' }], 'Breaker');
    const ids: string[] = [];
    for (let i = 0; i < 21; i++) ids.push(await run(t, ok, { n: i }));
    const failed = await run(t, bad, {});
    for (const id of [...ids, failed]) await finished(t, id);

    if ((await page.getByRole('button', { name: 'Sign out', exact: true }).count()) === 0) await signIn(page, t.baseUrl, t.apiKey);
    await page.getByRole('link', { name: 'Executions', exact: true }).click();
    const header = await page.locator('table[aria-label="Executions"] thead th').allTextContents();
    expect(header).toEqual(['ID', 'Workflow', 'Status', 'Trigger', 'Started', 'Duration']);
    await rowOf(failed).waitFor();
    const cells = await rowOf(failed).locator('td').allTextContents();
    expect(cells[0]).toBe(failed);
    expect(cells.slice(1, 4)).toEqual(['Breaker', 'failed', 'api']);
    expect(cells[4]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    expect(cells[5]).toMatch(/ms|s$/);
    await screenshot(page, 'executions');

    // Pagination: 22 executions, 20 a page; the next page starts after the last row's id.
    expect(await page.locator('tbody tr').count()).toBe(20);
    await page.getByRole('button', { name: 'Next page', exact: true }).click();
    await expect.poll(() => page.locator('tbody tr').count()).toBe(2);
    expect(await rowOf(ids[0]!).count()).toBe(1);
    await page.getByRole('button', { name: 'Previous page', exact: true }).click();
    await expect.poll(() => page.locator('tbody tr').count()).toBe(20);

    await page.getByLabel('Status', { exact: true }).selectOption(['failed']);
    await expect.poll(() => page.locator('tbody tr').count()).toBe(1);
    expect(await rowOf(failed).count()).toBe(1);
    // The filters are in the URL: a reload keeps them.
    expect(new URL(page.url()).search).toBe('?status=failed');
    await page.reload();
    await rowOf(failed).waitFor();
    expect(await page.locator('tbody tr').count()).toBe(1);
    expect(await page.getByLabel('Status', { exact: true }).evaluate((s) => Array.from((s as HTMLSelectElement).selectedOptions, (o) => o.value))).toEqual(['failed']);
    await page.getByLabel('Status', { exact: true }).selectOption([]);
    await page.getByLabel('Workflow', { exact: true }).selectOption({ label: 'Doubler' });
    await expect.poll(() => rowOf(failed).count()).toBe(0);
    expect(await page.locator('tbody tr').count()).toBe(20);
    await page.getByLabel('Workflow', { exact: true }).selectOption('');

    await rowOf(failed).getByRole('link').click();
    await page.waitForURL(`${t.baseUrl}/executions/${failed}`);
    await expect.poll(() => page.getByTestId('execution-status').textContent()).toBe('failed');
  });

  it('shows new and changed executions without a reload', async () => {
    const slow = await createWorkflow(t, [{ type: 'delay', seconds: 2 }, { type: 'transform', expression: '"done"' }], 'Slow');
    await page.getByRole('link', { name: 'Executions', exact: true }).click();
    await page.locator('tbody tr').first().waitFor();
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));
    const id = await run(t, slow, {});
    await rowOf(id).waitFor({ timeout: 10_000 });
    await expect.poll(() => rowOf(id).locator('td').nth(2).textContent(), { timeout: 10_000 }).toBe('success');
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1);
  });

  it('shows an execution as a live timeline: status, attempts, duration, errors and collapsible pretty JSON results', async () => {
    const wf = await createWorkflow(
      t,
      [
        { type: 'transform', name: 'shape', expression: '{"greeting": "hi " & input.who, "n": [1, 2]}' },
        { type: 'delay', name: 'wait', seconds: 2 },
        { type: 'transform', name: 'explode', expression: '$error("it broke")' },
      ],
      'Timeline',
    );
    const id = await run(t, wf, { who: 'Ada' });
    await page.goto(`${t.baseUrl}/executions/${id}`);
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));
    const step = (i: number) => page.locator(`li[data-step-index="${i}"]`);
    await expect.poll(() => step(1).locator('.status').textContent()).toBe('running');
    await expect.poll(() => page.getByTestId('execution-status').textContent(), { timeout: 10_000 }).toBe('failed');
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1);

    expect(await step(0).locator('.status').textContent()).toBe('completed');
    expect(await step(0).textContent()).toMatch(/attempts 1 · duration \d+ ms/);
    const result = step(0).locator('details');
    expect(await result.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(false);
    await result.locator('summary').click();
    expect(await result.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(true);
    expect(await result.locator('pre').textContent()).toBe(JSON.stringify({ greeting: 'hi Ada', n: [1, 2] }, null, 2));
    expect(await step(2).locator('.status').textContent()).toBe('failed');
    expect(await step(2).locator('.error-text').textContent()).toContain('it broke');
    await screenshot(page, 'execution');
  });

  it('renders step results as text: an HTML/script payload runs nothing', async () => {
    const payload = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><b>bold</b>';
    const wf = await createWorkflow(t, [{ type: 'transform', name: '<i>name</i>', expression: JSON.stringify(payload) }], '<b>Evil</b>');
    const id = await run(t, wf, { html: '<svg onload="window.__xss=3">' });
    await finished(t, id);
    await page.goto(`${t.baseUrl}/executions/${id}`);
    const step = page.locator('li[data-step-index="0"]');
    await step.locator('summary').click();
    expect(await step.locator('pre').textContent()).toBe(JSON.stringify(payload));
    expect(await step.locator('strong').first().textContent()).toBe('<i>name</i>');
    await page.getByText('<b>Evil</b>').first().waitFor();
    expect(await page.locator('main img, main script, main b, main svg, main i').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
    await page.goto(`${t.baseUrl}/executions`);
    await rowOf(id).waitFor();
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
  });

  it('stops a running execution with Stop', async () => {
    const wf = await createWorkflow(t, [{ type: 'delay', seconds: 60 }], 'Long wait');
    const id = await run(t, wf, {});
    await page.goto(`${t.baseUrl}/executions/${id}`);
    await page.getByRole('button', { name: 'Stop', exact: true }).click();
    await expect.poll(() => page.getByTestId('execution-status').textContent()).toBe('stopped');
    expect((await get(t, id)).status).toBe('stopped');
    expect(await page.getByRole('button', { name: 'Stop', exact: true }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Retry', exact: true }).count()).toBe(1);
  });

  it('keeps deep links across a reload', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }], 'Deep');
    const id = await run(t, wf, {});
    await finished(t, id);
    for (const [url, heading] of [
      [`/executions/${id}`, `Execution ${id}`],
      [`/workflows/${wf}`, 'Deep'],
      ['/workflows', 'Workflows'],
      ['/secrets', 'Secrets'],
    ] as const) {
      await page.goto(`${t.baseUrl}${url}`);
      await expect.poll(() => page.locator('h1').textContent()).toBe(heading);
      await page.reload();
      await expect.poll(() => page.locator('h1').textContent()).toBe(heading);
      expect(new URL(page.url()).pathname).toBe(url);
    }
  });

  it('lists workflows, shows one workflow’s steps, and runs it with Input', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', name: 'echo', expression: 'input' }], 'Runner');
    await page.getByRole('link', { name: 'Workflows', exact: true }).click();
    await page.getByRole('link', { name: 'Runner', exact: true }).click();
    await page.waitForURL(`${t.baseUrl}/workflows/${wf}`);
    await page.locator('section[aria-label="Steps"] li').first().waitFor();
    expect(await page.locator('section[aria-label="Steps"] li strong').allTextContents()).toEqual(['echo']);
    await screenshot(page, 'workflow');
    const before = Number((await page.getByTestId('credits').textContent())!.replace(/\D/g, ''));

    await page.getByLabel('Input', { exact: true }).fill('{ not json');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await expect.poll(() => page.locator('#run-error').textContent()).toContain('not valid JSON');

    await page.getByLabel('Input', { exact: true }).fill('{"city": "Oslo"}');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.waitForURL(/\/executions\/[0-9a-f]{24}$/);
    const id = page.url().split('/').pop()!;
    expect((await finished(t, id)).input).toEqual({ city: 'Oslo' });
    await expect.poll(() => page.getByTestId('execution-status').textContent()).toBe('success');
    await expect.poll(() => page.getByTestId('credits').textContent()).toBe(`Credits: ${before - 1}`);
  });

  it('saves the definition from the JSON editor, and shows a validation error beside the field it names', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }], 'Editable');
    await page.goto(`${t.baseUrl}/workflows/${wf}`);
    const editor = page.getByLabel('Definition (JSON)', { exact: true });
    await editor.waitFor();
    const definition = JSON.parse(await editor.inputValue()) as { steps: { expression: string }[] };
    definition.steps[0]!.expression = '';
    await editor.fill(JSON.stringify(definition, null, 2));
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    const error = page.locator('#definition-error');
    await expect.poll(() => page.getByTestId('error-field').textContent()).toMatch(/^steps\[0\]\.expression \(line \d+\)$/);
    expect(await error.textContent()).toContain('steps[0].expression');
    expect(await editor.getAttribute('aria-invalid')).toBe('true');
    // The line named is the one holding the field.
    const line = Number(/line (\d+)/.exec((await page.getByTestId('error-field').textContent())!)![1]);
    expect((await editor.inputValue()).split('\n')[line - 1]).toContain('"expression"');
    // Next to the field: the error box sits beside the editor, not somewhere else on the page.
    const [a, b] = [await editor.boundingBox(), await error.boundingBox()];
    expect(Math.abs(a!.y - b!.y)).toBeLessThan(40);

    definition.steps[0]!.expression = '"saved"';
    await editor.fill(JSON.stringify({ ...definition, name: 'Edited' }, null, 2));
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    const stored = (await t.request({ method: 'GET', url: `/api/v1/workflows/${wf}` })).json() as { name: string; steps: { expression: string }[] };
    expect(stored.name).toBe('Edited');
    expect(stored.steps[0]!.expression).toBe('"saved"');
  });

  it('degrades gracefully when the server lacks a feature’s routes', async () => {
    const missing = { status: 404, contentType: 'application/json', body: JSON.stringify({ error: 'No route GET /x. See /api/v1/openapi.json for the API.', error_code: 'not_found' }) };
    await page.route(/\/api\/v1\/(secrets|schedules|webhooks|executions\/[0-9a-f]{24}\/deliveries)/, (route) => route.fulfill(missing));
    try {
      const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }], 'Plain');
      const id = await run(t, wf, {});
      await finished(t, id);
      await page.goto(`${t.baseUrl}/secrets`);
      await page.getByText('Secrets are not available on this server.').waitFor();
      await page.goto(`${t.baseUrl}/workflows/${wf}`);
      await page.getByText('Schedules are not available on this server.').waitFor();
      await page.getByText('Webhooks are not available on this server.').waitFor();
      await page.goto(`${t.baseUrl}/executions/${id}`);
      await page.getByText('Notifications are not available on this server.').waitFor();
      expect(await page.getByTestId('execution-status').textContent()).toBe('success');
    } finally {
      await page.unroute(/\/api\/v1\/(secrets|schedules|webhooks|executions\/[0-9a-f]{24}\/deliveries)/);
    }
  });

  it('gives every control of every screen an accessible name', async () => {
    const wf = await createWorkflow(t, [{ type: 'delay', seconds: 30 }], 'Named');
    const id = await run(t, wf, {});
    const screens: [string, string][] = [
      ['/', 'tbody tr'],
      [`/executions/${id}`, 'li[data-step-index="0"]'],
      ['/workflows', 'tbody tr'],
      [`/workflows/${wf}`, '#definition'],
      ['/secrets', 'h1'],
    ];
    for (const [url, loaded] of screens) {
      await page.goto(`${t.baseUrl}${url}`);
      await page.locator(loaded).first().waitFor();
      expect(await unnamedControls(page), url).toEqual([]);
    }
    await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop` });
    await page.context().clearCookies();
    await page.evaluate(() => sessionStorage.clear());
    await page.goto(`${t.baseUrl}/`);
    await page.getByLabel('API key', { exact: true }).waitFor();
    expect(await unnamedControls(page)).toEqual([]);
    await signIn(page, t.baseUrl, t.apiKey);
  });

  it('is keyboard usable: the navigation is reached and followed with Tab and Enter', async () => {
    await page.goto(`${t.baseUrl}/executions`);
    await page.locator('h1').waitFor();
    await page.keyboard.press('Tab'); // first focusable: the Executions link
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Workflows');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${t.baseUrl}/workflows`);
  });

  it('never renders data as HTML: no innerHTML in the dashboard’s source', () => {
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
    for (const file of files('web/src')) {
      expect(readFileSync(file, 'utf8'), file).not.toMatch(/innerHTML|dangerouslySetInnerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    }
  });

  it('sent no request to any other host', () => {
    expect(requests.length).toBeGreaterThan(20);
    const hosts = new Set(requests.map((url) => new URL(url).origin));
    expect([...hosts]).toEqual([t.baseUrl]);
  });
});
