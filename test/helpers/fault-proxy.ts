import { type IncomingMessage, type Server, type ServerResponse, createServer, request as forward } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

// A loopback HTTP proxy in front of a real server that misbehaves on demand: answers
// 503 (with Retry-After) instead of forwarding, forwards the request and then drops the
// connection before the answer reaches the client (the request took effect; the
// client cannot know), or cuts a streaming answer after N bytes.

export type Fault = { kind: '503'; retryAfter?: string } | { kind: 'drop-after-forward' } | { kind: 'drop-before-forward' } | { kind: 'cut-stream-after'; bytes: number };

export interface FaultProxy {
  readonly url: string;
  /** Faults for the next requests matching `match`, one per request, in order. */
  inject(match: (req: IncomingMessage) => boolean, ...faults: Fault[]): void;
  /** Requests seen (method path, and the headers that matter here). */
  readonly seen: Array<{ method: string; path: string; idempotencyKey: string | undefined; lastEventId: string | undefined }>;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const rules: Array<{ match: (req: IncomingMessage) => boolean; faults: Fault[] }> = [];
  const seen: FaultProxy['seen'] = [];
  const sockets = new Set<Socket>();

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    seen.push({ method: req.method!, path: req.url!, idempotencyKey: req.headers['idempotency-key'] as string | undefined, lastEventId: req.headers['last-event-id'] as string | undefined });
    const rule = rules.find((r) => r.faults.length > 0 && r.match(req));
    const fault = rule?.faults.shift();
    if (fault?.kind === '503') {
      res.writeHead(503, { 'content-type': 'application/json', ...(fault.retryAfter ? { 'retry-after': fault.retryAfter } : {}) });
      res.end(JSON.stringify({ error: 'injected outage', error_code: 'internal_error' }));
      return;
    }
    if (fault?.kind === 'drop-before-forward') {
      req.socket.destroy();
      return;
    }
    const out = forward({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      if (fault?.kind === 'drop-after-forward') {
        answer.resume();
        answer.on('end', () => req.socket.destroy());
        return;
      }
      res.writeHead(answer.statusCode!, answer.headers);
      if (fault?.kind === 'cut-stream-after') {
        let sent = 0;
        answer.on('data', (chunk: Buffer) => {
          if (sent >= fault.bytes) return;
          const part = chunk.subarray(0, fault.bytes - sent);
          sent += part.length;
          const cut = sent >= fault.bytes;
          if (cut) answer.destroy();
          // Cut once the bytes are on the wire (a destroy would discard them).
          res.write(part, () => cut && req.socket.destroy());
        });
        return;
      }
      answer.pipe(res);
    });
    out.on('error', () => req.socket.destroy());
    req.pipe(out);
  };

  const server: Server = createServer(handle);
  server.on('connection', (s) => (sockets.add(s), s.on('close', () => sockets.delete(s))));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    inject: (match, ...faults) => void rules.push({ match, faults }),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
