import { sql, type Kysely } from 'kysely';

/**
 * The account lifecycle: invitations (token hashed), the admin's authentication policy, passkeys
 * and their WebAuthn challenges, a TOTP secret waiting for its first code, and sessions that may
 * only change a password or enrol a second factor. All in the database, so any node serves any
 * step and a policy change reaches every node.
 */
export async function up(db: Kysely<any>): Promise<void> {
  // Enrolment is two steps (show the secret, then prove it with a code): the secret waits here, sealed.
  await sql`alter table account add column totp_pending_sealed text`.execute(db);

  // null: a full session; otherwise the only thing it may do (see sessions/session-restriction.ts).
  await sql`alter table session add column restriction text check (restriction in ('password-expired', 'mfa-enrolment'))`.execute(db);

  await sql`
    create table auth_setting (
      name text primary key,
      value jsonb not null,
      updated timestamptz not null,
      updated_by text not null
    )`.execute(db);

  await sql`
    create table invitation (
      id uuid primary key,
      token_hash bytea not null unique check (octet_length(token_hash) = 32),
      email text not null,
      role text not null check (role in ('patient', 'clinician', 'admin')),
      display_name text,
      fhir_ref text,
      invited_by text not null,
      created timestamptz not null,
      expires timestamptz not null,
      used_at timestamptz,
      account_id uuid references account (id)
    )`.execute(db);

  await sql`
    create table passkey_credential (
      id text primary key,
      account_id uuid not null references account (id),
      public_key bytea not null,
      counter bigint not null,
      transports text not null default '',
      label text not null,
      created timestamptz not null,
      last_used timestamptz
    )`.execute(db);
  await sql`create index passkey_credential_account on passkey_credential (account_id)`.execute(db);

  // Single use: a step claims its challenge by deleting it.
  await sql`
    create table webauthn_challenge (
      challenge text primary key,
      account_id uuid not null references account (id),
      purpose text not null check (purpose in ('register', 'sign-in')),
      expires timestamptz not null
    )`.execute(db);
  await sql`create index webauthn_challenge_expires on webauthn_challenge (expires)`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('accounts are never rolled back by migration; restore a backup instead');
}
