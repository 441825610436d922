import { sql, type Kysely } from 'kysely';

/**
 * String search reads the matched resource ids from the index alone (an index-only scan),
 * instead of visiting one heap page of search_string per match.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index search_string_match on search_string (resource_type, code, value text_pattern_ops) include (resource_id)`.execute(db);
  await sql`drop index search_string_lookup`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`create index search_string_lookup on search_string (resource_type, code, value text_pattern_ops)`.execute(db);
  await sql`drop index search_string_match`.execute(db);
}
