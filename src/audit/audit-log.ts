import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import type { Logger } from '../logging/logger.js';

export type AuditAction = 'read' | 'vread' | 'search' | 'history' | 'create' | 'update' | 'delete' | 'download' | 'upload' | 'seed';

export interface AuditEntry {
  actor: string;
  action: AuditAction;
  resourceType?: string;
  resourceId?: string;
  /** `Patient/<id>` whose record was touched, so a patient can see who accessed it. */
  patient?: string;
  outcome: 'success' | 'denied' | 'failed';
  source?: string;
  requestId?: string;
  detail?: Record<string, unknown>;
}

function row(entry: AuditEntry) {
  return {
    actor: entry.actor,
    action: entry.action,
    resource_type: entry.resourceType ?? null,
    resource_id: entry.resourceId ?? null,
    patient: entry.patient ?? null,
    outcome: entry.outcome,
    source: entry.source ?? null,
    request_id: entry.requestId ?? null,
    detail: entry.detail ? JSON.stringify(entry.detail) : null,
  };
}

/**
 * Every access to health data is recorded before the data leaves. Writes record inside
 * their own transaction (durable with the change); reads go through a group commit: entries that arrive while one
 * insert is in flight are written together by the next, and each caller waits until its
 * entry is committed. One round trip serves many concurrent reads.
 */
export class AuditLog {
  private pending: { entry: AuditEntry; done: (err?: unknown) => void }[] = [];
  private flushing: Promise<void> | undefined;

  constructor(private readonly db: Kysely<Database>, private readonly logger: Logger) {}

  async recordIn(tx: Transaction<Database>, entries: AuditEntry[]): Promise<void> {
    if (entries.length > 0) await tx.insertInto('audit_event').values(entries.map(row)).execute();
  }

  record(entry: AuditEntry): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ entry, done: (err) => (err ? reject(err) : resolve()) });
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, 500);
        try {
          await this.db.transaction().execute(async (tx) => {
            // Read audits wait for the database to hold them, not for its disk flush: a node crash
            // loses none; only a database server crash could lose the last moment of read audits.
            await sql`set local synchronous_commit = off`.execute(tx);
            await tx.insertInto('audit_event').values(batch.map((b) => row(b.entry))).execute();
          });
          for (const b of batch) b.done();
        } catch (err) {
          // An access that can't be audited does not happen: the callers fail.
          this.logger.error({ err: { message: (err as Error).message }, entries: batch.length }, 'audit write failed');
          for (const b of batch) b.done(err);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }

  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }
}
