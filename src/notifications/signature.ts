import { createHmac, randomBytes } from 'node:crypto';

// Standard Webhooks signing: the secret is `whsec_` + base64 of 32 random bytes; the
// HMAC key is those bytes; the signed content is `id.timestamp.body`.

export const SECRET_PREFIX = 'whsec_';

export function newEndpointSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64');
}

/** The `webhook-signature` header value for one attempt. */
export function signatureHeader(secret: string, id: string, timestampSeconds: number, body: string): string {
  const key = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
  const mac = createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
  return `v1,${mac}`;
}
