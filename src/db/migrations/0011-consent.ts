import { sql, type Kysely } from 'kysely';

/**
 * Telehealth consent: a patient accepts the privacy notice of a given version before their first
 * consultation. One row per patient and version, never updated or deleted by the service: a new
 * notice version asks again and the history stays, so a reviewer can tell what was accepted when.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table telehealth_consent (
      patient_ref text not null,
      notice_version text not null,
      accepted_at timestamptz not null,
      account_id uuid not null references account (id),
      -- The network address it came from, as in the audit entry that records it.
      source text not null,
      primary key (patient_ref, notice_version)
    )`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table telehealth_consent`.execute(db);
}
