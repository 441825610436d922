import { sql, type Kysely } from 'kysely';

/**
 * Outgoing e-mail waits here, written in the same transaction as what causes it (an invitation, a
 * booking), so a rolled-back action sends nothing and a committed one is sent even if the node
 * that made it stops. What the message says (address, link, time) is sealed with the master key
 * like a document, and erased once the message is sent or given up on.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table notification_outbox (
      id uuid primary key,
      template text not null,
      status text not null check (status in ('pending', 'sending', 'sent', 'failed')),
      attempts integer not null default 0,
      next_attempt_at timestamptz not null,
      lease_until timestamptz,
      created timestamptz not null,
      sent_at timestamptz,
      last_error text,
      kek_id text,
      wrapped_key bytea,
      nonce bytea,
      ciphertext bytea,
      tag bytea
    )`.execute(db);
  // What a delivering node claims: due pending messages, oldest due first.
  await sql`create index notification_outbox_due on notification_outbox (next_attempt_at) where status in ('pending', 'sending')`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table if exists notification_outbox`.execute(db);
}
