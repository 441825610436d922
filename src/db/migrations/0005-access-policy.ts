import { sql, type Kysely } from 'kysely';

/**
 * What the access policy needs beyond the record itself: explicit care assignments (a
 * clinician put in charge of a patient by an admin or a colleague, or by creating the patient)
 * and break-the-glass grants (time-limited emergency access, with the reason stated). Both live
 * in the database, so every node of a farm decides alike. Care relationships through
 * appointments and encounters are read from the record's own indexed columns
 * (sp_practitioner, GIN), so they need no table of their own.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table care_assignment (
      practitioner text not null,
      patient text not null,
      assigned_by text not null,
      reason text not null check (reason in ('created-patient', 'assigned')),
      created timestamptz not null default now(),
      primary key (practitioner, patient)
    )`.execute(db);
  await sql`create index care_assignment_patient on care_assignment (patient)`.execute(db);

  await sql`
    create table break_glass_grant (
      id uuid primary key,
      practitioner text not null,
      patient text not null,
      account_id uuid not null references account (id),
      reason text not null,
      granted timestamptz not null,
      expires timestamptz not null,
      check (expires > granted)
    )`.execute(db);
  // Each clinician request looks up that clinician's live grants.
  await sql`create index break_glass_grant_live on break_glass_grant (practitioner, expires)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table break_glass_grant`.execute(db);
  await sql`drop table care_assignment`.execute(db);
}
