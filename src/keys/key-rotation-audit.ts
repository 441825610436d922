import os from 'node:os';
import type { Kysely } from 'kysely';
import { pino } from 'pino';
import { AuditLog, type AuditEntry } from '../audit/audit-log.js';
import type { Database } from '../db/schema.js';

/**
 * Key rotation and retirement are audit events: who started a rotation, how it finished, which
 * keys were retired. Key ids only — never key material. The commands run outside the service,
 * so the entries are appended here, inside a transaction of their own (committed before the
 * command goes on); they join the one chain and the next checkpoint a node signs covers them.
 */
export interface KeyEvent {
  action: Extract<AuditEntry['action'], 'key-rotation-started' | 'key-rotation-finished' | 'key-retired' | 'audit-key-rotated'>;
  outcome: AuditEntry['outcome'];
  detail: Record<string, unknown>;
}

const ACTORS: Record<KeyEvent['action'], string> = {
  'key-rotation-started': 'system:keys-rotate',
  'key-rotation-finished': 'system:keys-rotate',
  'key-retired': 'system:keys-retire',
  'audit-key-rotated': 'system:keys-rotate-audit',
};

// The appender is only a carrier here: the service's nodes sign the chain, not the command.
const quiet = pino({ level: 'silent' });

function operatingSystemUser(): string | undefined {
  try {
    return os.userInfo().username;
  } catch {
    return undefined;
  }
}

function entryOf(event: KeyEvent): AuditEntry {
  const osUser = operatingSystemUser();
  return {
    actor: ACTORS[event.action],
    action: event.action,
    outcome: event.outcome,
    source: 'cli',
    requestId: event.action,
    // Which operating-system account ran the command on which host: the person behind `system:`.
    detail: { ...event.detail, ...(osUser ? { osUser } : {}), host: os.hostname() },
  };
}

/** Appends the event and commits it before returning: if it cannot be recorded, the caller stops. */
export async function recordKeyEvent(db: Kysely<Database>, event: KeyEvent): Promise<void> {
  const log = new AuditLog(db, quiet);
  await db.transaction().execute((tx) => log.recordIn(tx, [entryOf(event)]));
}

