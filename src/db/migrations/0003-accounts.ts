import { sql, type Kysely } from 'kysely';

/**
 * Accounts, their credentials and their sessions. Everything a sign-in or a request needs
 * lives here (not in a node's memory), so any node can serve any user.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table account (
      id uuid primary key,
      email text not null unique,
      role text not null check (role in ('patient', 'clinician', 'admin')),
      display_name text,
      fhir_ref text,
      status text not null default 'active' check (status in ('active', 'disabled')),
      password_hash text,
      password_changed_at timestamptz,
      totp_secret_sealed text,
      totp_last_step bigint,
      failed_sign_ins integer not null default 0,
      last_failed_at timestamptz,
      locked_until timestamptz,
      created timestamptz not null default now()
    )`.execute(db);

  await sql`
    create table password_history (
      account_id uuid not null references account (id),
      hash text not null,
      changed_at timestamptz not null
    )`.execute(db);
  await sql`create index password_history_account on password_history (account_id, changed_at desc)`.execute(db);

  await sql`
    create table recovery_code (
      account_id uuid not null references account (id),
      position integer not null,
      hash text not null,
      used_at timestamptz,
      primary key (account_id, position)
    )`.execute(db);

  // The cookie holds a random token; only its SHA-256 is stored, so a database dump can't be replayed.
  await sql`
    create table session (
      token_hash bytea primary key,
      account_id uuid not null references account (id),
      csrf_token text not null,
      created timestamptz not null,
      last_seen timestamptz not null,
      idle_timeout_seconds integer not null,
      expires timestamptz not null,
      reauthenticated_at timestamptz not null,
      source text,
      user_agent text
    )`.execute(db);
  await sql`create index session_account on session (account_id)`.execute(db);

  // Failed sign-ins per source address, shared by every node.
  await sql`
    create table sign_in_throttle (
      source text primary key,
      failures integer not null,
      window_start timestamptz not null
    )`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('accounts are never rolled back by migration; restore a backup instead');
}
