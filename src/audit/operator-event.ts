import os from 'node:os';
import type { Kysely } from 'kysely';
import { pino } from 'pino';
import type { Database } from '../db/schema.js';
import { AuditLog, type AuditEntry } from './audit-log.js';

// The appender is only a carrier here: the service's nodes sign the chain, not the command.
const quiet = pino({ level: 'silent' });

/**
 * An operator's command (a backup, a key rotation) is an audit event with a `system:` actor;
 * the person behind it is the operating-system account that ran it, on which host. Appended in
 * a transaction of its own and committed before returning: if it cannot be recorded, the
 * command stops. It joins the one chain, and the next checkpoint a node signs covers it.
 */
export async function recordOperatorEvent(db: Kysely<Database>, entry: AuditEntry): Promise<void> {
  const osUser = operatingSystemUser();
  const log = new AuditLog(db, quiet);
  const detail = { ...entry.detail, ...(osUser ? { osUser } : {}), host: os.hostname() };
  await db.transaction().execute((tx) => log.recordIn(tx, [{ ...entry, detail }]));
}

function operatingSystemUser(): string | undefined {
  try {
    return os.userInfo().username;
  } catch {
    return undefined;
  }
}
