import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

// Secret values at rest: AES-256-GCM with a fresh 96-bit IV for every write, and the
// workspace id and the secret's name bound as associated data — so a stored value
// copied onto another name or into another workspace does not decrypt. The stored
// form is `v1.` + base64(iv | tag | ciphertext); the prefix leaves room for another
// scheme later.

const VERSION = 'v1.';
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const KEY_BYTES = 32;

export class SecretKeyFormatError extends Error {}

/** Thrown when a stored value does not decrypt: another key, or a tampered row. */
export class SecretDecryptError extends Error {}

/** Parses a key written as 64 hex digits or as base64 (standard or URL-safe) of 32 bytes. */
export function parseSecretKey(text: string, source: string): Buffer {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    const bytes = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (bytes.length === KEY_BYTES) return bytes;
  }
  throw new SecretKeyFormatError(
    `${source} must be ${KEY_BYTES} random bytes written as 64 hex digits or as base64 (e.g. the output of \`openssl rand -base64 32\`)`,
  );
}

/** A fresh key, as base64 (what a key file holds). */
export function newSecretKeyText(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

const associated = (workspaceId: string, name: string) => Buffer.from(`${workspaceId}\u0000${name}`, 'utf8');

export function encryptSecret(key: Buffer, workspaceId: string, name: string, plain: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(associated(workspaceId, name));
  const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return VERSION + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64');
}

export function decryptSecret(key: Buffer, workspaceId: string, name: string, stored: string): string {
  if (!stored.startsWith(VERSION)) throw new SecretDecryptError('unknown secret format');
  const raw = Buffer.from(stored.slice(VERSION.length), 'base64');
  if (raw.length < IV_BYTES + TAG_BYTES) throw new SecretDecryptError('truncated secret');
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
    decipher.setAAD(associated(workspaceId, name));
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    throw new SecretDecryptError('the value does not decrypt with this key');
  }
}
