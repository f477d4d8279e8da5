import { type Static, Type } from '@sinclair/typebox';
import { delayStep } from './delay.js';
import { emailStep } from './email.js';
import { httpStep } from './http.js';
import type { StepType } from './step-type.js';
import { transformStep } from './transform.js';

// The registry of step types: adding a type is one module and one line here.
const STEP_TYPES = [transformStep, delayStep, httpStep, emailStep] as const;

const byName = new Map<string, StepType>(STEP_TYPES.map((t) => [t.type, t as unknown as StepType]));

export function stepType(name: string): StepType | undefined {
  return byName.get(name);
}

export const STEP_TYPE_NAMES: readonly string[] = STEP_TYPES.map((t) => t.type);

/** One step definition as written in a workflow (a union over the registry). */
export const StepSchema = Type.Union(
  STEP_TYPES.map((t) => t.schema),
  { title: 'Step', description: `A step; "type" is one of ${STEP_TYPES.map((t) => t.type).join(', ')}` },
);

export type StepDefinition = Static<typeof StepSchema>;
