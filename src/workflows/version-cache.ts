import type { Executor } from '../db/schema.js';
import type { StepDefinition } from '../steps/index.js';

// Workflow versions are immutable, so a parsed version can be cached for ever (LRU
// bounded): run-async and the engine read a version's steps without a query.

const MAX_VERSIONS = 1_000;
const cache = new Map<string, readonly StepDefinition[]>();

export async function versionSteps(db: Executor, versionId: string): Promise<readonly StepDefinition[]> {
  const hit = cache.get(versionId);
  if (hit) return hit;
  const row = await db.selectFrom('workflow_versions').select('steps').where('id', '=', versionId).executeTakeFirstOrThrow();
  const steps = Object.freeze(JSON.parse(row.steps) as StepDefinition[]);
  if (cache.size >= MAX_VERSIONS) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  cache.set(versionId, steps);
  return steps;
}
