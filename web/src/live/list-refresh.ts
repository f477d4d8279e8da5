import type { Api } from '../api/client.js';
import type { ExecutionListItem } from '../api/types.js';

// How the executions table stays current without a reload and without tight polling
// (docs/dashboard.md#live-updates):
// - every running execution on the page (at most WATCHED of them) is watched with the
//   API's long poll, GET /executions/:id?wait=60, which answers the moment it ends, so
//   a status change shows at once and costs one request per minute per watched row;
// - new executions have no push channel, so the first page (only) is re-read every
//   NEW_ROWS_MS while the tab is visible, and at once when the tab comes back.

export const WATCHED = 5;
export const NEW_ROWS_MS = 5000;

/** Resolves when any of the running `rows` ends (or after a minute without change). */
export async function untilOneEnds(api: Api, rows: ExecutionListItem[], signal: AbortSignal): Promise<void> {
  const running = rows.filter((row) => row.status === 'running').slice(0, WATCHED);
  if (running.length === 0) return new Promise(() => undefined);
  await Promise.race(
    running.map((row) => api.get(`/executions/${encodeURIComponent(row.execution_id)}?wait=60`, signal).catch(() => new Promise((r) => setTimeout(r, NEW_ROWS_MS)))),
  );
}

/** Calls `refresh` every NEW_ROWS_MS while the page is visible, and when it becomes visible. */
export function whileVisible(refresh: () => void): () => void {
  const timer = setInterval(() => {
    if (document.visibilityState === 'visible') refresh();
  }, NEW_ROWS_MS);
  const onVisible = () => {
    if (document.visibilityState === 'visible') refresh();
  };
  document.addEventListener('visibilitychange', onVisible);
  return () => {
    clearInterval(timer);
    document.removeEventListener('visibilitychange', onVisible);
  };
}
