import type { Execution, ExecutionEvent, Step } from '../../../client/index.js';

// What `run --wait` shows while the execution runs. On a terminal: one line per step,
// redrawn in place, with a spinner on the running step and each step's duration. Not
// on a terminal (a pipe, a CI log): one plain line per change.

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const MARK: Record<string, string> = { completed: '✔', failed: '✖', skipped: '↷', stopped: '■', pending: '·' };

function stepLabel(step: Step): string {
  return step.name ? `${step.index} ${step.name} (${step.type})` : `${step.index} ${step.type}`;
}

function duration(step: Step): string {
  return step.duration_ms === null ? '' : ` ${step.duration_ms} ms`;
}

function describe(step: Step): string {
  const error = step.error ? ` — ${step.error_code}: ${step.error}` : '';
  const attempts = step.attempts > 1 ? ` (attempt ${step.attempts})` : '';
  return `${stepLabel(step)} ${step.status}${attempts}${duration(step)}${error}`;
}

export interface Display {
  event(event: ExecutionEvent): void;
  end(execution: Execution): void;
}

export function plainDisplay(write: (text: string) => void): Display {
  return {
    event(event) {
      if (event.event === 'step') {
        if (event.data.status !== 'pending') write(`step ${describe(event.data)}\n`);
      } else write(`execution ${event.data.execution_id} ${event.data.status}\n`);
    },
    end(execution) {
      write(`${execution.status}${execution.error ? `: ${execution.error}` : ''}\n`);
    },
  };
}

export function liveDisplay(write: (text: string) => void): Display {
  const steps = new Map<number, Step>();
  let executionId = '';
  let drawn = 0;
  let frame = 0;
  const draw = () => {
    const lines = [`execution ${executionId}`];
    for (const step of [...steps.values()].sort((a, b) => a.index - b.index)) {
      const mark = step.status === 'running' ? SPINNER[frame % SPINNER.length] : (MARK[step.status] ?? '?');
      lines.push(`  ${mark} ${describe(step)}`);
    }
    // Back to the first line drawn, then each line rewritten and cleared to its end.
    write(`${drawn > 0 ? `\x1b[${drawn}F` : ''}${lines.map((l) => `\x1b[2K${l}\n`).join('')}`);
    drawn = lines.length;
  };
  const timer = setInterval(() => {
    frame++;
    if ([...steps.values()].some((s) => s.status === 'running')) draw();
  }, 100);
  timer.unref();
  return {
    event(event) {
      if (event.event === 'step') steps.set(event.data.index, event.data);
      else executionId = event.data.execution_id;
      draw();
    },
    end(execution) {
      clearInterval(timer);
      for (const step of execution.steps ?? []) steps.set(step.index, step);
      draw();
      write(`${execution.status === 'success' ? '✔' : '✖'} ${execution.status}${execution.error ? `: ${execution.error}` : ''}\n`);
    },
  };
}
