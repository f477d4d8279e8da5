import { type TObject, type TProperties, Type } from '@sinclair/typebox';

// What a step type *is*, apart from how it runs: its TypeBox schema (validation, the
// StepDefinition type and the OpenAPI document), its checks, its defaults. The API
// validates workflows with these alone; the engine adds `run` (engine/steps/), so
// loading a workflow's schema loads no HTTP client, no SMTP client and no engine.

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

export const MAX_FOR_EACH_ITEMS = 1000;

/** `for_each`: the fields of the step types that can run once per item. */
export const ForEachFields = {
  for_each: Type.Optional(Type.String({ minLength: 1, maxLength: 10_000, description: `JSONata giving an array of at most ${MAX_FOR_EACH_ITEMS} items; the step runs once per item` })),
  for_each_concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 20, default: 1, description: 'items run at once' })),
};

/** Builds one step type's schema: `type` literal + common fields + its own. */
export function stepSchema<T extends string, P extends TProperties>(type: T, fields: P) {
  return Type.Object(
    { type: Type.Literal(type), ...CommonStepFields, ...fields },
    { additionalProperties: false, title: `${type} step` },
  );
}

/** Fields of every step that are never templated: the JSONata ones (`if`, and each
 * type's expression fields) are compiled instead, the others are not strings. */
export const UNTEMPLATED_FIELDS: ReadonlySet<string> = new Set(['type', 'name', 'if', 'timeout_ms', 'retry', 'continue_on_error', 'for_each', 'for_each_concurrency']);

export interface StepDefinitionSpec<S extends TObject = TObject> {
  readonly type: string;
  readonly schema: S;
  /** Per-attempt budget when the step sets no `timeout_ms`. */
  readonly defaultTimeoutMs: number;
  /** Fields that are JSONata source themselves, so they are compiled, not templated. */
  readonly expressionFields: readonly string[];
  /** No effect outside the execution (a transform): its row is not marked `running`
   * before an attempt — one write fewer per step — because an attempt that a dying
   * worker interrupts is simply run again, harmlessly. */
  readonly pure?: boolean;
  /** Its templates may use `{{ secrets.NAME }}` (http, email); elsewhere `secrets` is refused. */
  readonly usesSecrets?: boolean;
  /** Checks a schema cannot express; returns [fieldPath, message] or null. */
  check?(step: Record<string, unknown>): [string, string] | null;
}
