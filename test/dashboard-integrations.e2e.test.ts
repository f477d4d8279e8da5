import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Json, createWorkflow, finished, run } from './helpers/api.js';
import { type DashboardServer, launchBrowser, screenshot, signIn, startDashboardServer } from './helpers/browser.js';
import { eventually } from './helpers/server.js';

// The dashboard's screens over the APIs that other work adds: retry, approvals,
// notifications (deliveries), secrets, schedules, inbound webhooks, and the list
// filters by several statuses and by trigger. Same set-up as dashboard.e2e.test.ts.

let t: DashboardServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let receiver: Server;
let received = 0;
const requests: string[] = [];

beforeAll(async () => {
  t = await startDashboardServer({ allowPrivateNetwork: true });
  receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('request', (request) => requests.push(request.url()));
  await signIn(page, t.baseUrl, t.apiKey);
}, 60_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await new Promise((resolve) => receiver?.close(resolve));
  await t?.close();
});

const api = async (method: string, url: string, body?: unknown): Promise<Json> => {
  const response = await t.request({ method, url, ...(body !== undefined ? { body } : {}) });
  expect(response.statusCode, `${method} ${url}: ${response.body}`).toBeLessThan(300);
  return response.json() as Json;
};
const status = () => page.getByTestId('execution-status').textContent();
const rowOf = (id: string) => page.locator(`tr[data-execution-id="${id}"]`);

describe('the dashboard over the newer APIs', () => {
  it('filters executions by several statuses at once and by trigger', async () => {
    const good = await createWorkflow(t, [{ type: 'transform', expression: '1' }], 'Good');
    const bad = await createWorkflow(t, [{ type: 'transform', expression: '$error("no")' }], 'Bad');
    const long = await createWorkflow(t, [{ type: 'delay', seconds: 60 }], 'Long');
    const ok = await run(t, good, {});
    const failed = await run(t, bad, {});
    const stopped = await run(t, long, {});
    await finished(t, ok);
    await finished(t, failed);
    await api('POST', `/api/v1/executions/${stopped}/stop`);
    const retried = (await api('POST', `/api/v1/executions/${failed}/retry`, { from: 'start' })).execution_id as string;
    await finished(t, retried);

    await page.goto(`${t.baseUrl}/executions`);
    await page.getByLabel('Status', { exact: true }).selectOption(['failed', 'stopped']);
    await expect.poll(() => page.locator('tbody tr').count()).toBe(3);
    for (const id of [failed, stopped, retried]) expect(await rowOf(id).count()).toBe(1);
    await page.getByLabel('Status', { exact: true }).selectOption([]);
    await page.getByLabel('Trigger', { exact: true }).selectOption('retry');
    await expect.poll(() => page.locator('tbody tr').count()).toBe(1);
    expect(await rowOf(retried).locator('td').nth(3).textContent()).toBe(`retry of ${failed}`);
    await page.getByLabel('Trigger', { exact: true }).selectOption('');
  });

  it('retries a failed execution from the failed step or from the start', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', name: 'fine', expression: '"kept"' }, { type: 'transform', expression: '$error("flaky")' }], 'Retryable');
    const id = await run(t, wf, {});
    await finished(t, id);
    await page.goto(`${t.baseUrl}/executions/${id}`);
    await page.getByRole('button', { name: 'Retry', exact: true }).click();
    await page.waitForURL((url) => url.pathname.startsWith('/executions/') && !url.pathname.endsWith(id));
    const retry = page.url().split('/').pop()!;
    await expect.poll(status).toBe('failed');
    await page.getByRole('link', { name: id }).waitFor();
    expect(await page.locator('li[data-step-index="0"] .tag').textContent()).toBe('reused');
    expect(((await api('GET', `/api/v1/executions/${retry}`)) as Json).retry_of).toBe(id);

    await page.getByLabel('Retry from', { exact: true }).selectOption('start');
    await page.getByRole('button', { name: 'Retry', exact: true }).click();
    await page.waitForURL((url) => !url.pathname.endsWith(retry));
    await expect.poll(status).toBe('failed');
    expect(await page.locator('li[data-step-index="0"] .tag').count()).toBe(0);
    // A second retry of the same execution is refused with the API's message.
    await page.goto(`${t.baseUrl}/executions/${id}`);
    await page.getByRole('button', { name: 'Retry', exact: true }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain(retry);
  });

  it('approves and rejects a waiting approval', async () => {
    const wf = await createWorkflow(t, [{ type: 'approval', message: 'Ship {{ input.v }}?' }, { type: 'transform', expression: '"shipped"' }], 'Gate');
    const yes = await run(t, wf, { v: '1.2' });
    await page.goto(`${t.baseUrl}/executions/${yes}`);
    await page.getByRole('region', { name: 'Waiting for approval' }).getByText('Ship 1.2?').waitFor();
    await screenshot(page, 'approval');
    await page.getByLabel('Comment', { exact: true }).fill('looks good');
    await page.getByRole('button', { name: 'Approve', exact: true }).click();
    await expect.poll(status, { timeout: 10_000 }).toBe('success');
    const approved = (await api('GET', `/api/v1/executions/${yes}?include_step_results=true`)) as Json;
    expect(approved.steps[0].result).toMatchObject({ approved: true, comment: 'looks good' });

    const no = await run(t, wf, { v: '2.0' });
    await page.goto(`${t.baseUrl}/executions/${no}`);
    await page.getByRole('button', { name: 'Reject', exact: true }).click();
    await expect.poll(status, { timeout: 10_000 }).toBe('failed');
    expect(await page.getByRole('button', { name: 'Approve', exact: true }).count()).toBe(0);
  });

  it('lists an execution’s deliveries and redelivers one', async () => {
    const { port } = receiver.address() as AddressInfo;
    await api('POST', '/api/v1/webhook-endpoints', { url: `http://127.0.0.1:${port}/hook` });
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }], 'Notifies');
    const id = await run(t, wf, {});
    await finished(t, id);
    await eventually(async () => received >= 1);
    await page.goto(`${t.baseUrl}/executions/${id}`);
    const row = page.locator('table[aria-label="Deliveries"] tbody tr');
    await row.first().waitFor();
    expect(await row.locator('td').first().textContent()).toBe('execution.succeeded');
    const before = received;
    await row.getByRole('button', { name: 'Redeliver', exact: true }).click();
    await eventually(async () => received > before);
  });

  it('sets and deletes secrets, never showing a value', async () => {
    await page.getByRole('link', { name: 'Secrets', exact: true }).click();
    await page.getByLabel('Name', { exact: true }).fill('STRIPE_KEY');
    await page.getByLabel('Value', { exact: true }).fill('sk_test_very_secret');
    await page.getByRole('button', { name: 'Set', exact: true }).click();
    const row = page.locator('tr[data-secret="STRIPE_KEY"]');
    await row.waitFor();
    await screenshot(page, 'secrets');
    expect(await page.content()).not.toContain('sk_test_very_secret');
    expect(((await api('GET', '/api/v1/secrets')) as Json).secrets.map((s: Json) => s.name)).toEqual(['STRIPE_KEY']);
    await page.getByLabel('Name', { exact: true }).fill('bad name');
    await page.getByLabel('Value', { exact: true }).fill('x');
    await page.getByRole('button', { name: 'Set', exact: true }).click();
    await row.getByRole('button', { name: 'Delete', exact: true }).click();
    await expect.poll(() => row.count()).toBe(0);
    expect(((await api('GET', '/api/v1/secrets')) as Json).secrets).toEqual([]);
  });

  it('shows a workflow’s schedules with their next runs, and its webhooks', async () => {
    const wf = await createWorkflow(t, [{ type: 'transform', expression: '1' }], 'Triggered');
    const schedule = await api('POST', `/api/v1/workflows/${wf}/schedules`, { cron: '0 9 * * 1-5', timezone: 'Europe/Paris' });
    await api('POST', `/api/v1/workflows/${wf}/webhooks`, { name: 'GitHub pushes' });
    await page.goto(`${t.baseUrl}/workflows/${wf}`);
    const schedules = page.locator('table[aria-label="Schedules"] tbody tr');
    await schedules.first().waitFor();
    expect(await schedules.locator('td').first().textContent()).toBe('0 9 * * 1-5');
    expect(await schedules.locator('li').count()).toBe((schedule.upcoming as string[]).length);
    const hooks = page.locator('table[aria-label="Webhooks"] tbody tr');
    await hooks.first().waitFor();
    expect(await hooks.locator('td').first().textContent()).toBe('GitHub pushes');
    expect(await hooks.locator('td').nth(1).textContent()).toContain('/hooks/wh_');
  });

  it('sent no request to any other host', () => {
    expect(new Set(requests.map((url) => new URL(url).origin))).toEqual(new Set([t.baseUrl]));
  });
});
