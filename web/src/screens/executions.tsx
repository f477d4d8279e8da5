import { useEffect, useState } from 'preact/hooks';
import type { ExecutionList, ExecutionListItem, Workflow } from '../api/types.js';
import { EXECUTION_STATUSES, TRIGGER_TYPES } from '../api/types.js';
import { useApp } from '../app-context.js';
import { ErrorNote, StatusBadge } from '../components/common.js';
import { useLoad } from '../components/use-load.js';
import { describeTrigger, formatDuration, formatTime, spanMs } from '../format.js';
import { untilOneEnds, whileVisible } from '../live/list-refresh.js';
import { Link, paths } from '../router.js';

const PAGE_SIZE = 20;

interface Filters {
  statuses: string[];
  workflowId: string;
  trigger: string;
}

function listQuery(filters: Filters, after: string | null): string {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (filters.statuses.length > 0) query.set('status', filters.statuses.join(','));
  if (filters.workflowId) query.set('workflow_id', filters.workflowId);
  if (filters.trigger) query.set('trigger', filters.trigger);
  if (after) query.set('after', after);
  return `/executions?${query.toString()}`;
}

/** The filters live in the URL (`?status=a,b&workflow_id=…&trigger=…`), so a reload or a shared link keeps them. */
function filtersFromUrl(): Filters {
  const query = new URLSearchParams(location.search);
  return {
    statuses: (query.get('status') ?? '').split(',').filter((s) => (EXECUTION_STATUSES as readonly string[]).includes(s)),
    workflowId: query.get('workflow_id') ?? '',
    trigger: query.get('trigger') ?? '',
  };
}

function filtersToUrl(filters: Filters): void {
  const query = new URLSearchParams();
  if (filters.statuses.length > 0) query.set('status', filters.statuses.join(','));
  if (filters.workflowId) query.set('workflow_id', filters.workflowId);
  if (filters.trigger) query.set('trigger', filters.trigger);
  const search = query.toString();
  history.replaceState(null, '', `${location.pathname}${search ? `?${search}` : ''}`);
}

export function ExecutionsScreen() {
  const { api } = useApp();
  const [filters, setFilters] = useState<Filters>(filtersFromUrl);
  useEffect(() => filtersToUrl(filters), [filters]);
  // The cursors of the pages before this one; the last is this page's `after`.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const after = cursors[cursors.length - 1] ?? null;
  const page = useLoad((signal) => api.get<ExecutionList>(listQuery(filters, after), signal), [api, filters, after]);
  const rows: ExecutionListItem[] = page.value?.executions ?? [];
  // The Workflow filter's options are re-read when a row names a workflow they lack.
  const [known, setKnown] = useState('');
  const workflows = useLoad((signal) => api.get<{ workflows: Workflow[] }>('/workflows?limit=100', signal), [api, known]);
  const names = new Set((workflows.value?.workflows ?? []).map((w) => w.id));
  const unknown = rows.find((row) => !names.has(row.workflow_id))?.workflow_id ?? '';
  useEffect(() => {
    if (unknown && workflows.value && !workflows.loading) setKnown(unknown);
  }, [unknown, workflows.value, workflows.loading]);
  const hasMore = page.value?.has_more ?? rows.length === PAGE_SIZE;

  // Live: a changed (ended) execution on the page via the long poll; new ones on page 1.
  // Keyed by the running ids, so a refresh that changes nothing keeps the same long polls open.
  const running = rows.filter((row) => row.status === 'running');
  const runningKey = running.map((row) => row.execution_id).join(',');
  useEffect(() => {
    const controller = new AbortController();
    untilOneEnds(api, running, controller.signal).then(() => !controller.signal.aborted && page.reload());
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api, runningKey]);
  useEffect(() => (after === null ? whileVisible(page.reload) : undefined), [after, page.reload]);

  const update = (change: Partial<Filters>) => {
    setFilters((f) => ({ ...f, ...change }));
    setCursors([null]);
  };

  return (
    <>
      <h1>Executions</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <div class="field">
          <label for="filter-status">Status</label>
          <select
            id="filter-status"
            multiple
            size={4}
            onChange={(e) => update({ statuses: Array.from(e.currentTarget.selectedOptions, (o) => o.value) })}
          >
            {EXECUTION_STATUSES.map((status) => (
              <option value={status} key={status} selected={filters.statuses.includes(status)}>
                {status}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="filter-workflow">Workflow</label>
          <select id="filter-workflow" value={filters.workflowId} onChange={(e) => update({ workflowId: e.currentTarget.value })}>
            <option value="">All workflows</option>
            {(workflows.value?.workflows ?? []).map((w) => (
              <option value={w.id} key={w.id}>
                {w.name}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="filter-trigger">Trigger</label>
          <select id="filter-trigger" value={filters.trigger} onChange={(e) => update({ trigger: e.currentTarget.value })}>
            <option value="">Any trigger</option>
            {TRIGGER_TYPES.map((type) => (
              <option value={type} key={type}>
                {type}
              </option>
            ))}
          </select>
        </div>
      </form>
      <ErrorNote error={page.error} />
      <table aria-label="Executions">
        <thead>
          <tr>
            <th scope="col">ID</th>
            <th scope="col">Workflow</th>
            <th scope="col">Status</th>
            <th scope="col">Trigger</th>
            <th scope="col">Started</th>
            <th scope="col">Duration</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.execution_id} data-execution-id={row.execution_id}>
              <td>
                <Link href={paths.execution(row.execution_id)} class="mono">
                  {row.execution_id}
                </Link>
              </td>
              <td>{row.workflow_name}</td>
              <td>
                <StatusBadge status={row.status} />
              </td>
              <td>{describeTrigger(row.trigger)}</td>
              <td>{formatTime(row.started_at)}</td>
              <td>{row.status === 'running' ? 'running' : formatDuration(spanMs(row.started_at, row.completed_at))}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {page.value && rows.length === 0 ? <p class="muted">No executions match.</p> : null}
      <div class="pager">
        <button type="button" disabled={cursors.length < 2} onClick={() => setCursors((c) => c.slice(0, -1))}>
          Previous page
        </button>
        <button type="button" disabled={!hasMore || rows.length === 0} onClick={() => setCursors((c) => [...c, rows[rows.length - 1]!.execution_id])}>
          Next page
        </button>
      </div>
    </>
  );
}
