import type { AppDeps } from '../deps.js';
import { notFound } from '../errors.js';
import { isId } from '../lib/ids.js';
import { findExecution, findSteps, toExecutionView } from './store.js';
import { TerminalCache } from './terminal-cache.js';

/** GET /executions/:id as JSON text: a finished execution from the cache, a running one
 * from the database (a poll must see every change). */
export async function readExecutionJson(
  deps: Pick<AppDeps, 'db'>,
  cache: TerminalCache,
  args: { workspaceId: string; id: string; withSteps: boolean },
): Promise<string> {
  if (!isId(args.id)) throw notFound('Execution');
  const key = TerminalCache.key(args.workspaceId, args.id, args.withSteps);
  const cached = cache.get(key);
  if (cached !== undefined) return cached;
  const row = await findExecution(deps.db.db, args.workspaceId, args.id);
  if (!row) throw notFound('Execution');
  const steps = args.withSteps ? await findSteps(deps.db.db, args.id) : undefined;
  const body = JSON.stringify(toExecutionView(row, steps));
  if (row.status !== 'running') cache.set(key, body);
  return body;
}
