import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { type IncomingMessage, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAttempt } from '../src/engine/run-step.js';
import { emailStep } from '../src/engine/steps/email.js';
import type { StepDefinition } from '../src/engine/steps/index.js';
import type { StepServices } from '../src/engine/steps/step-type.js';
import { describeEachBackend } from './helpers/backends.js';
import { type TestServer, eventually, startTestServer } from './helpers/server.js';
import { closedPort } from './helpers/net.js';

// docs/api.md#steps and docs/steps.md, the `email` step, against a real SMTP server in this process (smtp-server on
// 127.0.0.1): what the server received (envelope, headers, bodies), the result, each
// error code and its retry class, stop and timeout closing the connection — and the
// Welcome Email Workflow of docs/steps.md end to end (http → transform → email).

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Received {
  sessionId: string;
  from: string;
  to: string[];
  user: string | undefined;
  /** The raw message with quoted-printable soft breaks and escapes undone. */
  message: string;
}

const smtpError = (code: number, message: string) => Object.assign(new Error(message), { responseCode: code });

/**
 * Rules by address: MAIL FROM flaky-*@ fails once with 451, MAIL FROM refused@ with 550;
 * RCPT TO nobody@ gets 550; a message with subject "hang" is read but never answered.
 */
async function startSmtp() {
  const received: Received[] = [];
  const hanging: string[] = [];
  const closedAt = new Map<string, number>();
  const senders = new Map<string, number>();
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    onAuth(auth, _session, callback) {
      callback(null, { user: auth.username });
    },
    onMailFrom(address, _session, callback) {
      const n = (senders.get(address.address) ?? 0) + 1;
      senders.set(address.address, n);
      if (address.address.startsWith('flaky') && n === 1) return callback(smtpError(451, '4.3.0 Try again later'));
      if (address.address.startsWith('refused@')) return callback(smtpError(550, '5.7.1 Sender not allowed'));
      callback();
    },
    onRcptTo(address, _session, callback) {
      if (address.address.startsWith('nobody@')) return callback(smtpError(550, '5.1.1 No such user here'));
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString();
        if (/^Subject: hang/m.test(raw)) {
          hanging.push(session.id);
          return; // never answers the end of DATA
        }
        received.push({
          sessionId: session.id,
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          user: session.user as string | undefined,
          message: raw.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))),
        });
        callback();
      });
    },
    onClose(session) {
      closedAt.set(session.id, Date.now());
    },
  });
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    url: `smtp://127.0.0.1:${port}`,
    received,
    hanging,
    closedAt,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

type Smtp = Awaited<ReturnType<typeof startSmtp>>;

const context = { input: null, steps: [], execution: { execution_id: 'e', workflow_id: 'w', workflow_name: 'W' }, workflow: { workflow_id: 'w', name: 'W' } };
function attempt(def: Record<string, unknown>, services: StepServices, stepKey = 'e:0') {
  return runAttempt({
    type: emailStep,
    def: { type: 'email', ...def } as unknown as StepDefinition,
    context,
    stepKey,
    attempt: 1,
    wakeAt: null,
    signal: new AbortController().signal,
    now: Date.now,
    services,
  }).catch((e: unknown) => e);
}

describe('email step (units)', () => {
  let smtp: Smtp;
  beforeAll(async () => {
    smtp = await startSmtp();
  });
  afterAll(() => smtp?.close());

  it('fails with email_not_configured (not retryable) when no SMTP URL is set', async () => {
    const error = await attempt({ to: 'ada@example.com', subject: 's', text: 't' }, { allowPrivateNetwork: false, smtpUrl: null });
    expect(error).toMatchObject({ code: 'email_not_configured', retryable: false });
    expect((error as Error).message).toMatch(/set SKIPFLOW_SMTP_URL/);
  });

  it('sends from the SMTP URL’s user, authenticating as it', async () => {
    const smtpUrl = `smtp://bot%40example.com:s3cret@127.0.0.1:${smtp.port}`;
    const result = (await attempt({ to: 'ada@example.com', subject: 'from the url', text: 'hi' }, { allowPrivateNetwork: false, smtpUrl }, 'exec1:4')) as Json;
    expect(result).toMatchObject({ kind: 'completed', result: { message_id: '<exec1.4@skipflow>', accepted: ['ada@example.com'], rejected: [] } });
    const got = smtp.received.find((r) => r.message.includes('Subject: from the url'))!;
    expect(got).toMatchObject({ from: 'bot@example.com', to: ['ada@example.com'], user: 'bot@example.com' });
    expect(got.message).toMatch(/^From: bot@example\.com\r?$/m);
    expect(got.message).toMatch(/^Message-ID: <exec1\.4@skipflow>\r?$/im);
  });

  it('fails with a retryable smtp_error when the SMTP server cannot be reached', async () => {
    const port = await closedPort();
    const error = await attempt({ to: 'ada@example.com', subject: 's', text: 't' }, { allowPrivateNetwork: false, smtpUrl: `smtp://127.0.0.1:${port}` });
    expect(error).toMatchObject({ code: 'smtp_error', retryable: true });
    expect((error as Error).message).toMatch(new RegExp(`^Could not talk to the SMTP server at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.*Check SKIPFLOW_SMTP_URL`));
  });

  it('classifies SMTP replies: 4xx retryable, 5xx not', async () => {
    const services = { allowPrivateNetwork: false, smtpUrl: smtp.url };
    const temporary = await attempt({ from: 'flaky-unit@example.com', to: 'ada@example.com', subject: 's', text: 't' }, services);
    expect(temporary).toMatchObject({ code: 'smtp_error', retryable: true });
    expect((temporary as Error).message).toMatch(/answered: 451 4\.3\.0 Try again later\. The server asked to try again later/);
    const permanent = await attempt({ from: 'refused@example.com', to: 'ada@example.com', subject: 's', text: 't' }, services);
    expect(permanent).toMatchObject({ code: 'smtp_error', retryable: false });
    expect((permanent as Error).message).toMatch(/answered: 550 5\.7\.1 Sender not allowed\. The server refused it permanently/);
  });
});

/** The Welcome Email Workflow exactly as docs/steps.md shows it. */
function welcomeWorkflowFromDocs(): { name: string; description: string; steps: Json[] } {
  const doc = readFileSync(new URL('../docs/steps.md', import.meta.url), 'utf8');
  const section = doc.split('## Example: the Welcome Email Workflow')[1]!;
  return JSON.parse(/```json\n([\s\S]*?)\n```/.exec(section)![1]!);
}

describeEachBackend('email step', (backend) => {
  let t: TestServer;
  let unconfigured: TestServer;
  let smtp: Smtp;
  beforeAll(async () => {
    smtp = await startSmtp();
    [t, unconfigured] = await Promise.all([
      startTestServer(backend, { smtpUrl: smtp.url, allowPrivateNetwork: true, leaseMs: 1500, pollIntervalMs: 50 }),
      startTestServer(backend),
    ]);
  });
  afterAll(async () => {
    await Promise.all([t?.close(), unconfigured?.close()]);
    await smtp?.close();
  });

  async function create(steps: unknown[], server = t, name = 'email steps') {
    return server.request({ method: 'POST', url: '/api/v1/workflows', body: { name, steps } });
  }
  async function run(steps: unknown[], input: unknown = {}, server = t): Promise<string> {
    const created = await create(steps, server);
    expect(created.statusCode, created.body).toBe(201);
    const res = await server.request({ method: 'POST', url: `/api/v1/workflows/${created.json().id}/run-async`, body: { input } });
    expect(res.statusCode, res.body).toBe(202);
    return res.json().execution_id as string;
  }
  const get = async (id: string, server = t): Promise<Json> =>
    (await server.request({ method: 'GET', url: `/api/v1/executions/${id}?include_step_results=true` })).json() as Json;
  const finished = (id: string, server = t) =>
    eventually(async () => {
      const e = await get(id, server);
      return e.status !== 'running' ? e : null;
    });
  const bySubject = (subject: string) => smtp.received.filter((r) => r.message.includes(`Subject: ${subject}\r\n`));

  it('sends to, cc, bcc, from, subject, text and html (templated); the result lists accepted and rejected', async () => {
    const id = await run(
      [
        { type: 'transform', expression: '{ "first": "Ada", "team": ["ops@example.com", "nobody@example.com"] }' },
        {
          type: 'email',
          from: 'Acme Robot <robot@{{ input.domain }}>',
          to: ['{{ input.email }}', 'grace@example.com'],
          cc: '{{ steps[0].team }}',
          bcc: 'audit@example.com',
          subject: 'Hi {{ steps[0].first }} all fields',
          text: 'Plain hello to {{ steps[0].first }}.',
          html: '<p>HTML hello to <b>{{ steps[0].first }}</b>.</p>',
        },
      ],
      { email: 'ada@example.com', domain: 'acme.test' },
    );
    const e = await finished(id);
    expect(e.status, JSON.stringify(e.error)).toBe('success');
    expect(e.steps[1].result).toEqual({
      message_id: `<${id}.1@skipflow>`,
      accepted: ['ada@example.com', 'grace@example.com', 'ops@example.com', 'audit@example.com'],
      rejected: ['nobody@example.com'],
    });
    const [got] = bySubject('Hi Ada all fields');
    expect(got).toMatchObject({ from: 'robot@acme.test', to: ['ada@example.com', 'grace@example.com', 'ops@example.com', 'audit@example.com'] });
    expect(got!.message).toMatch(/^From: Acme Robot <robot@acme\.test>\r$/m);
    expect(got!.message).toMatch(/^To: ada@example\.com, grace@example\.com\r$/m);
    expect(got!.message).toMatch(/^Cc: ops@example\.com, nobody@example\.com\r$/m);
    expect(got!.message).not.toMatch(/^Bcc:/im);
    expect(got!.message).toContain('Content-Type: multipart/alternative');
    expect(got!.message).toContain('Plain hello to Ada.');
    expect(got!.message).toContain('<p>HTML hello to <b>Ada</b>.</p>');
  });

  it('defaults from to skipflow@localhost; text alone is enough', async () => {
    const e = await finished(await run([{ type: 'email', to: 'ada@example.com', subject: 'Default sender', text: 'only text' }]));
    expect(e.status).toBe('success');
    const [got] = bySubject('Default sender');
    expect(got).toMatchObject({ from: 'skipflow@localhost', to: ['ada@example.com'] });
    expect(got!.message).toMatch(/^From: skipflow@localhost\r$/m);
    expect(got!.message).toMatch(/Content-Type: text\/plain/);
    expect(got!.message).toContain('only text');
  });

  it('smtp_error 4xx is retried (attempts 2); 5xx is not; all recipients refused fails the step', async () => {
    const retried = await finished(
      await run([{ type: 'email', from: 'flaky-integration@example.com', to: 'ada@example.com', subject: 'Retried', text: 't', retry: { max_attempts: 3, backoff_ms: 20 } }]),
    );
    expect(retried.status, JSON.stringify(retried.error)).toBe('success');
    expect(retried.steps[0]).toMatchObject({ status: 'completed', attempts: 2 });
    expect(bySubject('Retried')).toHaveLength(1);

    const permanent = await finished(
      await run([{ type: 'email', from: 'refused@example.com', to: 'ada@example.com', subject: 'Refused', text: 't', retry: { max_attempts: 3, backoff_ms: 20 } }]),
    );
    expect(permanent).toMatchObject({ status: 'failed', error_code: 'smtp_error', error_step_index: 0 });
    expect(permanent.steps[0]).toMatchObject({ status: 'failed', attempts: 1 });
    expect(permanent.error).toMatch(/^Step 0 \(email\) failed: The SMTP server at 127\.0\.0\.1:\d+ answered: 550 5\.7\.1 Sender not allowed/);

    const nobody = await finished(await run([{ type: 'email', to: ['nobody@example.com'], subject: 'Nobody', text: 't' }]));
    expect(nobody).toMatchObject({ status: 'failed', error_code: 'smtp_error' });
    expect(nobody.steps[0].error).toMatch(/550/);
  });

  it('fails with email_not_configured on a server without SKIPFLOW_SMTP_URL (continue_on_error lets the run go on)', async () => {
    const e = await finished(
      await run(
        [
          { type: 'email', to: 'ada@example.com', subject: 'x', text: 'y', continue_on_error: true, retry: { max_attempts: 3, backoff_ms: 10 } },
          { type: 'transform', expression: '$type(steps[0])' },
        ],
        {},
        unconfigured,
      ),
      unconfigured,
    );
    expect(e.status).toBe('success');
    expect(e.steps[0]).toMatchObject({ status: 'failed', error_code: 'email_not_configured', attempts: 1, result: null });
    expect(e.steps[0].error).toMatch(/SKIPFLOW_SMTP_URL/);
    expect(e.steps[1].result).toBe('null');
  });

  it('a timeout closes the SMTP connection; so does a stop, within 1 s', async () => {
    const timedOut = await finished(await run([{ type: 'email', to: 'ada@example.com', subject: 'hang', text: 'timeout', timeout_ms: 400 }]));
    expect(timedOut).toMatchObject({ status: 'failed', error_code: 'timeout' });
    const timedOutSession = smtp.hanging.at(-1)!;
    await eventually(async () => smtp.closedAt.has(timedOutSession), 2000, 10);

    const hangs = smtp.hanging.length;
    const id = await run([{ type: 'email', to: 'ada@example.com', subject: 'hang', text: 'stop' }, { type: 'transform', expression: '1' }]);
    await eventually(async () => smtp.hanging.length > hangs, 5000, 10);
    const session = smtp.hanging.at(-1)!;
    const t0 = Date.now();
    const res = await t.request({ method: 'POST', url: `/api/v1/executions/${id}/stop`, headers: { 'content-type': 'application/json' } });
    expect(res.json()).toEqual({ execution_id: id, status: 'stopped' });
    await eventually(async () => smtp.closedAt.has(session), 1000, 5);
    expect(smtp.closedAt.get(session)! - t0).toBeLessThan(1000);
    const e = await get(id);
    expect(e.steps.map((s: Json) => s.status)).toEqual(['stopped', 'pending']);
  });

  it('checks at write time: to and subject required, text or html required, literal addresses must be addresses', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ subject: 's', text: 't' }, /steps\[0\]\.to/],
      [{ to: 'ada@example.com', text: 't' }, /steps\[0\]\.subject/],
      [{ to: 'ada@example.com', subject: 's' }, /steps\[0\]\.text: give "text", "html" or both/],
      [{ to: 'not-an-address', subject: 's', text: 't' }, /steps\[0\]\.to: "not-an-address" is not an email address/],
      [{ to: ['ada@example.com', 'nope'], subject: 's', text: 't' }, /steps\[0\]\.to\[1\]: "nope" is not an email address/],
      [{ to: 'ada@example.com', from: 'robot', subject: 's', text: 't' }, /steps\[0\]\.from: "robot" is not an email address/],
      [{ to: [], subject: 's', text: 't' }, /steps\[0\]\.to/],
      [{ to: 'ada@example.com', subject: 's', text: 't', attachments: [] }, /steps\[0\]/],
    ];
    for (const [fields, message] of cases) {
      const res = await create([{ type: 'email', ...fields }]);
      expect(res.statusCode, JSON.stringify(fields)).toBe(400);
      expect(res.json().error, JSON.stringify(fields)).toMatch(message);
    }
    expect((await create([{ type: 'email', to: '{{ input.to }}', cc: ['{{ input.cc }}'], subject: '{{ input.s }}', html: '{{ input.h }}' }])).statusCode).toBe(201);
  });

  it('a template that gives no recipient fails with expression_error', async () => {
    const e = await finished(await run([{ type: 'email', to: '{{ input.missing }}', subject: 's', text: 't' }]));
    expect(e).toMatchObject({ status: 'failed', error_code: 'expression_error' });
    expect(e.steps[0].error).toBe('to: gave no recipient');
  });

  it('runs the Welcome Email Workflow of docs/steps.md end to end: http → transform → email', async () => {
    const api = createServer((req: IncomingMessage, res) => {
      if (req.url !== '/users/42' || req.headers.authorization !== 'Bearer tok-1') return res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 42, first_name: 'Ada', last_name: 'Lovelace', username: 'ada', email: 'ada@example.com', email_opt_in: true }));
    });
    api.listen(0, '127.0.0.1');
    await once(api, 'listening');
    try {
      const workflow = welcomeWorkflowFromDocs();
      const local = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
      const steps = JSON.parse(JSON.stringify(workflow.steps).replaceAll('https://api.example.com', local));
      const created = await t.request({ method: 'POST', url: '/api/v1/workflows', body: { ...workflow, steps } });
      expect(created.statusCode, created.body).toBe(201);
      expect(created.json()).toMatchObject({ name: 'Welcome Email Workflow', description: 'Sends a welcome email when a user signs up' });
      const started = await t.request({ method: 'POST', url: `/api/v1/workflows/${created.json().id}/run-async`, body: { input: { user_id: 42, api_token: 'tok-1' } } });
      expect(started.statusCode).toBe(202);
      const e = await finished(started.json().execution_id);
      expect(e.status, JSON.stringify(e.error)).toBe('success');
      expect(e.steps.map((s: Json) => [s.name, s.status])).toEqual([['fetch user', 'completed'], ['greeting', 'completed'], ['send welcome', 'completed']]);
      expect(e.steps[0].result).toMatchObject({ status: 200, body: { first_name: 'Ada', email: 'ada@example.com' } });
      expect(e.steps[1].result).toBe('Hello Ada, welcome to Acme! Your account ada is ready.');
      expect(e.steps[2].result).toMatchObject({ accepted: ['ada@example.com'], rejected: [] });

      const [got] = bySubject('Welcome to Acme, Ada');
      expect(got).toMatchObject({ from: 'skipflow@localhost', to: ['ada@example.com'] });
      expect(got!.message).toMatch(/^To: Ada Lovelace <ada@example\.com>\r$/m);
      expect(got!.message).toContain('Hello Ada, welcome to Acme! Your account ada is ready.\r\n\r\nThe Acme team');
      expect(got!.message).toContain('<p>Hello Ada, welcome to Acme! Your account ada is ready.</p><p>The Acme team</p>');
    } finally {
      api.closeAllConnections();
      api.close();
    }
  });
});
