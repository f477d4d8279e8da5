import { type TObject, type TProperties, Type } from '@sinclair/typebox';
import type { Deadline } from '../deadline.js';

// The contract every step type implements: its own fields (a TypeBox schema that
// drives validation, the StepDefinition type and the OpenAPI document), any check
// a schema cannot express, and `run`. Everything common — `if`, templates,
// timeouts, retries, continue_on_error, checkpoints — lives in the framework
// (engine/run-step.ts), not in each type.

export const RetrySchema = Type.Object(
  {
    max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, default: 1 })),
    backoff_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400_000, default: 1000 })),
    factor: Type.Optional(Type.Number({ minimum: 1, maximum: 10, default: 2 })),
    max_backoff_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400_000, default: 60_000 })),
  },
  { additionalProperties: false },
);

export const CommonStepFields = {
  name: Type.Optional(Type.String({ maxLength: 200 })),
  if: Type.Optional(Type.String({ minLength: 1, maxLength: 10_000, description: 'JSONata predicate; falsy → skipped' })),
  timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000, description: 'per attempt' })),
  retry: Type.Optional(RetrySchema),
  continue_on_error: Type.Optional(Type.Boolean()),
};

/** Builds one step type's schema: `type` literal + common fields + its own. */
export function stepSchema<T extends string, P extends TProperties>(type: T, fields: P) {
  return Type.Object(
    { type: Type.Literal(type), ...CommonStepFields, ...fields },
    { additionalProperties: false, title: `${type} step` },
  );
}

/** Values available to expressions and templates. */
export interface ExpressionContext {
  input: unknown;
  steps: unknown[];
  execution: { execution_id: string; workflow_id: string; workflow_name: string };
  workflow: { workflow_id: string; name: string };
}

/** What the operator configured for steps that reach the outside world. */
export interface StepServices {
  /** SKIPFLOW_ALLOW_PRIVATE_NETWORK: http steps may reach loopback/private addresses. */
  readonly allowPrivateNetwork: boolean;
  /** SKIPFLOW_SMTP_URL, or null: email steps then fail with email_not_configured. */
  readonly smtpUrl: string | null;
}

export interface StepContext {
  /** The step's fields with every template rendered. */
  fields: Record<string, unknown>;
  expressionContext: ExpressionContext;
  /** Stable across attempts and workers: `execution_id:index` (idempotency downstream). */
  stepKey: string;
  attempt: number;
  /** Set when the step had asked to sleep and is now woken up. */
  wakeAt: number | null;
  /** The step's timeout_ms (per attempt). */
  timeoutMs: number;
  /** The attempt's deadline, shared with its `if` and templates (deadline.ts). */
  deadline: Deadline;
  /** The execution's workspace (the fairness key of expression evaluation). */
  workspaceId: string;
  now(): number;
  services: StepServices;
}

export type StepOutcome =
  | { kind: 'completed'; result: unknown }
  /** A durable timer: the execution is released and this step runs again at `until`. */
  | { kind: 'sleep'; until: number };

export interface StepType<S extends TObject = TObject> {
  readonly type: string;
  readonly schema: S;
  /** Per-attempt budget when the step sets no `timeout_ms`. */
  readonly defaultTimeoutMs: number;
  /** Fields that are JSONata source themselves, so they are compiled, not templated. */
  readonly expressionFields: readonly string[];
  /** Checks a schema cannot express; returns [fieldPath, message] or null. */
  check?(step: Record<string, unknown>): [string, string] | null;
  run(context: StepContext, signal: AbortSignal): Promise<StepOutcome>;
}
