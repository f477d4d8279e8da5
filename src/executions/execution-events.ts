import type { FastifyReply } from 'fastify';
import type { AppDeps } from '../deps.js';
import { notFound } from '../errors.js';
import { isId } from '../lib/ids.js';
import { findExecution, stepsOf, toExecutionView, toStepView } from './store.js';

// GET /executions/:id/events (docs/api.md#long-polling-and-events): a Server-Sent Events stream of the execution's
// step and status changes until it ends. Each change is found by re-reading the rows
// (every POLL_MS), which works whichever process runs the execution; a comment line
// every HEARTBEAT_MS keeps proxies from closing a stream that waits on a long delay.
//
//   event: execution   data: the execution (as GET without steps), first and on every status change
//   event: step        data: one step (as in include_step_results), first and on every change

const POLL_MS = 250;
const HEARTBEAT_MS = 15_000;

type StepView = ReturnType<typeof toStepView>;

function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export async function streamExecutionEvents(
  deps: Pick<AppDeps, 'db'>,
  reply: FastifyReply,
  args: { workspaceId: string; id: string },
): Promise<void> {
  if (!isId(args.id)) throw notFound('Execution');
  const first = await findExecution(deps.db.db, args.workspaceId, args.id);
  if (!first) throw notFound('Execution');

  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
  });
  let open = true;
  raw.on('close', () => (open = false));
  const heartbeat = setInterval(() => raw.write(': keep-alive\n\n'), HEARTBEAT_MS);

  const seen = new Map<number, string>();
  let lastStatus: string | null = null;
  try {
    let row = first;
    while (open) {
      for (const step of (await stepsOf(deps.db.db, row)).map(toStepView)) {
        const text = JSON.stringify(step satisfies StepView);
        if (seen.get(step.index) !== text) {
          seen.set(step.index, text);
          raw.write(frame('step', step));
        }
      }
      if (row.status !== lastStatus) {
        lastStatus = row.status;
        raw.write(frame('execution', toExecutionView(row)));
      }
      if (row.status !== 'running') break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      const next = await findExecution(deps.db.db, args.workspaceId, args.id);
      if (!next) break;
      row = next;
    }
  } finally {
    clearInterval(heartbeat);
    raw.end();
  }
}
