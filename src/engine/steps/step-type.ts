import type { TObject } from '@sinclair/typebox';
import type { StepDefinitionSpec } from '../../steps/step-schema.js';
import type { Deadline } from '../deadline.js';
import type { SecretSource } from '../../secrets/secret-source.js';
import type { ChildExecutions } from '../../executions/child-executions.js';

// The contract every step type implements: its own fields (a TypeBox schema that
// drives validation, the StepDefinition type and the OpenAPI document), any check
// a schema cannot express, and `run`. Everything common — `if`, templates,
// timeouts, retries, continue_on_error, checkpoints — lives in the framework
// (engine/run-step.ts), not in each type.

/** Values available to expressions and templates. */
export interface ExpressionContext {
  input: unknown;
  steps: unknown[];
  execution: { execution_id: string; workflow_id: string; workflow_name: string };
  workflow: { workflow_id: string; name: string };
  /** Inside a for_each: the item and its index. */
  item?: unknown;
  item_index?: number;
}

/** What the operator configured for steps that reach the outside world. */
export interface StepServices {
  /** SKIPFLOW_ALLOW_PRIVATE_NETWORK: http steps may reach loopback/private addresses. */
  readonly allowPrivateNetwork: boolean;
  /** SKIPFLOW_SMTP_URL, or null: email steps then fail with email_not_configured. */
  readonly smtpUrl: string | null;
  /** SKIPFLOW_MAX_RESULT_BYTES (default 1 MiB): a larger result fails the step with result_too_large. */
  readonly maxResultBytes?: number;
  /** SKIPFLOW_MAX_EXECUTION_RESULT_BYTES (default 16 MiB): bound on all stored results of one execution. */
  readonly maxExecutionResultBytes?: number;
  /** The workspace secrets that `{{ secrets.NAME }}` reads (http and email steps). */
  readonly secrets?: SecretSource;
  /** Starts and reads sub-workflow executions (the workflow step). */
  readonly children?: ChildExecutions;
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
  /** What a waiting step stored with its wait (parsed `detail`), when it is woken; else null. */
  detail?: unknown;
  /** Which execution and step this is (a workflow step starts its child for it). */
  executionId?: string;
  stepIndex?: number;
  /** Inside a for_each: the item's index (a workflow step's child key). */
  itemIndex?: number;
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
  | { kind: 'sleep'; until: number }
  /** Waiting for a decision or another execution, at most until `until` (then it runs
   * again, woken); `detail` is stored with it (undefined: keep what is stored). */
  | { kind: 'wait'; until: number; detail?: unknown; afterCommit?: () => Promise<void> };

/** A step type as the engine runs it: its definition (steps/) and its `run`. */
export interface StepType<S extends TObject = TObject> extends StepDefinitionSpec<S> {
  run(context: StepContext, signal: AbortSignal): Promise<StepOutcome>;
}
