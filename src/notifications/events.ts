import type { TerminalStatus } from '../executions/status.js';

// The events an endpoint can subscribe to: one per final status of an execution.

export const EVENTS = ['execution.succeeded', 'execution.failed', 'execution.stopped'] as const;
export type NotificationEvent = (typeof EVENTS)[number];

export function eventFor(status: TerminalStatus): NotificationEvent {
  switch (status) {
    case 'success':
      return 'execution.succeeded';
    case 'failed':
      return 'execution.failed';
    case 'stopped':
      return 'execution.stopped';
    default: {
      const never: never = status;
      throw new Error(`no event for status ${String(never)}`);
    }
  }
}
