import { describe, expect, it } from 'vitest';
import { TerminalCache } from '../src/executions/terminal-cache.js';
import { describeEachBackend } from './helpers/backends.js';
import { eventually, startTestServer } from './helpers/server.js';

describe('TerminalCache', () => {
  it('evicts least recently used entries beyond its byte budget', () => {
    const cache = new TerminalCache(160);
    cache.set('a', 'x'.repeat(10));
    cache.set('b', 'y'.repeat(10));
    expect(cache.get('a')).toBe('x'.repeat(10)); // a is now the most recent
    for (let i = 0; i < 20; i++) cache.set(`k${i}`, 'z'.repeat(10));
    expect(cache.get('b')).toBeUndefined();
  });

  it('keys by workspace, execution and view', () => {
    expect(TerminalCache.key('w1', 'e', true)).not.toBe(TerminalCache.key('w2', 'e', true));
    expect(TerminalCache.key('w1', 'e', true)).not.toBe(TerminalCache.key('w1', 'e', false));
  });
});

describeEachBackend('polling a finished execution', (backend) => {
  it('serves the same bytes as the first read, per view, and never a running state', async () => {
    const t = await startTestServer(backend);
    try {
      const wf = (await t.request({ method: 'POST', url: '/api/v1/workflows', body: { name: 'w', steps: [{ type: 'transform', expression: '42' }] } })).json();
      const run = (await t.request({ method: 'POST', url: `/api/v1/workflows/${wf.id}/run-async`, body: {} })).json();
      const url = `/api/v1/executions/${run.execution_id}`;
      await eventually(async () => (await t.request({ method: 'GET', url })).json().status === 'success');
      const first = await t.request({ method: 'GET', url: `${url}?include_step_results=true` });
      const again = await t.request({ method: 'GET', url: `${url}?include_step_results=true` });
      const light = await t.request({ method: 'GET', url: `${url}?include_step_results=false` });
      expect(again.body).toBe(first.body);
      expect(again.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(first.json().steps[0].result).toBe(42);
      expect(light.json().steps).toBeUndefined();
      const other = await t.createWorkspace();
      expect((await t.request({ method: 'GET', url, key: other.apiKey })).statusCode).toBe(404);
    } finally {
      await t.close();
    }
  });
});
