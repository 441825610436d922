import type { Kysely } from 'kysely';
import { recordOperatorEvent } from '../audit/operator-event.js';
import type { Database } from '../db/schema.js';

/**
 * A backup reads every record: it is an audit event (`export` of the whole database), with who
 * ran it — the operating-system account, which is the person behind `system:backup` — and
 * how (`cli` on a stopped embedded database or PostgreSQL, `admin-socket` through the running
 * node). Counts only, never content.
 */
export interface BackupEvent {
  outcome: 'success' | 'failed';
  via: 'cli' | 'admin-socket';
  detail: Record<string, unknown>;
}

/** Appended and committed before returning. */
export async function recordBackupEvent(db: Kysely<Database>, event: BackupEvent): Promise<void> {
  await recordOperatorEvent(db, {
    actor: 'system:backup',
    action: 'export',
    outcome: event.outcome,
    source: event.via,
    requestId: 'backup',
    detail: { scope: 'whole-database', ...event.detail },
  });
}
