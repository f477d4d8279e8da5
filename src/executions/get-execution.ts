import type { AppDeps } from '../deps.js';
import { notFound } from '../errors.js';
import { isId } from '../lib/ids.js';
import { readExecution, stepsOf, toExecutionView } from './store.js';
import { isTerminal } from './status.js';
import { TerminalCache } from './terminal-cache.js';
import { readWaitingFor } from './waiting-for.js';

/** How often a long poll (`?wait=S`) re-reads a running execution. Reading the row is
 * what makes it work across processes: the worker may run anywhere. */
const WAIT_POLL_MS = 100;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** GET /executions/:id as JSON text: a finished execution from the cache, a running one
 * from the database (a poll must see every change). With `waitSeconds` (docs/api.md#long-polling-and-events), a
 * running execution is re-read until it ends or the wait is over. */
export async function readExecutionJson(
  deps: Pick<AppDeps, 'db'>,
  cache: TerminalCache,
  args: { workspaceId: string; id: string; withSteps: boolean; waitSeconds?: number; prunedBefore?: number },
): Promise<string> {
  if (!isId(args.id)) throw notFound('Execution');
  const key = TerminalCache.key(args.workspaceId, args.id, args.withSteps);
  const deadline = Date.now() + (args.waitSeconds ?? 0) * 1000;
  for (;;) {
    const cached = cache.get(key, args.prunedBefore);
    if (cached !== undefined) return cached;
    const row = await readExecution(deps.db.runner, args.workspaceId, args.id);
    if (!row) throw notFound('Execution');
    if (row.status === 'running' && Date.now() + WAIT_POLL_MS <= deadline) {
      await sleep(WAIT_POLL_MS);
      continue;
    }
    const steps = args.withSteps ? await stepsOf(deps.db.db, row) : undefined;
    const body = JSON.stringify(toExecutionView(row, steps, await readWaitingFor(deps.db.db, row, steps)));
    if (isTerminal(row.status)) cache.set(key, body, row.completed_at ?? Infinity);
    return body;
  }
}
