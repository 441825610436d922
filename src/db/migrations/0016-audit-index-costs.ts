import { sql, type Kysely } from 'kysely';

/**
 * Every audited access pays for each index on audit_event, so the trail keeps only the
 * indexes its readers need, in their cheapest form:
 *
 * - A search is one entry, however many patients its answer showed: those patients are listed in
 *   `detail.patients` (src/audit/audit-log.ts), and this GIN index finds the entries that name a
 *   patient there, for "who accessed my record" and the admins' audit search by patient. Partial:
 *   only entries that list patients pay for it.
 * - By patient: only entries about a patient are indexed (security events name none).
 * - By time: entries are appended in time order, so a BRIN index (a few pages for millions of
 *   entries, almost nothing to maintain) finds a time window as well as the B-tree it replaces.
 *
 * The hash chain does not change: `detail` was always covered by it.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index if not exists audit_event_patients on audit_event using gin ((detail -> 'patients')) where detail ? 'patients'`.execute(db);
  await sql`drop index if exists audit_event_patient`.execute(db);
  await sql`create index if not exists audit_event_patient_recorded on audit_event (patient, recorded) where patient is not null`.execute(db);
  await sql`drop index if exists audit_event_recorded`.execute(db);
  await sql`create index if not exists audit_event_recorded_brin on audit_event using brin (recorded)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists audit_event_recorded_brin`.execute(db);
  await sql`create index if not exists audit_event_recorded on audit_event (recorded)`.execute(db);
  await sql`drop index if exists audit_event_patient_recorded`.execute(db);
  await sql`create index if not exists audit_event_patient on audit_event (patient, recorded)`.execute(db);
  await sql`drop index if exists audit_event_patients`.execute(db);
}
