import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { PRIVACY_NOTICE_VERSION } from './privacy-notice.js';

export interface ConsentRecord {
  noticeVersion: string;
  acceptedAt: string;
}

/**
 * Whether this patient accepted telehealth under this version of the privacy notice. The
 * consultation's join check calls it (src/consult/join-rights.ts) so that a patient who has not
 * consented can not be in a call, whatever the browser shows.
 */
export async function hasTelehealthConsent(db: Kysely<Database>, patientRef: string, version: string = PRIVACY_NOTICE_VERSION): Promise<boolean> {
  const row = await db.selectFrom('telehealth_consent').select('patient_ref').where('patient_ref', '=', patientRef).where('notice_version', '=', version).executeTakeFirst();
  return row !== undefined;
}

/** The patient's consent to this version, if given. */
export async function consentTo(db: Kysely<Database>, patientRef: string, version: string = PRIVACY_NOTICE_VERSION): Promise<ConsentRecord | undefined> {
  const row = await db.selectFrom('telehealth_consent').select(['notice_version', 'accepted_at']).where('patient_ref', '=', patientRef).where('notice_version', '=', version).executeTakeFirst();
  return row ? { noticeVersion: row.notice_version, acceptedAt: new Date(row.accepted_at).toISOString() } : undefined;
}

/**
 * Records the consent; given twice (two tabs, a retry), the first acceptance stands and is
 * answered, so the record says when the patient first agreed. `created` tells which happened.
 */
export async function recordConsent(
  db: Kysely<Database>,
  input: { patientRef: string; accountId: string; source: string; version?: string },
  now = new Date(),
): Promise<ConsentRecord & { created: boolean }> {
  const version = input.version ?? PRIVACY_NOTICE_VERSION;
  const inserted = await db
    .insertInto('telehealth_consent')
    .values({ patient_ref: input.patientRef, notice_version: version, accepted_at: now, account_id: input.accountId, source: input.source })
    .onConflict((oc) => oc.columns(['patient_ref', 'notice_version']).doNothing())
    .returning(['notice_version', 'accepted_at'])
    .executeTakeFirst();
  if (inserted) return { noticeVersion: inserted.notice_version, acceptedAt: new Date(inserted.accepted_at).toISOString(), created: true };
  const existing = await consentTo(db, input.patientRef, version);
  if (!existing) throw new Error('telehealth consent vanished between insert and read');
  return { ...existing, created: false };
}
