import { createHash } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { Database } from '../db/schema.js';

/**
 * The hash chain of the audit trail: entry n's hash is
 *
 *   hash(n) = SHA-256( hash(n-1) ‖ UTF-8( canonical(n) ) ),   hash(0) = 32 zero bytes
 *
 * where canonical(n) is the serialisation below. Anyone can recompute it from the rows: the
 * chain makes an edit, a deletion or an insertion in the middle visible; the signed
 * checkpoints (audit-checkpoint.ts) make a rewritten or truncated chain visible.
 *
 * FROZEN: `telesalud-audit/1` must serialise exactly like this for as long as rows written
 * with it exist (migration 0002 chains older rows with it too). A change of fields or
 * encoding is a new format with its own tag, and the verifier then needs to know which rows
 * use which format (a `format` column, default 1, would do).
 */
export const CHAIN_FORMAT = 'telesalud-audit/1';
export const HASH_BYTES = 32;
export const GENESIS_HASH: Buffer = Buffer.alloc(HASH_BYTES);

/** Exactly the stored values of one audit_event row that the chain covers (everything but `id`). */
export interface ChainedFields {
  seq: number;
  /** `Date.toISOString()`, millisecond precision: the value stored in `recorded`. */
  recorded: string;
  actor: string;
  action: string;
  resourceType: string | null;
  resourceId: string | null;
  patient: string | null;
  outcome: string;
  source: string | null;
  requestId: string | null;
  /** The JSON value stored in `detail` (not its text: jsonb does not keep key order or spacing). */
  detail: unknown;
}

/** An audit_event row as the database returns it: the columns the chain covers. */
export type StoredAuditFields = Pick<
  Selectable<Database['audit_event']>,
  'actor' | 'action' | 'resource_type' | 'resource_id' | 'patient' | 'outcome' | 'source' | 'request_id' | 'detail'
> & { recorded: Date | string };

/** The chained fields of a stored row at chain position `seq`. */
export function chainedFieldsOf(row: StoredAuditFields, seq: number): ChainedFields {
  return {
    seq,
    recorded: new Date(row.recorded).toISOString(),
    actor: row.actor,
    action: row.action,
    resourceType: row.resource_type,
    resourceId: row.resource_id,
    patient: row.patient,
    outcome: row.outcome,
    source: row.source,
    requestId: row.request_id,
    detail: row.detail ?? null,
  };
}

/**
 * A JSON array in fixed field order; inside `detail`, object keys sorted by code unit, no
 * whitespace, numbers and strings as JSON.stringify writes them. Sorting makes the text
 * independent of how the value went through jsonb and back.
 *
 * It is CHAIN_PREFIX + seq + canonicalBody(fields): the database appends entries with the
 * prefix and body computed here and only the position spliced in (audit_append_batch(), migration
 * 0023), so the format is defined in this file alone.
 */
export function canonicalEntry(fields: ChainedFields): string {
  return `${CHAIN_PREFIX}${fields.seq}${canonicalBody(fields)}`;
}

export const CHAIN_PREFIX = `[${JSON.stringify(CHAIN_FORMAT)},`;

/** Everything after the position: `,"<recorded>",…,<detail>]`. */
export function canonicalBody(fields: Omit<ChainedFields, 'seq'>): string {
  const rest = [
    fields.recorded,
    fields.actor,
    fields.action,
    fields.resourceType,
    fields.resourceId,
    fields.patient,
    fields.outcome,
    fields.source,
    fields.requestId,
    fields.detail ?? null,
  ];
  return `,${rest.map(canonicalJson).join(',')}]`;
}

export function chainHash(prevHash: Uint8Array, fields: ChainedFields): Buffer {
  return createHash('sha256').update(prevHash).update(canonicalEntry(fields), 'utf8').digest();
}

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new Error('audit entries hold finite numbers only');
    // undefined and functions never reach here: values are JSON-normalised before they are chained.
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

// NUL is refused by PostgreSQL text and jsonb, an unpaired surrogate by jsonb: either would make
// the insert (and with it a whole group-commit batch of audited reads) fail. They are replaced
// before the entry is hashed, so the hash covers exactly what is stored.
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, 'g');

export function storableText(value: string): string {
  return UNSTORABLE.test(value) ? value.replace(UNSTORABLE_ALL, '\ufffd') : value;
}

/** `detail` as it will come back from jsonb: plain JSON values only, text (keys too) made storable. */
export function storableDetail(detail: unknown): unknown {
  if (detail === undefined || detail === null) return null;
  return storableJson(JSON.parse(JSON.stringify(detail)) as unknown);
}

function storableJson(value: unknown): unknown {
  if (typeof value === 'string') return storableText(value);
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(storableJson);
  // No prototype: a `__proto__` key in the detail stays a key.
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of Object.entries(value)) out[storableText(k)] = storableJson(v);
  return out;
}
