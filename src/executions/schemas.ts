import { Type } from '@sinclair/typebox';
import { Id, NullableTimestamp, Timestamp } from '../workflows/schemas.js';
import { EXECUTION_STATUSES, STEP_STATUSES } from './status.js';
import { Trigger } from './trigger.js';
import { Progress, WaitingFor } from './waiting-for.js';
import { UNKNOWN_FIELD_HINT } from '../http/schema-errors.js';

const ExecutionStatus = Type.Union(EXECUTION_STATUSES.map((s) => Type.Literal(s)));
const NullableString = Type.Union([Type.String(), Type.Null()]);

export const RunAccepted = Type.Object(
  { execution_id: Id, workflow_id: Id, status: Type.Literal('running'), created_at: Timestamp },
  { title: 'RunAccepted' },
);

export const RetryAccepted = Type.Object(
  { ...RunAccepted.properties, retry_of: Id },
  { title: 'RetryAccepted' },
);

export const RunBody = Type.Object(
  {
    input: Type.Optional(Type.Unknown({ description: 'any JSON; the execution’s input' })),
    inputs: Type.Optional(Type.Unknown({ description: 'alias of input' })),
  },
  { additionalProperties: false, [UNKNOWN_FIELD_HINT]: 'the execution’s input goes under "input": send { "input": … }' },
);

export const StepResult = Type.Object(
  {
    index: Type.Integer(),
    name: NullableString,
    type: Type.String(),
    status: Type.Union(STEP_STATUSES.map((s) => Type.Literal(s))),
    result: Type.Unknown(),
    error: NullableString,
    error_code: NullableString,
    attempts: Type.Integer(),
    reused: Type.Boolean({ description: 'copied from the execution this one retries, not run again' }),
    started_at: NullableTimestamp,
    completed_at: NullableTimestamp,
    progress: Progress,
    duration_ms: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'run time of the last attempt in milliseconds; null before it ran' }),
  },
  { title: 'StepResult' },
);

const executionCore = {
  execution_id: Id,
  workflow_id: Id,
  workflow_name: Type.String(),
  status: ExecutionStatus,
  started_at: Timestamp,
  completed_at: NullableTimestamp,
  created_at: Timestamp,
  trigger: Trigger,
  retry_of: Type.Union([Id, Type.Null()]),
};

export const Execution = Type.Object(
  {
    ...executionCore,
    input: Type.Unknown(),
    error: NullableString,
    error_code: NullableString,
    error_step_index: Type.Union([Type.Integer(), Type.Null()]),
    waiting_for: WaitingFor,
    steps: Type.Optional(Type.Array(StepResult)),
  },
  { title: 'Execution' },
);

export const ExecutionListItem = Type.Object(executionCore, { title: 'ExecutionListItem' });
export const ExecutionList = Type.Object({ executions: Type.Array(ExecutionListItem), has_more: Type.Boolean({ description: 'true when a next page exists; its `after` is the last item’s id' }) }, { title: 'ExecutionList' });

export const StopResult = Type.Object({ execution_id: Id, status: Type.Literal('stopped') }, { title: 'StopResult' });

export const ExecutionStatusQuery = ExecutionStatus;
