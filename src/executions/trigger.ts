import { type Static, Type } from '@sinclair/typebox';
import { Id, Timestamp } from '../workflows/schemas.js';

// How an execution was started. One schema for every starter: run-async (an API key),
// a schedule's tick, an inbound webhook, a retry of another execution, or a parent
// execution's `workflow` step. Stored as the `trigger_type` column (filterable) plus
// the whole object as JSON; derived columns (`retry_of`) come from it too, so the
// facts cannot disagree.

const NullableId = Type.Union([Id, Type.Null()]);

export const ApiTrigger = Type.Object({ type: Type.Literal('api'), key_id: NullableId });
export const ScheduleTrigger = Type.Object({ type: Type.Literal('schedule'), schedule_id: Id, scheduled_for: Timestamp });
export const WebhookTrigger = Type.Object({ type: Type.Literal('webhook'), webhook_id: Id });
export const RetryTrigger = Type.Object({ type: Type.Literal('retry'), execution_id: Id });
export const WorkflowTrigger = Type.Object({ type: Type.Literal('workflow'), execution_id: Id, step_index: Type.Integer({ minimum: 0 }) });

export const Trigger = Type.Union([ApiTrigger, ScheduleTrigger, WebhookTrigger, RetryTrigger, WorkflowTrigger], { title: 'Trigger' });
export type Trigger = Static<typeof Trigger>;
export type TriggerType = Trigger['type'];

export const TRIGGER_TYPES = ['api', 'schedule', 'webhook', 'retry', 'workflow'] as const satisfies readonly TriggerType[];

/** The columns of an execution that record its trigger. */
export function triggerColumns(trigger: Trigger): { trigger_type: TriggerType; trigger: string; retry_of: string | null } {
  return { trigger_type: trigger.type, trigger: JSON.stringify(trigger), retry_of: trigger.type === 'retry' ? trigger.execution_id : null };
}

/** The trigger of a stored execution. Rows from before triggers were recorded were
 * all started through run-async, by a key that is no longer known. */
export function triggerOf(row: { trigger_type: string; trigger: string | null }): Trigger {
  if (row.trigger === null) return { type: 'api', key_id: null };
  return JSON.parse(row.trigger) as Trigger;
}
