import { sql, type Kysely } from 'kysely';

/**
 * audit_append_batch(): the append of migration 0002 with the batch sent as two texts instead
 * of eleven arrays: the entries' canonical bodies (src/audit/audit-chain.ts), one per line, and
 * their column values as one JSON array of objects. A node then serialises a batch with
 * JSON.stringify and a join, where the array literals cost it a string escape per value; the
 * database reads the JSON in one jsonb_to_recordset() (measured on a 2-core machine, batches of
 * 64: node CPU per audited entry about 5 µs less, the database's no more than with arrays;
 * reading the columns back out of the bodies instead cost the database 10 µs more per entry).
 *
 * One body per line: canonical JSON has no raw line break (JSON.stringify escapes every control
 * character), so a newline can only separate two bodies.
 *
 * audit_append() stays for one release: nodes of the previous one keep appending through it,
 * under the same chain lock, into the same chain.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create or replace function audit_append_batch(p_prefix text, p_recorded timestamptz, p_bodies text, p_columns jsonb, p_async boolean)
    returns table (prev_seq bigint, head_seq bigint, head_hash bytea)
    language plpgsql volatile as $$
    #variable_conflict use_column
    declare
      bodies text[] := string_to_array(p_bodies, E'\\n');
      n int := coalesce(cardinality(bodies), 0);
      last_seq bigint;
      h bytea;
      prevs bytea[] := '{}';
      hashes bytea[] := '{}';
    begin
      if n <> jsonb_array_length(p_columns) then
        raise exception 'audit_append_batch: % bodies for % rows of columns', n, jsonb_array_length(p_columns) using errcode = 'invalid_parameter_value';
      end if;
      -- Read audits wait for the database to hold them, not for its disk flush.
      if p_async then perform set_config('synchronous_commit', 'off', true); end if;
      perform pg_advisory_xact_lock(7017846207087387496); -- "audit_ch": AUDIT_CHAIN_LOCK
      select e.seq, e.hash into last_seq, h from audit_event e order by e.seq desc limit 1;
      if last_seq is null then
        last_seq := 0;
        h := decode(repeat('00', 32), 'hex');
      end if;
      for i in 1..n loop
        prevs := array_append(prevs, h);
        h := sha256(h || convert_to(p_prefix || (last_seq + i)::text || bodies[i], 'UTF8'));
        hashes := array_append(hashes, h);
      end loop;
      insert into audit_event (seq, recorded, actor, action, resource_type, resource_id, patient, outcome, source, request_id, detail, prev_hash, hash)
        select last_seq + c.ord, p_recorded, c.actor, c.action, c.resource_type, c.resource_id, c.patient, c.outcome, c.source, c.request_id, c.detail, prevs[c.ord], hashes[c.ord]
          from rows from (jsonb_to_recordset(p_columns) as (actor text, action text, resource_type text, resource_id text, patient text, outcome text, source text, request_id text, detail jsonb))
               with ordinality as c(actor, action, resource_type, resource_id, patient, outcome, source, request_id, detail, ord);
      return query select last_seq, last_seq + n, h;
    end $$`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop function if exists audit_append_batch(text, timestamptz, text, jsonb, boolean)`.execute(db);
}
