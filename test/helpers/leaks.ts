import { relative } from 'node:path';

// What the test helpers open and a test must close: servers (API and worker), database
// handles, `skipflow` child processes. Each helper registers what it opens and
// unregisters it when it is closed; test/helpers/leak-check.ts fails a test file that
// ends with anything still registered. Tracking the helpers is exact, where counting
// process handles (process.getActiveResourcesInfo()) would also see the pools, timers
// and sockets that vitest and the libraries keep for themselves.

interface Resource {
  readonly what: string;
  readonly openedAt: string;
  readonly close: () => Promise<unknown>;
}

const open = new Set<Resource>();

/** The first frame of the stack that is in a test file: where the resource was opened. */
function callerInTestFile(): string {
  const frames = (new Error().stack ?? '').split('\n').slice(1);
  const frame = frames.find((f) => /\.(test|fixture)\.ts:\d+/.test(f) && !f.includes('/helpers/'));
  const match = frame && /(?:file:\/\/)?(\/[^\s()]+?\.(?:test|fixture)\.ts:\d+)/.exec(frame);
  return match ? relative(process.cwd(), match[1]!) : 'an unknown place';
}

/** Registers an open resource; returns the function that unregisters it (call it on close). */
export function track(what: string, close: () => Promise<unknown>): () => void {
  const resource: Resource = { what, openedAt: callerInTestFile(), close };
  open.add(resource);
  return () => void open.delete(resource);
}

/** Descriptions of what is still open, e.g. `startTestServer(sqlite) opened at test/x.test.ts:12`. */
export function stillOpen(): string[] {
  return [...open].map((r) => `${r.what} opened at ${r.openedAt}`);
}

/** Closes (best effort) and forgets everything still open; returns what it was. */
export async function closeLeftovers(): Promise<string[]> {
  const leftovers = [...open];
  const described = stillOpen();
  open.clear();
  await Promise.allSettled(leftovers.map((r) => r.close()));
  return described;
}
