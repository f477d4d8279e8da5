import { createHash, randomBytes } from 'node:crypto';

// `sk_live_` + 43 base62 characters: 43 × log2(62) ≈ 256.03 bits from the CSPRNG.
// Only the SHA-256 of the secret and a short display prefix are ever stored. A fast
// hash is right here (unlike passwords): the secret has 256 bits of entropy, so there
// is nothing for a slow hash to protect against, and it keeps verification cheap.

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const PREFIX = 'sk_live_';
const BODY_LENGTH = 43;
export const SECRET_PATTERN = /^sk_live_[0-9A-Za-z]{43}$/;

export function generateSecret(): string {
  let body = '';
  while (body.length < BODY_LENGTH) {
    for (const byte of randomBytes(64)) {
      // 248 = 4 × 62: rejecting bytes above it keeps every character equally likely.
      if (byte < 248 && body.length < BODY_LENGTH) body += ALPHABET[byte % 62];
    }
  }
  return PREFIX + body;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** What `keys list` shows: enough to recognise a key, useless to an attacker. */
export function displayPrefix(secret: string): string {
  return secret.slice(0, PREFIX.length + 4);
}
