import type { ColumnType, Generated, Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/**
 * The audit tables as migration 0002 leaves them. (src/db/schema.ts still describes
 * audit_event as 0001 made it; until it takes these columns, the audit code views the
 * database through this type.)
 */
export interface AuditTables {
  audit_event: {
    id: Generated<number>;
    /** Position in the hash chain: 1, 2, 3… with no gaps. */
    seq: number;
    recorded: ColumnType<Date, string, never>;
    actor: string;
    action: string;
    resource_type: string | null;
    resource_id: string | null;
    patient: string | null;
    outcome: string;
    source: string | null;
    request_id: string | null;
    detail: unknown;
    prev_hash: Uint8Array;
    hash: Uint8Array;
  };
  audit_checkpoint: {
    seq: number;
    hash: Uint8Array;
    signed_at: ColumnType<Date, string, never>;
    key_id: string;
    signature: Uint8Array;
  };
}

export type AuditDatabase = Omit<Database, 'audit_event'> & AuditTables;

export function auditDb(db: Kysely<Database>): Kysely<AuditDatabase> {
  return db as unknown as Kysely<AuditDatabase>;
}

/** pg gives bytea as Buffer, PGlite as Uint8Array. */
export function bytes(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}
