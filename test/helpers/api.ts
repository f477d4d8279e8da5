import { expect } from 'vitest';
import { type TestServer, eventually } from './server.js';

// The few API calls most engine tests make, with their status asserted.

export type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export async function createWorkflow(t: TestServer, steps: unknown[], name = 'test workflow'): Promise<string> {
  const res = await t.request({ method: 'POST', url: '/api/v1/workflows', body: { name, steps } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id as string;
}

export async function run(t: TestServer, workflowId: string, input: unknown = {}): Promise<string> {
  const res = await t.request({ method: 'POST', url: `/api/v1/workflows/${workflowId}/run-async`, body: { input } });
  expect(res.statusCode, res.body).toBe(202);
  return res.json().execution_id as string;
}

export async function get(t: TestServer, id: string): Promise<Json> {
  const res = await t.request({ method: 'GET', url: `/api/v1/executions/${id}?include_step_results=true` });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as Json;
}

/** Polls until the execution is no longer running; returns it with its steps. */
export async function finished(t: TestServer, id: string, timeoutMs = 10_000): Promise<Json> {
  return eventually(async () => {
    const e = await get(t, id);
    return e.status !== 'running' ? e : null;
  }, timeoutMs);
}
