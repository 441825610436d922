import { sql, type Kysely } from 'kysely';
import { chainedFieldsOf, chainHash, GENESIS_HASH, type StoredAuditFields } from '../../audit/audit-chain.js';

/**
 * The audit trail becomes tamper-evident: every audit_event row takes a place in one hash
 * chain (seq 1, 2, 3…; hash = SHA-256(prev_hash ‖ canonical entry), see src/audit/audit-chain.ts,
 * whose format 1 is frozen), signed checkpoints of the chain go to audit_checkpoint, and both
 * tables become append-only.
 *
 * Rows written before this migration are chained here, in id order; their `recorded` is cut to
 * the millisecond first, the precision the chain covers.
 */
const CHAIN_PAGE = 1000;

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table audit_event add column if not exists seq bigint`.execute(db);
  await sql`alter table audit_event add column if not exists prev_hash bytea`.execute(db);
  await sql`alter table audit_event add column if not exists hash bytea`.execute(db);

  await chainExistingRows(db);

  await sql`
    alter table audit_event
      alter column seq set not null,
      alter column prev_hash set not null,
      alter column hash set not null`.execute(db);
  await sql`
    do $$ begin
      if not exists (select 1 from pg_constraint where conname = 'audit_event_seq_key') then
        alter table audit_event
          add constraint audit_event_seq_key unique (seq),
          add constraint audit_event_seq_positive check (seq > 0),
          add constraint audit_event_hash_size check (octet_length(hash) = 32 and octet_length(prev_hash) = 32);
      end if;
    end $$`.execute(db);

  await sql`
    create table if not exists audit_checkpoint (
      seq bigint primary key,
      hash bytea not null check (octet_length(hash) = 32),
      signed_at timestamptz not null,
      key_id text not null,
      signature bytea not null
    )`.execute(db);

  // The one way entries join the chain (src/audit/audit-log.ts calls it): under the chain's
  // advisory lock, read the head, hash each entry onto it and insert them at the next positions.
  // One statement, one round trip. Each statement of a VOLATILE function takes a fresh snapshot,
  // so the head is read after the lock is held: it is the current head, never a stale one.
  // The entry's canonical text comes from the caller (prefix and body, see audit-chain.ts); only
  // the position is spliced in here, so the hash is exactly SHA-256(prev ‖ canonicalEntry).
  await sql`
    create or replace function audit_append(
      p_prefix text, p_recorded timestamptz,
      p_actor text[], p_action text[], p_resource_type text[], p_resource_id text[], p_patient text[],
      p_outcome text[], p_source text[], p_request_id text[], p_detail jsonb[], p_body text[],
      p_async boolean)
    returns table (prev_seq bigint, head_seq bigint, head_hash bytea)
    language plpgsql volatile as $$
    #variable_conflict use_column
    declare
      n int := coalesce(cardinality(p_body), 0);
      last_seq bigint;
      h bytea;
      prevs bytea[] := '{}';
      hashes bytea[] := '{}';
    begin
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
        h := sha256(h || convert_to(p_prefix || (last_seq + i)::text || p_body[i], 'UTF8'));
        hashes := array_append(hashes, h);
      end loop;
      insert into audit_event (seq, recorded, actor, action, resource_type, resource_id, patient, outcome, source, request_id, detail, prev_hash, hash)
        select last_seq + u.ord, p_recorded, u.actor, u.action, u.resource_type, u.resource_id, u.patient, u.outcome, u.source, u.request_id, u.detail, u.prev_hash, u.hash
          from unnest(p_actor, p_action, p_resource_type, p_resource_id, p_patient, p_outcome, p_source, p_request_id, p_detail, prevs, hashes)
               with ordinality as u(actor, action, resource_type, resource_id, patient, outcome, source, request_id, detail, prev_hash, hash, ord);
      return query select last_seq, last_seq + n, h;
    end $$`.execute(db);

  // Append-only, for everyone: a trigger binds even the tables' owner (the role the service
  // runs as when it migrates its own database). Someone who can disable triggers (the owner,
  // a superuser) can still edit rows: the chain and the signed checkpoints are what make that
  // visible to `telesalud audit verify`.
  await sql`
    create or replace function audit_append_only() returns trigger language plpgsql as $$
    begin
      -- Retention (a later issue) goes here: deleting the oldest entries will be allowed only
      -- on a controlled path — a security-definer function that sets a transaction-local flag
      -- (e.g. telesalud.audit_retention) checked right here, deletes a prefix of the chain
      -- (seq 1..n, never a middle), and leaves a signed checkpoint at n as the new anchor
      -- that verify starts from. Everything else stays refused.
      raise exception 'the audit trail is append-only: % on % refused', tg_op, tg_table_name
        using errcode = 'insufficient_privilege';
    end $$`.execute(db);
  for (const table of ['audit_event', 'audit_checkpoint']) {
    const rowsTrigger = sql.id(`${table}_append_only`);
    const truncateTrigger = sql.id(`${table}_no_truncate`);
    await sql`drop trigger if exists ${rowsTrigger} on ${sql.id(table)}`.execute(db);
    await sql`create trigger ${rowsTrigger} before update or delete on ${sql.id(table)} for each statement execute function audit_append_only()`.execute(db);
    await sql`drop trigger if exists ${truncateTrigger} on ${sql.id(table)}`.execute(db);
    await sql`create trigger ${truncateTrigger} before truncate on ${sql.id(table)} for each statement execute function audit_append_only()`.execute(db);
  }

  // On a real PostgreSQL server, and only where this role may (it owns the tables or is a
  // superuser): nobody is granted UPDATE, DELETE or TRUNCATE through PUBLIC, nor keeps them by
  // ownership when the owner is the service's own unprivileged role. Where this role may not,
  // whoever administers the server grants the service only SELECT and INSERT on these tables.
  // PGlite is one embedded user: the trigger is its guard.
  const version = (await sql<{ v: string }>`select version() as v`.execute(db)).rows[0]?.v ?? '';
  if (!/wasm|emscripten/i.test(version)) {
    await sql`
      do $$
      declare
        t text;
        owner_role oid;
        is_super boolean;
      begin
        select rolsuper into is_super from pg_roles where rolname = current_user;
        foreach t in array array['audit_event', 'audit_checkpoint'] loop
          select relowner into owner_role from pg_class where oid = t::regclass;
          if is_super or pg_has_role(current_user, owner_role, 'MEMBER') then
            execute format('revoke update, delete, truncate on %I from public', t);
            if not (select rolsuper from pg_roles where oid = owner_role) then
              execute format('revoke update, delete, truncate on %I from %I', t, (select rolname from pg_roles where oid = owner_role));
            end if;
          end if;
        end loop;
      end $$`.execute(db);
  }
}

/** Chain the rows that predate the chain, oldest id first, continuing any chain already there. */
async function chainExistingRows(db: Kysely<any>): Promise<void> {
  await sql`update audit_event set recorded = date_trunc('milliseconds', recorded) where seq is null`.execute(db);
  const head = (await sql<{ seq: number; hash: Uint8Array }>`select seq, hash from audit_event where seq is not null order by seq desc limit 1`.execute(db)).rows[0];
  let seq = head ? Number(head.seq) : 0;
  let prev = head ? Buffer.from(head.hash) : GENESIS_HASH;
  let afterId = 0;
  for (;;) {
    const rows = (
      await sql<StoredAuditFields & { id: number }>`select id, recorded, actor, action, resource_type, resource_id, patient, outcome, source, request_id, detail
           from audit_event where seq is null and id > ${afterId} order by id limit ${CHAIN_PAGE}`.execute(db)
    ).rows;
    if (rows.length === 0) return;
    for (const row of rows) {
      seq += 1;
      const hash = chainHash(prev, chainedFieldsOf(row, seq));
      await sql`update audit_event set seq = ${seq}, prev_hash = ${prev}, hash = ${hash} where id = ${row.id}`.execute(db);
      prev = hash;
      afterId = Number(row.id);
    }
  }
}

export async function down(): Promise<void> {
  throw new Error('the audit chain is never rolled back by migration; restore a backup instead');
}
