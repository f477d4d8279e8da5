import { createHash } from 'node:crypto';
import { randomBase62 } from '../lib/base62.js';

// The secret in a webhook's URL: `wh_` + 43 base62 characters (≈256 bits from the
// CSPRNG), like an API key. Only its SHA-256 is stored (a fast hash is enough for a
// 256-bit secret); reads show the token cut to its first 8 characters.

export const TOKEN_PATTERN = /^wh_[0-9A-Za-z]{43}$/;

export function generateToken(): string {
  return `wh_${randomBase62(43)}`;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export const tokenPrefix = (token: string): string => token.slice(0, 8);
