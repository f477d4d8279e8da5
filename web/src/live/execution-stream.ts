import type { Api } from '../api/client.js';
import type { Execution, Step } from '../api/types.js';

// Follows one execution while it runs, over the API's Server-Sent Events stream
// (GET /executions/:id/events). EventSource cannot send an Authorization header, so the
// stream is read with fetch and parsed here. Frames: `event: execution` (the execution
// without steps, on each status change) and `event: step` (one step, on each change).
// The stream ends when the execution does; if it cannot be opened, a long poll
// (GET /executions/:id?wait=60) tells when the execution ends instead.

export interface StreamHandlers {
  onExecution(execution: Execution): void;
  onStep(step: Step): void;
  /** The execution ended or the stream closed: the caller reloads the whole execution. */
  onEnd(): void;
}

function dispatch(block: string, handlers: StreamHandlers): void {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return;
  const payload = JSON.parse(data.join('\n')) as unknown;
  if (event === 'execution') handlers.onExecution(payload as Execution);
  else if (event === 'step') handlers.onStep(payload as Step);
}

async function readStream(response: Response, handlers: StreamHandlers): Promise<void> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, '\n');
    let end: number;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      dispatch(buffer.slice(0, end), handlers);
      buffer = buffer.slice(end + 2);
    }
  }
}

async function longPollUntilEnd(api: Api, id: string, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    const execution = await api.get<Execution>(`/executions/${encodeURIComponent(id)}?wait=60`, signal);
    if (execution.status !== 'running') return;
  }
}

/** Follows `id` until it ends or `signal` aborts. */
export async function followExecution(api: Api, id: string, signal: AbortSignal, handlers: StreamHandlers): Promise<void> {
  try {
    try {
      const response = await api.stream(`/executions/${encodeURIComponent(id)}/events`, signal);
      await readStream(response, handlers);
    } catch (error) {
      if (signal.aborted) return;
      // No stream (a server without it, or the open-stream limit): wait with a long poll.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await longPollUntilEnd(api, id, signal);
    }
  } catch {
    if (signal.aborted) return;
  }
  if (!signal.aborted) handlers.onEnd();
}
