import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { type Browser, type Page, chromium } from 'playwright-core';
import type { Config } from '../../src/config.js';
import { DEFAULT_DASHBOARD_ROOT } from '../../src/dashboard/serve-dashboard.js';
import { type TestServer, startTestServer } from './server.js';
import { track } from './leaks.js';

// End-to-end tests of the dashboard drive Debian's Chromium (/usr/bin/chromium; .ci/run
// installs it) headless through playwright-core, against a real server listening on
// loopback. The dashboard only talks HTTP to the API, so one backend (SQLite) is enough.

export const CHROMIUM = '/usr/bin/chromium';

export async function launchBrowser(): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const untrack = track('chromium', () => browser.close());
  const close = browser.close.bind(browser);
  browser.close = async () => {
    untrack();
    await close();
  };
  return browser;
}

/** Builds the dashboard when this checkout has not (npm test builds it first). */
export function ensureDashboardBuilt(): void {
  if (existsSync(`${DEFAULT_DASHBOARD_ROOT}/index.html`)) return;
  execFileSync('npm', ['run', 'build:web'], { stdio: 'ignore' });
}

export interface DashboardServer extends TestServer {
  readonly baseUrl: string;
}

export async function startDashboardServer(overrides: Partial<Config> = {}): Promise<DashboardServer> {
  ensureDashboardBuilt();
  const server = await startTestServer('sqlite', { host: '127.0.0.1', port: 0, ...overrides }, { listen: true });
  const { port } = server.server.app!.server.address() as AddressInfo;
  return Object.assign(server, { baseUrl: `http://127.0.0.1:${port}` });
}

export async function signIn(page: Page, baseUrl: string, apiKey: string): Promise<void> {
  await page.goto(`${baseUrl}/`);
  await page.getByLabel('API key', { exact: true }).fill(apiKey);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('button', { name: 'Sign out', exact: true }).waitFor();
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync('docs/screenshots', { recursive: true });
  await page.screenshot({ path: `docs/screenshots/${name}.png` });
}

/** Controls on the page without an accessible name (by the simple rules the dashboard
 * uses: a <label for>, aria-label, or text content). Returns their outer HTML. */
export function unnamedControls(page: Page): Promise<string[]> {
  return page.evaluate(() =>
    Array.from(document.querySelectorAll('a, button, input, select, textarea, summary'))
      .filter((el) => {
        const labelled = (el as HTMLInputElement).labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
        const text = (el.textContent ?? '').trim();
        return el.matches('input, select, textarea') ? !labelled : !(text || labelled);
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  );
}
