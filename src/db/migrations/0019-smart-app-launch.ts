import { sql, type Kysely } from 'kysely';

/**
 * SMART App Launch (authorization code + PKCE): apps that act for a signed-in user.
 *
 * - A client is `confidential` (has a secret: system clients, server-side apps) or `public`
 *   (a browser or phone app: no secret, PKCE alone binds the code to it), and lists the exact
 *   redirect URIs it may send codes to.
 * - Authorization codes live in the database, so the node that redeems one need not be the
 *   node that issued it. Only their SHA-256 is stored; a code is marked redeemed, not deleted,
 *   so a second use is recognised and the tokens of the first are revoked (RFC 6749 §4.1.2).
 * - An access token issued to an app names the account it acts for (whose access policy then
 *   applies), the patient of its launch context, and the code it came from.
 * - offline_access gives a refresh token (oauth_refresh_token), rotated on every use.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table oauth_client add column client_type text not null default 'confidential' check (client_type in ('confidential', 'public'))`.execute(db);
  await sql`alter table oauth_client add column redirect_uris text[] not null default '{}'`.execute(db);
  await sql`alter table oauth_client alter column secret_hash drop not null`.execute(db);
  await sql`alter table oauth_client add constraint oauth_client_secret_by_type check ((client_type = 'confidential') = (secret_hash is not null))`.execute(db);

  await sql`
    create table oauth_authorization_code (
      code_hash bytea primary key check (octet_length(code_hash) = 32),
      client_id text not null references oauth_client (id) on delete cascade,
      account_id uuid not null references account (id) on delete cascade,
      redirect_uri text not null,
      scopes text not null,
      code_challenge text not null,
      patient text,
      issued timestamptz not null,
      expires timestamptz not null,
      redeemed timestamptz
    )`.execute(db);
  await sql`create index oauth_authorization_code_expires on oauth_authorization_code (expires)`.execute(db);

  // offline_access: refresh tokens, rotated on every use. A family is every token descended from
  // one code; a refresh token used twice (stolen, or replayed) ends its whole family.
  await sql`
    create table oauth_refresh_token (
      token_hash bytea primary key check (octet_length(token_hash) = 32),
      family bytea not null,
      client_id text not null references oauth_client (id) on delete cascade,
      account_id uuid not null references account (id) on delete cascade,
      scopes text not null,
      patient text,
      issued timestamptz not null,
      expires timestamptz not null,
      used timestamptz
    )`.execute(db);
  await sql`create index oauth_refresh_token_family on oauth_refresh_token (family)`.execute(db);
  await sql`create index oauth_refresh_token_expires on oauth_refresh_token (expires)`.execute(db);

  await sql`alter table oauth_access_token add column account_id uuid references account (id) on delete cascade`.execute(db);
  await sql`alter table oauth_access_token add column patient text`.execute(db);
  await sql`alter table oauth_access_token add column grant_hash bytea`.execute(db);
  await sql`create index oauth_access_token_grant on oauth_access_token (grant_hash) where grant_hash is not null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`delete from oauth_access_token where account_id is not null`.execute(db);
  await sql`alter table oauth_access_token drop column grant_hash`.execute(db);
  await sql`alter table oauth_access_token drop column patient`.execute(db);
  await sql`alter table oauth_access_token drop column account_id`.execute(db);
  await sql`drop table oauth_refresh_token`.execute(db);
  await sql`drop table oauth_authorization_code`.execute(db);
  await sql`delete from oauth_client where client_type = 'public'`.execute(db);
  await sql`alter table oauth_client drop constraint oauth_client_secret_by_type`.execute(db);
  await sql`alter table oauth_client alter column secret_hash set not null`.execute(db);
  await sql`alter table oauth_client drop column redirect_uris`.execute(db);
  await sql`alter table oauth_client drop column client_type`.execute(db);
}
