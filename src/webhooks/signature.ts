import { createHmac, timingSafeEqual } from 'node:crypto';
import { ApiError } from '../errors.js';
import type { SignatureSettings } from './schemas.js';

// Signature checks on the raw body, compared in constant time (timingSafeEqual on
// equal-length buffers; a length mismatch is simply "wrong").
// - hmac_sha256: header = prefix + hex/base64 of HMAC-SHA256(secret, body) (GitHub:
//   X-Hub-Signature-256, "sha256=", hex).
// - standard_webhooks (standardwebhooks.com): HMAC-SHA256 keyed with the base64 part of
//   `whsec_…`, over `${webhook-id}.${webhook-timestamp}.${body}`; `webhook-signature`
//   holds space-separated `v1,<base64>` entries, any one may match; the timestamp must
//   be within 5 minutes of now (replay protection).
// - stripe: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=…]`, the hex HMAC-SHA256
//   (keyed with the whole `whsec_…` string) of `${t}.${body}`; same 5-minute tolerance.

export const TOLERANCE_SECONDS = 5 * 60;

const invalidSignature = (why: string) => new ApiError('invalid_signature', `Invalid webhook signature: ${why}. Check the signing secret and the signature settings of this webhook.`);

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

export function verifySignature(settings: SignatureSettings, args: { headers: Record<string, string | string[] | undefined>; rawBody: Buffer; nowMs: number }): void {
  if (settings.type === 'hmac_sha256') {
    const got = header(args.headers, settings.header);
    if (got === undefined) throw invalidSignature(`the ${settings.header} header is missing`);
    const prefix = settings.prefix ?? '';
    if (!got.startsWith(prefix)) throw invalidSignature(`the ${settings.header} header does not start with "${prefix}"`);
    const expected = createHmac('sha256', settings.secret).update(args.rawBody).digest();
    const digest = got.slice(prefix.length).trim();
    const given = settings.encoding === 'hex' ? (/^[0-9a-fA-F]*$/.test(digest) ? Buffer.from(digest, 'hex') : Buffer.alloc(0)) : Buffer.from(digest, 'base64');
    if (!sameBytes(given, expected)) throw invalidSignature('the signature does not match the body');
    return;
  }
  if (settings.type === 'stripe') return verifyStripe(settings.secret, args);
  const id = header(args.headers, 'webhook-id');
  const timestamp = header(args.headers, 'webhook-timestamp');
  const signatures = header(args.headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) throw invalidSignature('webhook-id, webhook-timestamp and webhook-signature are all required');
  if (!/^\d{1,12}$/.test(timestamp)) throw invalidSignature('webhook-timestamp is not Unix seconds');
  checkFresh(timestamp, args.nowMs, 'webhook-timestamp');
  const key = Buffer.from(settings.secret.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.`).update(args.rawBody).digest();
  const ok = signatures.split(' ').some((entry) => {
    const [version, value] = entry.split(',', 2);
    return version === 'v1' && value !== undefined && sameBytes(Buffer.from(value, 'base64'), expected);
  });
  if (!ok) throw invalidSignature('no v1 signature matches the body');
}

function checkFresh(timestamp: string, nowMs: number, what: string): void {
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > TOLERANCE_SECONDS) throw invalidSignature(`${what} is more than 5 minutes from now`);
}

function verifyStripe(secret: string, args: { headers: Record<string, string | string[] | undefined>; rawBody: Buffer; nowMs: number }): void {
  const value = header(args.headers, 'stripe-signature');
  if (!value) throw invalidSignature('the Stripe-Signature header is missing');
  const parts = value.split(',').map((p) => p.trim().split('=', 2) as [string, string | undefined]);
  const timestamp = parts.find(([k]) => k === 't')?.[1];
  if (!timestamp || !/^\d{1,12}$/.test(timestamp)) throw invalidSignature('Stripe-Signature has no t=<unix seconds>');
  checkFresh(timestamp, args.nowMs, 'the Stripe-Signature timestamp');
  const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(args.rawBody).digest();
  const ok = parts.some(([k, v]) => k === 'v1' && v !== undefined && /^[0-9a-f]+$/i.test(v) && sameBytes(Buffer.from(v, 'hex'), expected));
  if (!ok) throw invalidSignature('no v1 signature matches the body');
}
