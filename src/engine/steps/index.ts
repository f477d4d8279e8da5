import type { StepDefinition } from '../../steps/index.js';
import { delayStep } from './delay.js';
import type { StepType } from './step-type.js';
import { transformStep } from './transform.js';
import { httpDefinition } from '../../steps/http.js';
import { emailDefinition } from '../../steps/email.js';
import { approvalStep } from './approval.js';
import { workflowStep } from './workflow.js';

// The engine's step types: each definition (steps/) with its `run`. The http and
// email runtimes (undici, nodemailer) load on their first step, not at start.

export type { StepDefinition };

function lazy(definition: Omit<StepType, 'run'>, load: () => Promise<StepType>): StepType {
  let loaded: Promise<StepType> | undefined;
  return { ...definition, run: async (context, signal) => (await (loaded ??= load())).run(context, signal) };
}

const STEP_TYPES: readonly StepType[] = [
  transformStep as unknown as StepType,
  delayStep as unknown as StepType,
  lazy(httpDefinition as unknown as StepType, async () => (await import('./http.js')).httpStep as unknown as StepType),
  lazy(emailDefinition as unknown as StepType, async () => (await import('./email.js')).emailStep as unknown as StepType),
  approvalStep as unknown as StepType,
  workflowStep as unknown as StepType,
];

const byName = new Map<string, StepType>(STEP_TYPES.map((t) => [t.type, t]));

export function stepType(name: string): StepType | undefined {
  return byName.get(name);
}
