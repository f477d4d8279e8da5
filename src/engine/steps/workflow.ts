import { isId } from '../../lib/ids.js';
import { workflowDefinition } from '../../steps/workflow.js';
import { StepFailure } from '../step-errors.js';
import type { StepContext, StepOutcome, StepType } from './step-type.js';

// The `workflow` step. Starting the child is its attempt; with `wait` the step then
// waits (phase `wait`, no worker held, no timer: its wake time is far away) until the
// child's terminal transaction wakes it (executions/terminal-hooks.ts). A wait that
// is committed after the child already ended is caught by `afterCommit`, which looks
// once more and wakes the parent itself.

const FOREVER_MS = 100 * 365 * 24 * 3600 * 1000;

interface Waiting {
  type: 'workflow';
  children: string[];
}

async function finishWith(context: StepContext, childId: string): Promise<StepOutcome> {
  const children = context.services.children!;
  const outcome = await children.outcome(childId);
  if (outcome === null) throw new StepFailure('child_failed', `The child execution ${childId} no longer exists.`);
  switch (outcome.status) {
    case 'running':
      return waitFor(context, childId, false);
    case 'success':
      return { kind: 'completed', result: { execution_id: childId, status: 'success', result: outcome.result } };
    case 'failed':
      throw new StepFailure('child_failed', `The child execution ${childId} failed: ${outcome.error ?? 'no error recorded'}`);
    case 'stopped':
      throw new StepFailure('child_stopped', `The child execution ${childId} was stopped.`);
    default:
      throw new Error(`unknown execution status ${String(outcome.status)}`);
  }
}

function waitFor(context: StepContext, childId: string, fresh: boolean): StepOutcome {
  const children = context.services.children!;
  const detail: Waiting = { type: 'workflow', children: [childId] };
  return {
    kind: 'wait',
    until: context.now() + FOREVER_MS,
    ...(fresh ? { detail } : {}),
    afterCommit: () => children.wakeIfEnded(context.executionId!, context.stepIndex!, [childId]),
  };
}

export const workflowStep: StepType<typeof workflowDefinition.schema> = {
  ...workflowDefinition,
  async run(context) {
    const children = context.services.children;
    if (!children) throw new StepFailure('internal_error', 'This engine cannot start child executions.');
    const waiting = context.detail as Waiting | null | undefined;
    if (context.wakeAt !== null && waiting?.type === 'workflow' && waiting.children.length > 0) return finishWith(context, waiting.children[0]!);
    const workflowId = context.fields.workflow_id;
    if (!isId(workflowId)) throw new StepFailure('expression_error', `workflow_id: ${JSON.stringify(workflowId)} is not a workflow id (24 hexadecimal digits)`);
    const childId = await children.start({
      workspaceId: context.workspaceId,
      parentId: context.executionId!,
      stepIndex: context.stepIndex!,
      itemIndex: context.itemIndex ?? null,
      workflowId,
      input: context.fields.input ?? null,
    });
    if (context.fields.wait === false) return { kind: 'completed', result: { execution_id: childId } };
    return waitFor(context, childId, true);
  },
};
