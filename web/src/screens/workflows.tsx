import { useState } from 'preact/hooks';
import type { Workflow } from '../api/types.js';
import { useApp } from '../app-context.js';
import { ErrorNote } from '../components/common.js';
import { useLoad } from '../components/use-load.js';
import { formatTime } from '../format.js';
import { Link, paths } from '../router.js';

const PAGE_SIZE = 50;

export function WorkflowsScreen() {
  const { api } = useApp();
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const after = cursors[cursors.length - 1] ?? null;
  const page = useLoad(
    (signal) => api.get<{ workflows: Workflow[]; has_more?: boolean }>(`/workflows?limit=${PAGE_SIZE}${after ? `&after=${after}` : ''}`, signal),
    [api, after],
  );
  const rows = page.value?.workflows ?? [];
  const hasMore = page.value?.has_more ?? rows.length === PAGE_SIZE;
  return (
    <>
      <h1>Workflows</h1>
      <ErrorNote error={page.error} />
      <table aria-label="Workflows">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Steps</th>
            <th scope="col">Updated</th>
            <th scope="col">Last run</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((w) => (
            <tr key={w.id}>
              <td>
                <Link href={paths.workflow(w.id)}>{w.name}</Link>
              </td>
              <td>{w.steps.length}</td>
              <td>{formatTime(w.updated_at)}</td>
              <td>{formatTime(w.last_run_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {page.value && rows.length === 0 ? <p class="muted">No workflows yet: create one with the API or `skipflow workflows apply`.</p> : null}
      <div class="pager">
        <button type="button" disabled={cursors.length < 2} onClick={() => setCursors((c) => c.slice(0, -1))}>
          Previous page
        </button>
        <button type="button" disabled={!hasMore || rows.length === 0} onClick={() => setCursors((c) => [...c, rows[rows.length - 1]!.id])}>
          Next page
        </button>
      </div>
    </>
  );
}
