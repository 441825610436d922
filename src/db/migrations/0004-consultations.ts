import { sql, type Kysely } from 'kysely';

/**
 * What of video consultations outlives a node: guest links, the host's invitations of a second
 * clinician, and the daily traffic total. Rooms themselves live only while in use (in memory).
 */
export async function up(db: Kysely<any>): Promise<void> {
  // Only the SHA-256 of a guest token is stored: a database dump does not let anyone in.
  await sql`
    create table consult_guest_link (
      id uuid primary key,
      token_hash bytea not null unique,
      appointment_id text not null,
      label text not null,
      created_by text not null,
      created timestamptz not null,
      expires timestamptz not null,
      used_at timestamptz
    )`.execute(db);
  await sql`create index consult_guest_link_appointment on consult_guest_link (appointment_id)`.execute(db);

  await sql`
    create table consult_invitation (
      appointment_id text not null,
      practitioner_ref text not null,
      invited_by text not null,
      created timestamptz not null,
      primary key (appointment_id, practitioner_ref)
    )`.execute(db);

  // One row per UTC day; every node adds its share (insert … on conflict do update).
  await sql`
    create table consult_traffic_daily (
      day date primary key,
      sent_bytes bigint not null default 0,
      received_bytes bigint not null default 0
    )`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table if exists consult_traffic_daily`.execute(db);
  await sql`drop table if exists consult_invitation`.execute(db);
  await sql`drop table if exists consult_guest_link`.execute(db);
}
