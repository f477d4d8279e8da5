import { createServer } from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { finished, run } from './helpers/api.js';
import { type TestServer, startTestServer } from './helpers/server.js';
import { describeEachBackend } from './helpers/backends.js';

// examples/: every example is a valid workflow, and the two that do not need the
// public internet run to success against a local endpoint that stands in for chat
// and the warehouse.

const dir = new URL('../examples/', import.meta.url);
const read = (path: string) => JSON.parse(readFileSync(new URL(path, dir), 'utf8'));

describeEachBackend('examples', (backend) => {
  let t: TestServer;
  let endpoint: string;
  const received: unknown[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push(JSON.parse(body));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  beforeAll(async () => {
    t = await startTestServer(backend, { allowPrivateNetwork: true });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
  });
  afterAll(async () => {
    server.close();
    await t?.close();
  });

  const apply = async (name: string) => {
    const res = await t.request({ method: 'POST', url: '/api/v1/workflows', body: read(`${name}/workflow.json`) });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().id as string;
  };

  it('are all valid workflows', async () => {
    const names = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    expect(names.length).toBe(3);
    for (const name of names) await apply(name);
  });

  it('github-push-to-chat posts the message', async () => {
    const id = await apply('github-push-to-chat');
    const e = await finished(t, await run(t, id, { ...read('github-push-to-chat/push-event.json'), notify_url: endpoint }));
    expect(e.status, JSON.stringify(e.error)).toBe('success');
    expect(received).toContainEqual({ text: expect.stringContaining('ada pushed 2 commit(s) to acme/shop:main') });
  });

  it('order-fulfilment prices the order, reviews it and hands it over', async () => {
    const id = await apply('order-fulfilment');
    const e = await finished(t, await run(t, id, { ...read('order-fulfilment/order.json'), review_url: endpoint, warehouse_url: endpoint }));
    expect(e.status, JSON.stringify(e.error)).toBe('success');
    expect(e.steps[4].result).toEqual({ order_id: 'A-10042', subtotal: 1205.99, reviewed: true, warehouse_status: 200 });
  });
});
