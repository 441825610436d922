import { sql, type Kysely } from 'kysely';

/**
 * Passkeys re-authenticate a signed-in user for a sensitive action (break-the-glass, an export, a
 * change of second factors): such a challenge names the action in its purpose and the session it
 * was issued to, so an assertion for one action or one session serves no other.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table webauthn_challenge drop constraint if exists webauthn_challenge_purpose_check`.execute(db);
  await sql`
    alter table webauthn_challenge add constraint webauthn_challenge_purpose_check
      check (purpose in ('register', 'sign-in', 'reauth:break-glass', 'reauth:export', 'reauth:mfa-change'))`.execute(db);
  // Short public id of the session (session-store.ts sessionId); null for register and sign-in challenges.
  await sql`alter table webauthn_challenge add column session_id text`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`delete from webauthn_challenge where purpose like 'reauth:%'`.execute(db);
  await sql`alter table webauthn_challenge drop column session_id`.execute(db);
  await sql`alter table webauthn_challenge drop constraint if exists webauthn_challenge_purpose_check`.execute(db);
  await sql`alter table webauthn_challenge add constraint webauthn_challenge_purpose_check check (purpose in ('register', 'sign-in'))`.execute(db);
}
