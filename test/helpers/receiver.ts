import { createHmac, timingSafeEqual } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

// A webhook receiver on loopback: records every request (headers and raw body) and
// answers from a script of responses (the last one repeats).

export interface Received {
  headers: Record<string, string | string[] | undefined>;
  body: string;
  at: number;
}

export interface Receiver {
  url: string;
  received: Received[];
  /** Next answers, in order: a status, optionally with headers. */
  script: Array<{ status: number; headers?: Record<string, string> }>;
  close(): Promise<void>;
}

export async function startReceiver(script: Receiver['script'] = [{ status: 200 }], port = 0): Promise<Receiver> {
  const received: Received[] = [];
  const state = { script };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
      const answer = state.script.length > 1 ? state.script.shift()! : state.script[0]!;
      res.writeHead(answer.status, answer.headers ?? {});
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}/hook`,
    received,
    get script() {
      return state.script;
    },
    set script(s) {
      state.script = s;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Standard Webhooks verification written from the specification, independently of
 * src/notifications: key = base64-decoded secret after `whsec_`; signed content =
 * `${id}.${timestamp}.${body}`; the header lists space-separated `v1,<base64>`. */
export function verifyStandardWebhook(secret: string, headers: Received['headers'], body: string): boolean {
  const id = String(headers['webhook-id']);
  const timestamp = String(headers['webhook-timestamp']);
  const key = Buffer.from(secret.split('_').slice(1).join('_'), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
  return String(headers['webhook-signature'])
    .split(' ')
    .some((entry) => {
      const [version, signature] = entry.split(',');
      if (version !== 'v1' || !signature) return false;
      const given = Buffer.from(signature, 'base64');
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
}
