import { sql, type Kysely } from 'kysely';

/**
 * Pending invitations can be revoked: the link then answers exactly like an expired one. The row
 * stays (who revoked it and when), so the audit entry and the invitation still tell the same story.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table invitation add column revoked_at timestamptz`.execute(db);
  await sql`alter table invitation add column revoked_by text`.execute(db);
  // The pending list (per inviter, newest first) reads only rows still open.
  await sql`create index invitation_pending on invitation (invited_by, created) where used_at is null and revoked_at is null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists invitation_pending`.execute(db);
  await sql`alter table invitation drop column revoked_by`.execute(db);
  await sql`alter table invitation drop column revoked_at`.execute(db);
}
