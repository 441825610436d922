import { sql, type Kysely } from 'kysely';

/**
 * OAuth 2.0 clients of the FHIR API (client credentials grant) and the access tokens issued to
 * them. Both live in the database, not in a node's memory, so every node accepts every token
 * and revoking a client takes effect everywhere at once. Only SHA-256 digests of the client
 * secret and of each token are stored: a database dump can't be replayed.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table oauth_client (
      id text primary key,
      name text not null,
      secret_hash bytea not null check (octet_length(secret_hash) = 32),
      scopes text not null,
      status text not null default 'active' check (status in ('active', 'revoked')),
      created timestamptz not null default now(),
      revoked_at timestamptz
    )`.execute(db);

  await sql`
    create table oauth_access_token (
      token_hash bytea primary key check (octet_length(token_hash) = 32),
      client_id text not null references oauth_client (id),
      scopes text not null,
      issued timestamptz not null,
      expires timestamptz not null
    )`.execute(db);
  await sql`create index oauth_access_token_client on oauth_access_token (client_id)`.execute(db);
  await sql`create index oauth_access_token_expires on oauth_access_token (expires)`.execute(db);

  // Failed token requests per source address, shared by every node.
  await sql`
    create table oauth_token_throttle (
      source text primary key,
      failures integer not null,
      window_start timestamptz not null
    )`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('OAuth clients are never rolled back by migration; restore a backup instead');
}
