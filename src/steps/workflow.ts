import { Type } from '@sinclair/typebox';
import { hasTemplate } from '../engine/template.js';
import { isId } from '../lib/ids.js';
import { ForEachFields, type StepDefinitionSpec, stepSchema } from './step-schema.js';

// The `workflow` step: runs another workflow of the workspace as a child execution.

const schema = stepSchema('workflow', {
  ...ForEachFields,
  workflow_id: Type.String({ minLength: 1, maxLength: 1000, description: 'the workflow to run (24 hex digits, or a {{ }} template giving them)' }),
  input: Type.Optional(Type.Unknown({ description: 'the child’s input; templated' })),
  wait: Type.Optional(Type.Boolean({ default: true, description: 'wait for the child to end (default) or go on at once' })),
});

export const workflowDefinition = {
  type: 'workflow',
  schema,
  defaultTimeoutMs: 30_000,
  expressionFields: [],
  check(step) {
    const id = step.workflow_id as string;
    if (!hasTemplate(id) && !isId(id)) return ['workflow_id', `"${id}" is not a workflow id (24 hexadecimal digits)`];
    return null;
  },
} as const satisfies StepDefinitionSpec<typeof schema>;
