import { createHash, randomBytes } from 'node:crypto';

// The secret in a webhook's URL: `wh_` + 43 base62 characters (≈256 bits from the
// CSPRNG), like an API key. Only its SHA-256 is stored (a fast hash is enough for a
// 256-bit secret); reads show the token cut to its first 8 characters.

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BODY_LENGTH = 43;
export const TOKEN_PATTERN = /^wh_[0-9A-Za-z]{43}$/;

export function generateToken(): string {
  let body = '';
  while (body.length < BODY_LENGTH) {
    for (const byte of randomBytes(64)) {
      // 248 = 4 × 62: rejecting bytes above it keeps every character equally likely.
      if (byte < 248 && body.length < BODY_LENGTH) body += ALPHABET[byte % 62];
    }
  }
  return `wh_${body}`;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export const tokenPrefix = (token: string): string => token.slice(0, 8);
