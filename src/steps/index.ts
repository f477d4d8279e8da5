import { type Static, Type } from '@sinclair/typebox';
import { delayDefinition } from './delay.js';
import { emailDefinition } from './email.js';
import { httpDefinition } from './http.js';
import type { StepDefinitionSpec } from './step-schema.js';
import { transformDefinition } from './transform.js';
import { approvalDefinition } from './approval.js';
import { workflowDefinition } from './workflow.js';

// The registry of step definitions: adding a type is one module here (its schema and
// checks) and one in engine/steps/ (how it runs).
const DEFINITIONS = [transformDefinition, delayDefinition, httpDefinition, emailDefinition, approvalDefinition, workflowDefinition] as const;

const byName = new Map<string, StepDefinitionSpec>(DEFINITIONS.map((d) => [d.type, d as unknown as StepDefinitionSpec]));

export function stepDefinition(name: string): StepDefinitionSpec | undefined {
  return byName.get(name);
}

export const STEP_TYPE_NAMES: readonly string[] = DEFINITIONS.map((d) => d.type);

/** One step definition as written in a workflow (a union over the registry). */
export const StepSchema = Type.Union(
  DEFINITIONS.map((d) => d.schema),
  { title: 'Step', description: `A step; "type" is one of ${DEFINITIONS.map((d) => d.type).join(', ')}` },
);

export type StepDefinition = Static<typeof StepSchema>;
