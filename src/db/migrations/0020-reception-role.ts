import { sql, type Kysely } from 'kysely';

/**
 * Reception (front desk) becomes an account role, for accounts and staff invitations alike; and a
 * session's `reauthenticated_at` now means what its name says — the last re-authentication for a
 * sensitive action (auth/access/reauthenticate.ts), null until there is one. Signing in is not a
 * re-authentication: sessions that exist now start without one.
 */
export async function up(db: Kysely<any>): Promise<void> {
  for (const table of ['account', 'invitation']) {
    await sql`alter table ${sql.table(table)} drop constraint if exists ${sql.id(`${table}_role_check`)}`.execute(db);
    await sql`alter table ${sql.table(table)} add constraint ${sql.id(`${table}_role_check`)} check (role in ('patient', 'clinician', 'reception', 'admin'))`.execute(db);
  }
  await sql`alter table session alter column reauthenticated_at drop not null`.execute(db);
  await sql`update session set reauthenticated_at = null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  const receptionists = await sql<{ n: number }>`select count(*)::int as n from account where role = 'reception'`.execute(db);
  if ((receptionists.rows[0]?.n ?? 0) > 0) throw new Error('reception accounts exist: disable and re-role them before rolling back 0020');
  await sql`delete from invitation where role = 'reception'`.execute(db);
  for (const table of ['account', 'invitation']) {
    await sql`alter table ${sql.table(table)} drop constraint if exists ${sql.id(`${table}_role_check`)}`.execute(db);
    await sql`alter table ${sql.table(table)} add constraint ${sql.id(`${table}_role_check`)} check (role in ('patient', 'clinician', 'admin'))`.execute(db);
  }
  await sql`update session set reauthenticated_at = created where reauthenticated_at is null`.execute(db);
  await sql`alter table session alter column reauthenticated_at set not null`.execute(db);
}
