import { Type } from '@sinclair/typebox';
import { type StepDefinitionSpec, stepSchema } from './step-schema.js';

// The `approval` step: waits, durably, for a person's decision through the approve
// and reject routes (executions/decide-approval.ts), at most `timeout_seconds`.

export const MAX_APPROVAL_SECONDS = 31_536_000;
export const DEFAULT_APPROVAL_SECONDS = 604_800;

const schema = stepSchema('approval', {
  message: Type.Optional(Type.String({ maxLength: 10_000, description: 'shown in waiting_for while it waits; templated' })),
  timeout_seconds: Type.Optional(
    Type.Integer({ minimum: 1, maximum: MAX_APPROVAL_SECONDS, default: DEFAULT_APPROVAL_SECONDS, description: 'how long it waits for a decision; then it fails with timeout' }),
  ),
});

export const approvalDefinition = {
  type: 'approval',
  schema,
  defaultTimeoutMs: 1000,
  expressionFields: [],
} as const satisfies StepDefinitionSpec<typeof schema>;
