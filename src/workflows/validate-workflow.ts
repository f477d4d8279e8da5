import { invalid } from '../errors.js';
import { compileError } from '../engine/expressions.js';
import { STEP_TYPE_NAMES, stepDefinition } from '../steps/index.js';
import { UNTEMPLATED_FIELDS } from '../steps/step-schema.js';
import { forEachString, templateError } from '../engine/template.js';
import { firstSchemaError } from '../http/schema-errors.js';
import { secretRefProblem } from '../secrets/validate-refs.js';
import { joinProblems, schemaProblems } from '../http/schema-errors.js';
import { WorkflowEnvelope, type WorkflowInput } from './schemas.js';

// A workflow is validated completely when it is written, so that an execution never
// meets a step it cannot even parse: unknown types, missing or extra fields, JSONata
// that does not compile and broken {{ }} templates are 400s naming the exact field.

/** Several problems of one step's fields, found together by its schema. */
class StepProblems extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
  }
}

/** The step's problems (empty when it is valid). */
function stepProblems(step: unknown, index: number): string[] {
  try {
    validateStep(step, index);
    return [];
  } catch (error) {
    return error instanceof StepProblems ? error.problems : [(error as Error).message];
  }
}

function validateStep(step: unknown, index: number): void {
  const at = `steps[${index}]`;
  if (typeof step !== 'object' || step === null || Array.isArray(step)) {
    throw invalid(`${at}: must be an object with a "type"`);
  }
  const fields = step as Record<string, unknown>;
  const type = typeof fields.type === 'string' ? stepDefinition(fields.type) : undefined;
  if (!type) {
    const got = fields.type === undefined ? 'is missing' : `${JSON.stringify(fields.type)} is not a step type`;
    throw invalid(`${at}.type: ${got}; use one of ${STEP_TYPE_NAMES.join(', ')}`);
  }
  const problems = schemaProblems(type.schema, step, at);
  if (problems.length > 0) throw new StepProblems(problems);

  if (typeof fields.if === 'string') {
    const message = compileError(fields.if);
    if (message) throw invalid(`${at}.if: ${message}`);
  }
  if (typeof fields.for_each === 'string') {
    const message = compileError(fields.for_each);
    if (message) throw invalid(`${at}.for_each: ${message}`);
  }
  for (const name of type.expressionFields) {
    const source = fields[name];
    const message = typeof source === 'string' ? compileError(source) : null;
    if (message) throw invalid(`${at}.${name}: ${message}`);
  }
  const expressionFields = new Set(type.expressionFields);
  for (const [name, value] of Object.entries(fields)) {
    if (UNTEMPLATED_FIELDS.has(name) || expressionFields.has(name)) continue;
    forEachString(value, `${at}.${name}`, (text, path) => {
      const message = templateError(text);
      if (message) throw invalid(`${path}: ${message}`);
    });
  }
  const secretProblem = secretRefProblem(fields, type);
  if (secretProblem) throw invalid(`${at}.${secretProblem[0]}: ${secretProblem[1]}`);
  const problem = type.check?.(fields);
  if (problem) throw invalid(`${at}.${problem[0]}: ${problem[1]}`);
}

/** Reports every problem of the definition at once (each step's, in order). */
export function validateWorkflowInput(body: unknown): WorkflowInput {
  const envelope = schemaProblems(WorkflowEnvelope, body);
  const steps = (body as { steps?: unknown })?.steps;
  const problems = [...envelope, ...(Array.isArray(steps) && steps.length <= 100 ? steps.flatMap(stepProblems) : [])];
  if (problems.length > 0) throw invalid(joinProblems(problems));
  return body as WorkflowInput;
}
