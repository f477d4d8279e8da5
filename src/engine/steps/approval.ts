import { DEFAULT_APPROVAL_SECONDS, approvalDefinition } from '../../steps/approval.js';
import { StepFailure } from '../step-errors.js';
import type { StepType } from './step-type.js';

// An approval asks to wait until its expiry; a decision (approve or reject) ends the
// step from the API side and moves the execution on, so the engine only ever wakes
// an approval that nobody decided: at its expiry it fails with `timeout`.

export const approvalStep: StepType<typeof approvalDefinition.schema> = {
  ...approvalDefinition,
  async run(context) {
    if (context.wakeAt !== null) {
      if (context.now() >= context.wakeAt) {
        throw new StepFailure('timeout', 'No decision was made before the approval expired (timeout_seconds).');
      }
      return { kind: 'wait', until: context.wakeAt };
    }
    const seconds = (context.fields.timeout_seconds as number | undefined) ?? DEFAULT_APPROVAL_SECONDS;
    const message = context.fields.message;
    return {
      kind: 'wait',
      until: context.now() + seconds * 1000,
      detail: { type: 'approval', message: message === undefined || message === null ? null : typeof message === 'string' ? message : JSON.stringify(message) },
    };
  },
};
