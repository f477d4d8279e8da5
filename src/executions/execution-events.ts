import { createHash } from 'node:crypto';
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
//
// Every frame has an `id:` that encodes what the client has been sent so far (the
// execution's status and a short digest of each step's last frame). The stream keeps
// no history, and needs none: a client that reconnects with `Last-Event-ID` is sent
// exactly the frames whose content changed since, and nothing it already has.

const POLL_MS = 250;
const HEARTBEAT_MS = 15_000;

type StepView = ReturnType<typeof toStepView>;

function frame(event: string, data: unknown, id: string): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\nid: ${id}\n\n`;
}

const digest = (text: string) => createHash('sha256').update(text).digest('base64url').slice(0, 10);

/** The resume cursor: `<status>.<digest of step 0>.<digest of step 1>…` (empty for a step not sent). */
function cursor(status: string | null, seen: Map<number, string>, steps: number): string {
  const parts = [status ?? ''];
  for (let i = 0; i < steps; i++) parts.push(seen.get(i) ?? '');
  return parts.join('.');
}

/** What a Last-Event-ID says the client has; nothing when it is not one of ours. */
function resumeFrom(lastEventId: string | undefined): { status: string | null; seen: Map<number, string> } {
  const seen = new Map<number, string>();
  if (!lastEventId || lastEventId.length > 2_000 || !/^[a-z]*(\.[A-Za-z0-9_-]{0,10})*$/.test(lastEventId)) return { status: null, seen };
  const [status, ...digests] = lastEventId.split('.');
  digests.forEach((d, i) => d && seen.set(i, d));
  return { status: status || null, seen };
}

export async function streamExecutionEvents(
  deps: Pick<AppDeps, 'db'>,
  reply: FastifyReply,
  args: { workspaceId: string; id: string; lastEventId?: string },
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

  const resumed = resumeFrom(args.lastEventId);
  const seen = resumed.seen;
  let lastStatus: string | null = resumed.status;
  try {
    let row = first;
    while (open) {
      const steps = (await stepsOf(deps.db.db, row)).map(toStepView);
      for (const step of steps) {
        const hash = digest(JSON.stringify(step satisfies StepView));
        if (seen.get(step.index) !== hash) {
          seen.set(step.index, hash);
          raw.write(frame('step', step, cursor(lastStatus, seen, steps.length)));
        }
      }
      if (row.status !== lastStatus) {
        lastStatus = row.status;
        raw.write(frame('execution', toExecutionView(row), cursor(lastStatus, seen, steps.length)));
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
