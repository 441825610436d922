import { sql, type Kysely } from 'kysely';

/**
 * The part of each day's consultation traffic that went through a TURN relay, as the browsers
 * report their selected candidate pair (src/consult/signaling-protocol.ts, `stats`). Days before
 * this migration read as nothing relayed: the browsers did not say.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table consult_traffic_daily add column relayed_sent_bytes bigint not null default 0, add column relayed_received_bytes bigint not null default 0`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table consult_traffic_daily drop column if exists relayed_received_bytes, drop column if exists relayed_sent_bytes`.execute(db);
}
