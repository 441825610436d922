import { sql, type Kysely } from 'kysely';

/**
 * The clinical record. One table per FHIR resource type holds the current version as
 * JSON plus one indexed column per search parameter (arrays of tokens and references
 * with GIN, dates and sort keys with btree); string parameters are matched by prefix
 * through search_string. Every version ever written stays in resource_history.
 *
 * Frozen at this version: later changes to the search parameters come as new migrations.
 */
const RESOURCE_TABLES: Record<string, string> = {
  patient: 'identifier:array name:string family:string given:string gender:array active:array telecom:array email:array phone:array birthdate:date language:array general_practitioner:array organization:array',
  practitioner: 'identifier:array name:string family:string given:string gender:array active:array telecom:array email:array phone:array',
  organization: 'identifier:array name:string active:array',
  location: 'identifier:array name:string status:array organization:array',
  schedule: 'identifier:array actor:array active:array service_type:array',
  slot: 'identifier:array schedule:array start:date status:array service_type:array',
  appointment: 'identifier:array date:date status:array patient:array practitioner:array location:array actor:array slot:array service_type:array appointment_type:array',
  encounter: 'identifier:array patient:array subject:array date:date status:array class:array type:array appointment:array practitioner:array',
  observation: 'identifier:array patient:array subject:array code:array category:array status:array date:date encounter:array',
  condition: 'identifier:array patient:array subject:array code:array category:array clinical_status:array recorded_date:date onset_date:date encounter:array',
  allergy_intolerance: 'identifier:array patient:array code:array clinical_status:array criticality:array date:date',
  medication_statement: 'identifier:array patient:array subject:array code:array status:array effective:date context:array',
  medication_request: 'identifier:array patient:array subject:array code:array status:array intent:array authoredon:date requester:array encounter:array',
  composition: 'identifier:array patient:array subject:array encounter:array status:array type:array date:date author:array related_ref:array',
  document_reference: 'identifier:array patient:array subject:array type:array category:array status:array date:date encounter:array',
};

const COLUMN_TYPES = { array: 'text[]', date: 'timestamptz', string: 'text' } as const;

export async function up(db: Kysely<any>): Promise<void> {
  // Lets an exclusion constraint combine "same participant" (=) with "overlapping time" (&&).
  await sql`create extension if not exists btree_gist`.execute(db);

  for (const [table, spec] of Object.entries(RESOURCE_TABLES)) {
    const columns = spec.split(' ').map((entry) => {
      const [name, kind] = entry.split(':') as [string, keyof typeof COLUMN_TYPES];
      return { name: `sp_${name}`, kind };
    });
    const columnDdl = columns.map((c) => `${c.name} ${COLUMN_TYPES[c.kind]}`).join(',\n  ');
    await sql
      .raw(
        `create table ${table} (
  id uuid primary key,
  version_id integer not null,
  last_updated timestamptz not null,
  deleted boolean not null default false,
  content jsonb not null,
  compartments text[] not null default '{}',
  ${columnDdl}
)`,
      )
      .execute(db);
    await sql.raw(`create index ${table}_last_updated on ${table} (last_updated)`).execute(db);
    await sql.raw(`create index ${table}_compartments on ${table} using gin (compartments)`).execute(db);
    for (const c of columns) {
      const method = c.kind === 'array' ? 'gin' : 'btree';
      await sql.raw(`create index ${table}_${c.name} on ${table} using ${method} (${c.name})`).execute(db);
    }
  }

  await sql`
    create table resource_history (
      resource_type text not null,
      id uuid not null,
      version_id integer not null,
      last_updated timestamptz not null,
      deleted boolean not null default false,
      content jsonb not null,
      primary key (resource_type, id, version_id)
    )`.execute(db);

  // Normalised (lower case, no accents) values of string search parameters, matched by prefix.
  await sql`
    create table search_string (
      resource_type text not null,
      resource_id uuid not null,
      code text not null,
      value text not null
    )`.execute(db);
  await sql`create index search_string_lookup on search_string (resource_type, code, value text_pattern_ops)`.execute(db);
  await sql`create index search_string_resource on search_string (resource_id)`.execute(db);

  // No double booking, enforced by the database: while an appointment is active, each of its
  // practitioners and patients holds its time range, and two holds of one participant never overlap.
  await sql`
    create table appointment_booking (
      appointment_id uuid not null references appointment (id),
      participant text not null,
      during tstzrange not null,
      primary key (appointment_id, participant),
      constraint appointment_booking_no_overlap exclude using gist (participant with =, during with &&)
    )`.execute(db);

  // Who touched which part of the record, when, from where, with what outcome. Ids only.
  await sql`
    create table audit_event (
      id bigserial primary key,
      recorded timestamptz not null default now(),
      actor text not null,
      action text not null,
      resource_type text,
      resource_id text,
      patient text,
      outcome text not null,
      source text,
      request_id text,
      detail jsonb
    )`.execute(db);
  await sql`create index audit_event_recorded on audit_event (recorded)`.execute(db);
  await sql`create index audit_event_patient on audit_event (patient, recorded)`.execute(db);
  await sql`create index audit_event_actor on audit_event (actor, recorded)`.execute(db);

  // Attachment bytes, sealed with AES-256-GCM under a per-document key wrapped by a key-encryption key.
  await sql`
    create table document_blob (
      id uuid primary key,
      content_type text not null,
      size integer not null,
      sha256 text not null,
      kek_id text not null,
      wrapped_key bytea not null,
      nonce bytea not null,
      tag bytea not null,
      ciphertext bytea not null,
      created timestamptz not null default now()
    )`.execute(db);
  await sql`create index document_blob_kek on document_blob (kek_id)`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('the clinical record is never rolled back by migration; restore a backup instead');
}
