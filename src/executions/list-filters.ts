import { Type } from '@sinclair/typebox';
import { invalid } from '../errors.js';
import { parseTimestampWithOffset } from '../lib/time.js';
import { Id } from '../workflows/schemas.js';
import { EXECUTION_STATUSES, type ExecutionStatus } from './status.js';
import type { ListFilter } from './store.js';
import { TRIGGER_TYPES } from './trigger.js';

// The filters of GET /executions beyond workflow_id, and the bodies of retry and
// stop-many. Each filter has an index that serves it (db/migrations), and every one
// combines with the `after` cursor.

const timestampText = (when: string) => Type.String({ description: `${when}: a timestamp with an offset, e.g. 2026-01-15T10:30:00+00:00` });

export const ListFilterQuery = {
  // Checked by listFilterOf, whose message lists the allowed values (a pattern's would not).
  status: Type.Optional(Type.String({ maxLength: 200, description: `one status or a comma-separated list of them (failed,stopped): ${EXECUTION_STATUSES.join(', ')}` })),
  created_after: Type.Optional(timestampText('created at or after this time')),
  created_before: Type.Optional(timestampText('created before this time')),
  trigger: Type.Optional(Type.Union(TRIGGER_TYPES.map((t) => Type.Literal(t)), { description: 'how it was started' })),
  error_code: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$' })),
};

function timestamp(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseTimestampWithOffset(value);
  if (ms === null) throw invalid(`${name}: "${value}" is not a timestamp with an offset; give e.g. 2026-01-15T10:30:00+00:00`);
  return ms;
}

export function listFilterOf(query: {
  limit?: number;
  after?: string;
  workflow_id?: string;
  status?: string;
  created_after?: string;
  created_before?: string;
  trigger?: string;
  error_code?: string;
}): ListFilter {
  const statuses = query.status === undefined ? undefined : [...new Set(query.status.split(','))];
  const unknown = statuses?.find((s) => !(EXECUTION_STATUSES as readonly string[]).includes(s));
  if (unknown !== undefined) {
    throw invalid(`status: must be one of ${EXECUTION_STATUSES.join(', ')} (or several, comma-separated), got "${unknown}"`);
  }
  return {
    limit: query.limit,
    after: query.after,
    workflow_id: query.workflow_id,
    ...(statuses === undefined ? {} : statuses.length === 1 ? { status: statuses[0] as ExecutionStatus } : { statuses: statuses as ExecutionStatus[] }),
    createdAfter: timestamp('created_after', query.created_after),
    createdBefore: timestamp('created_before', query.created_before),
    trigger: query.trigger,
    errorCode: query.error_code,
  };
}

export const RetryBody = Type.Object(
  { from: Type.Optional(Type.Union([Type.Literal('failed_step'), Type.Literal('start')], { description: 'default failed_step' })) },
  { additionalProperties: false },
);

export const StopManyBody = Type.Object(
  { workflow_id: Type.Optional(Id), created_before: Type.Optional(timestampText('stop those created before this time')) },
  { additionalProperties: false },
);
export const StopManyResult = Type.Object({ stopped: Type.Integer() }, { title: 'StopManyResult' });
