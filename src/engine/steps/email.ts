import { AsyncLocalStorage } from 'node:async_hooks';
import { connect, type Socket } from 'node:net';
import nodemailer, { type Transporter } from 'nodemailer';
import SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import { StepFailure } from '../step-errors.js';
import { emailDefinition } from '../../steps/email.js';
import type { StepType } from './step-type.js';

// The `email` step (docs/api.md#steps): one message through the operator's SMTP server
// (SKIPFLOW_SMTP_URL). One transport per SMTP URL, unpooled: each message has its own
// connection, which this module opens itself (nodemailer's getSocket hook) so that a
// stop or a timeout can cut exactly that message's connection. nodemailer takes no
// AbortSignal, so the attempt's signal travels to the hook in an AsyncLocalStorage.

const DEFAULT_FROM = 'skipflow@localhost';

const signals = new AsyncLocalStorage<AbortSignal>();

/** Opens the message's connection and ties it to the attempt's signal. */
function openSocket(options: SMTPTransport.Options, callback: (error: Error | null, socketOptions: { connection: Socket } | false) => void): void {
  const signal = signals.getStore();
  const secure = options.secure ?? Number(options.port) === 465;
  const socket = connect({ host: options.host || 'localhost', port: Number(options.port) || (secure ? 465 : 587) });
  const cut = () => socket.destroy(new Error('the step was stopped or timed out'));
  if (signal?.aborted) cut();
  signal?.addEventListener('abort', cut, { once: true });
  socket.once('close', () => signal?.removeEventListener('abort', cut));
  const onError = (error: Error) => callback(error, false);
  socket.once('error', onError);
  socket.once('connect', () => {
    socket.off('error', onError); // from here on nodemailer owns the socket's errors
    callback(null, { connection: socket });
  });
}

const transports = new Map<string, Transporter<SMTPTransport.SentMessageInfo>>();

function transportFor(smtpUrl: string): Transporter<SMTPTransport.SentMessageInfo> {
  let transport = transports.get(smtpUrl);
  if (!transport) {
    // Built directly: createTransport({ url }) would drop every option but the URL's.
    transport = nodemailer.createTransport(new SMTPTransport({ url: smtpUrl, getSocket: openSocket }));
    transports.set(smtpUrl, transport);
  }
  return transport;
}

function defaultFrom(smtpUrl: string): string {
  const user = decodeURIComponent(new URL(smtpUrl).username);
  return user.includes('@') ? user : DEFAULT_FROM;
}

const fieldFailure = (field: string, message: string) => new StepFailure('expression_error', `${field}: ${message}`);

function addresses(value: unknown, field: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  const list = Array.isArray(value) ? value : [value];
  if (!list.every((item) => typeof item === 'string')) throw fieldFailure(field, `must be an address or a list of addresses, got ${JSON.stringify(value)}`);
  return (list as string[]).filter((item) => item.trim() !== '');
}

function text(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  return typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
}

function buildMessage(fields: Record<string, unknown>, smtpUrl: string, stepKey: string) {
  const to = addresses(fields.to, 'to');
  if (!to?.length) throw fieldFailure('to', 'gave no recipient');
  const from = fields.from === undefined || fields.from === null ? defaultFrom(smtpUrl) : fields.from;
  if (typeof from !== 'string') throw fieldFailure('from', `must be an address, got ${JSON.stringify(from)}`);
  const body = { text: text(fields.text), html: text(fields.html) };
  if (body.text === undefined && body.html === undefined) throw fieldFailure('text', 'both "text" and "html" gave null; at least one must give the body');
  return {
    from,
    to,
    cc: addresses(fields.cc, 'cc'),
    bcc: addresses(fields.bcc, 'bcc'),
    subject: text(fields.subject) ?? '',
    ...body,
    // Stable across attempts and after a crash, like the http step's Idempotency-Key,
    // so a receiving system can recognise a message it already has.
    messageId: `<${stepKey.replace(/[^A-Za-z0-9]/g, '.')}@skipflow>`,
  };
}

// Errors nodemailer raises before or outside the SMTP conversation that another
// attempt cannot fix; every other error without an SMTP reply code is a connection problem.
const PERMANENT = new Set(['EENVELOPE', 'EMESSAGE', 'EAUTH', 'ESTREAM']);

function smtpFailure(error: unknown, smtpUrl: string): StepFailure {
  const { code, responseCode, response, message } = error as { code?: string; responseCode?: number; response?: string; message?: string };
  const server = new URL(smtpUrl).host;
  if (typeof responseCode === 'number') {
    const temporary = responseCode >= 400 && responseCode < 500;
    const hint = temporary
      ? 'The server asked to try again later; give the step a "retry" policy.'
      : 'The server refused it permanently; check the addresses, the sender and the message.';
    return new StepFailure('smtp_error', `The SMTP server at ${server} answered: ${response ?? message ?? responseCode}. ${hint}`, temporary);
  }
  if (code !== undefined && PERMANENT.has(code)) return new StepFailure('smtp_error', `The message could not be sent through ${server}: ${message} (${code}).`);
  return new StepFailure(
    'smtp_error',
    `Could not talk to the SMTP server at ${server}: ${message ?? String(error)}${code ? ` (${code})` : ''}. Check SKIPFLOW_SMTP_URL and that the server is running.`,
    true,
  );
}

const address = (entry: string | { address: string }) => (typeof entry === 'string' ? entry : entry.address);

export const emailStep: StepType<typeof emailDefinition.schema> = {
  ...emailDefinition,
  async run(context, signal) {
    const smtpUrl = context.services.smtpUrl;
    if (smtpUrl === null) {
      throw new StepFailure('email_not_configured', 'Email is not configured on this server: the operator must set SKIPFLOW_SMTP_URL (smtp://host:port) for email steps to run.');
    }
    const message = buildMessage(context.fields, smtpUrl, context.stepKey);
    try {
      const info = await signals.run(signal, () => transportFor(smtpUrl).sendMail(message));
      return { kind: 'completed', result: { message_id: info.messageId, accepted: info.accepted.map(address), rejected: info.rejected.map(address) } };
    } catch (error) {
      throw smtpFailure(error, smtpUrl);
    }
  },
};
