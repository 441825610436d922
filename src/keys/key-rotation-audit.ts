import type { Kysely } from 'kysely';
import type { AuditEntry } from '../audit/audit-log.js';
import { recordOperatorEvent } from '../audit/operator-event.js';
import type { Database } from '../db/schema.js';

/**
 * Key rotation and retirement are audit events: who started a rotation, how it finished, which
 * keys were retired. Key ids only — never key material (recordOperatorEvent adds who ran it).
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

/** Appends the event and commits it before returning: if it cannot be recorded, the caller stops. */
export async function recordKeyEvent(db: Kysely<Database>, event: KeyEvent): Promise<void> {
  await recordOperatorEvent(db, { actor: ACTORS[event.action], action: event.action, outcome: event.outcome, source: 'cli', requestId: event.action, detail: event.detail });
}
