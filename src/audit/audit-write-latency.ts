import type { Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import type { AuditEntry, AuditLog } from './audit-log.js';

/**
 * `group-commit`: from AuditLog.record() to the entry committed — what an audited read waits
 * for, queueing behind the appends in flight included. `in-transaction`: AuditLog.recordIn(), the
 * append inside a write's own transaction (the chain lock wait and the insert).
 */
export type AuditWritePath = 'group-commit' | 'in-transaction';

export type AuditWriteObserver = (path: AuditWritePath, seconds: number, ok: boolean) => void;

/**
 * Times every audit write of one AuditLog from the outside: its two public entry points are
 * wrapped on the instance, so the append path (audit-log.ts) stays as its owners tune it, and
 * the figure is the one callers feel. Returns a function that puts the originals back.
 */
export function observeAuditWrites(audit: AuditLog, observe: AuditWriteObserver): () => void {
  const record = audit.record;
  const recordIn = audit.recordIn;
  const timed = async <T>(path: AuditWritePath, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      const result = await work();
      observe(path, (performance.now() - started) / 1000, true);
      return result;
    } catch (err) {
      observe(path, (performance.now() - started) / 1000, false);
      throw err;
    }
  };
  audit.record = (entry: AuditEntry) => timed('group-commit', () => record.call(audit, entry));
  audit.recordIn = (tx: Transaction<Database>, entries: AuditEntry[]) => (entries.length === 0 ? recordIn.call(audit, tx, entries) : timed('in-transaction', () => recordIn.call(audit, tx, entries)));
  return () => {
    audit.record = record;
    audit.recordIn = recordIn;
  };
}
