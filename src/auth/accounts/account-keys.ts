import { hkdfSync } from 'node:crypto';
import type { KeyEncryptionKey, KeyRing } from '../../documents/key-ring.js';
import { openTotpSecret, sealTotpSecret } from '../mfa/totp.js';

/**
 * TOTP secrets at rest are sealed with a key derived, for this purpose only, from a key-encryption
 * key of the ring, so a database dump alone yields no second factor. The stored value names that
 * KEK — `kek.<kek id>.<v1 sealed secret>` — so `telesalud keys rotate` can re-seal it and the ring
 * can find (or re-read) the key it needs. Values sealed before the id was recorded (a bare `v1.…`)
 * still open: every key of the ring is tried.
 */
const TAGGED_PREFIX = 'kek.';
const KEK_ID = /^[0-9a-f]{16}$/;

function sealingKey(kek: KeyEncryptionKey): Buffer {
  return Buffer.from(hkdfSync('sha256', kek.key, Buffer.alloc(0), 'telesalud/totp/v1', 32));
}

/** Seals an account's TOTP secret under the ring's current KEK. */
export function sealAccountTotpSecret(ring: KeyRing, secret: string, accountId: string): string {
  const kek = ring.current();
  const key = sealingKey(kek);
  try {
    return `${TAGGED_PREFIX}${kek.id}.${sealTotpSecret(secret, key, accountId)}`;
  } finally {
    key.fill(0);
  }
}

/** The KEK id a stored value names; undefined for a value sealed before ids were recorded. */
export function totpSealedKekId(sealed: string): string | undefined {
  if (!sealed.startsWith(TAGGED_PREFIX)) return undefined;
  const id = sealed.slice(TAGGED_PREFIX.length, TAGGED_PREFIX.length + 16);
  return KEK_ID.test(id) && sealed[TAGGED_PREFIX.length + 16] === '.' ? id : undefined;
}

/** Opens what sealAccountTotpSecret stored (or an untagged value from before). Throws on any mismatch. */
export function openAccountTotpSecret(ring: KeyRing, sealed: string, accountId: string): string {
  return openWithKek(ring, sealed, accountId).secret;
}

/**
 * For `keys rotate`: the same secret sealed under the ring's current KEK, and the KEK it was under
 * (undefined when it was untagged). Throws when no key of the ring opens it.
 */
export function resealAccountTotpSecret(ring: KeyRing, sealed: string, accountId: string): { sealed: string; fromKekId: string } {
  const { secret, kekId } = openWithKek(ring, sealed, accountId);
  return { sealed: sealAccountTotpSecret(ring, secret, accountId), fromKekId: kekId };
}

/** Which KEK of the ring opens this value; undefined when none does (a lost key, or tampering). */
export function totpSecretKekId(ring: KeyRing, sealed: string, accountId: string): string | undefined {
  try {
    return openWithKek(ring, sealed, accountId).kekId;
  } catch {
    return undefined;
  }
}

function openWithKek(ring: KeyRing, sealed: string, accountId: string): { secret: string; kekId: string } {
  const kekId = totpSealedKekId(sealed);
  if (kekId !== undefined) {
    // byId re-reads the key file once when a rotation elsewhere sealed it under a key we lack.
    return { secret: openUnder(ring.byId(kekId), sealed.slice(TAGGED_PREFIX.length + 17), accountId), kekId };
  }
  let lastError: unknown;
  for (const id of ring.ids()) {
    try {
      return { secret: openUnder(ring.byId(id), sealed, accountId), kekId: id };
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError instanceof Error ? lastError : new Error('TOTP seal: no key of the ring opens this secret');
}

function openUnder(kek: KeyEncryptionKey, sealed: string, accountId: string): string {
  const key = sealingKey(kek);
  try {
    return openTotpSecret(sealed, key, accountId);
  } finally {
    key.fill(0);
  }
}
