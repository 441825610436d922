import { sign, verify } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import { bytes } from '../db/bytes.js';
import type { Database } from '../db/schema.js';
import { canonicalJson } from './audit-chain.js';
import type { CheckpointCheck } from './audit-checkpoint.js';
import type { AuditSigningKey, AuditVerifyingKey } from './audit-signing-key.js';

/**
 * One removal of the oldest audit entries (migration 0013, table audit_retention): entries
 * firstSeq…lastSeq were deleted on removedAt because they were recorded before horizon; the
 * signed checkpoint at lastSeq, kept, holds lastHash and anchors the rest of the chain.
 *
 * The record is signed with the audit signing key, like a checkpoint: someone with write access
 * to the database but not the key cannot make a removal look wider (and so hide a later deletion
 * behind it) or invent one.
 */
export const RETENTION_FORMAT = 'telesalud-audit-retention/1';

export interface RetentionRecord {
  firstSeq: number;
  lastSeq: number;
  lastHash: Buffer;
  /** ISO, millisecond precision. */
  horizon: string;
  removedAt: string;
  entriesRemoved: number;
  checkpointsRemoved: number;
  archiveSha256: string | null;
  keyId: string;
  signature: Buffer;
}

export type UnsignedRetention = Pick<RetentionRecord, 'firstSeq' | 'lastSeq' | 'lastHash' | 'horizon' | 'removedAt' | 'archiveSha256'>;

/** What is signed: FROZEN for format 1. */
export function retentionMessage(r: UnsignedRetention, keyId: string): Buffer {
  return Buffer.from(canonicalJson([RETENTION_FORMAT, r.firstSeq, r.lastSeq, r.lastHash.toString('hex'), r.horizon, r.removedAt, r.archiveSha256, keyId]), 'utf8');
}

export function signRetention(key: AuditSigningKey, r: UnsignedRetention): { keyId: string; signature: Buffer } {
  return { keyId: key.keyId, signature: sign(null, retentionMessage(r, key.keyId), key.privateKey) };
}

export function checkRetentionSignature(keys: ReadonlyMap<string, AuditVerifyingKey>, r: RetentionRecord): CheckpointCheck {
  const key = keys.get(r.keyId);
  if (!key) return { ok: false, reason: `signed by key ${JSON.stringify(r.keyId)}, which is not a trusted audit key` };
  let valid = false;
  try {
    valid = verify(null, retentionMessage(r, r.keyId), key.publicKey, r.signature);
  } catch {
    valid = false;
  }
  return valid ? { ok: true } : { ok: false, reason: `the signature does not match the record under key ${r.keyId}: it was altered` };
}

/** Databases migrated before 0013 have no retention table (and so no removal). */
export async function retentionTableExists(db: Kysely<Database> | Transaction<Database>): Promise<boolean> {
  const { rows } = await sql<{ t: string | null }>`select to_regclass('audit_retention')::text as t`.execute(db as Kysely<Database>);
  return rows[0]?.t != null;
}

/** Every removal, oldest first (a few rows: one per retention run that removed something). */
export async function readRetentionRecords(db: Kysely<Database> | Transaction<Database>): Promise<RetentionRecord[]> {
  if (!(await retentionTableExists(db))) return [];
  const rows = await (db as Kysely<Database>).selectFrom('audit_retention').selectAll().orderBy('first_seq').orderBy('id').execute();
  return rows.map((r) => ({
    firstSeq: Number(r.first_seq),
    lastSeq: Number(r.last_seq),
    lastHash: bytes(r.last_hash),
    horizon: new Date(r.horizon).toISOString(),
    removedAt: new Date(r.removed_at).toISOString(),
    entriesRemoved: Number(r.entries_removed),
    checkpointsRemoved: Number(r.checkpoints_removed),
    archiveSha256: r.archive_sha256,
    keyId: r.key_id,
    signature: bytes(r.signature),
  }));
}

/**
 * The shortest retention TELESALUD_AUDIT_RETENTION_DAYS and `audit truncate --before` accept: a
 * typo (days for years) must not wipe the trail an investigation needs. Hospitals usually keep
 * far longer (six years is the HIPAA documentation period, §164.316(b)(2)).
 */
export const MIN_AUDIT_RETENTION_DAYS = 365;
