import { sign, verify } from 'node:crypto';
import type { AuditSigningKey, AuditVerifyingKey } from './audit-signing-key.js';
import { canonicalJson } from './audit-chain.js';

/**
 * A checkpoint vouches, with the audit signing key, that the chain's entry `seq` had hash
 * `hash` at `signedAt`. Rewriting entries up to `seq` (even with every hash recomputed) or
 * deleting them is then visible to anyone holding the public key; so is deleting the tail
 * back past a checkpoint. Entries after the last checkpoint are protected by the chain only:
 * the interval bounds how much tail could vanish unnoticed.
 */
export const CHECKPOINT_FORMAT = 'telesalud-audit-checkpoint/1';

/** A checkpoint at least every this many entries… */
export const CHECKPOINT_EVERY_ENTRIES = 1000;
/** …and no later than this after an entry that no checkpoint covers yet. */
export const CHECKPOINT_INTERVAL_MS = 60_000;

export interface Checkpoint {
  seq: number;
  hash: Buffer;
  /** ISO string, millisecond precision: the value stored in `signed_at`. */
  signedAt: string;
  keyId: string;
  signature: Buffer;
}

/** What is signed: FROZEN for format 1, like the entry serialisation. */
export function checkpointMessage(seq: number, hash: Uint8Array, signedAt: string, keyId: string): Buffer {
  return Buffer.from(canonicalJson([CHECKPOINT_FORMAT, seq, Buffer.from(hash).toString('hex'), signedAt, keyId]), 'utf8');
}

export function signCheckpoint(key: AuditSigningKey, seq: number, hash: Buffer, signedAt: Date): Checkpoint {
  const iso = signedAt.toISOString();
  return { seq, hash, signedAt: iso, keyId: key.keyId, signature: sign(null, checkpointMessage(seq, hash, iso, key.keyId), key.privateKey) };
}

export type CheckpointCheck = { ok: true } | { ok: false; reason: string };

export function checkCheckpointSignature(keys: ReadonlyMap<string, AuditVerifyingKey>, cp: Checkpoint): CheckpointCheck {
  const key = keys.get(cp.keyId);
  if (!key) {
    const known = [...keys.keys()];
    return { ok: false, reason: `signed by key ${JSON.stringify(cp.keyId)}, which is not a trusted audit key (trusted: ${known.length ? known.join(', ') : 'none'})` };
  }
  let valid = false;
  try {
    valid = verify(null, checkpointMessage(cp.seq, cp.hash, cp.signedAt, cp.keyId), key.publicKey, cp.signature);
  } catch {
    valid = false;
  }
  return valid ? { ok: true } : { ok: false, reason: `the signature does not match (seq, hash, signed_at, key_id) under key ${cp.keyId}` };
}
