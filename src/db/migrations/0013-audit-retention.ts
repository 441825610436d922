import { sql, type Kysely } from 'kysely';

/**
 * Retention of the audit trail: the oldest entries may be removed, but only as a prefix of the
 * chain that ends at a signed checkpoint, and never silently.
 *
 * - `audit_retention` keeps one row per removal: the range removed (first_seq…last_seq), the hash
 *   of the last removed entry (the signed checkpoint at last_seq, which stays, vouches for it),
 *   when and up to which horizon, and a signature by the audit signing key over all of it, so a
 *   database user cannot widen a removal after the fact. Append-only, like the trail.
 * - `audit_retention_truncate()` is the one path that deletes audit rows. It is SECURITY DEFINER
 *   (runs as the migration owner) and not executable by PUBLIC: the service role keeps no
 *   DELETE privilege on audit_event or audit_checkpoint (migration 0002 revoked it, even from an
 *   unprivileged owner), and the function grants it to its owner only inside its own
 *   transaction — granted and revoked before commit, so no other session ever sees it. It
 *   refuses anything but a prefix ending at a signed checkpoint whose hash matches the entry,
 *   and always leaves at least one entry after it (audit_append() continues from the head).
 * - The append-only trigger lets a DELETE through only while that function has set the
 *   transaction-local flag telesalud.audit_retention. Whoever can set it by hand and holds DELETE
 *   (the owner, a superuser) could already disable the trigger: for them the chain, the signed
 *   checkpoints and the signed retention rows are what make a removal visible to `audit verify`.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table if not exists audit_retention (
      id bigserial primary key,
      first_seq bigint not null check (first_seq > 0),
      last_seq bigint not null,
      last_hash bytea not null check (octet_length(last_hash) = 32),
      horizon timestamptz not null,
      removed_at timestamptz not null,
      entries_removed bigint not null,
      checkpoints_removed bigint not null,
      archive_sha256 text,
      key_id text not null,
      signature bytea not null,
      check (last_seq >= first_seq)
    )`.execute(db);

  // The guard of migration 0002, now with the one controlled exception it announced.
  await sql`
    create or replace function audit_append_only() returns trigger language plpgsql as $$
    begin
      if tg_op = 'DELETE' and tg_table_name in ('audit_event', 'audit_checkpoint')
         and current_setting('telesalud.audit_retention', true) = 'on' then
        return null;
      end if;
      raise exception 'the audit trail is append-only: % on % refused', tg_op, tg_table_name
        using errcode = 'insufficient_privilege';
    end $$`.execute(db);
  await sql`drop trigger if exists audit_retention_append_only on audit_retention`.execute(db);
  await sql`create trigger audit_retention_append_only before update or delete on audit_retention for each statement execute function audit_append_only()`.execute(db);
  await sql`drop trigger if exists audit_retention_no_truncate on audit_retention`.execute(db);
  await sql`create trigger audit_retention_no_truncate before truncate on audit_retention for each statement execute function audit_append_only()`.execute(db);

  await sql`
    create or replace function audit_retention_truncate(
      p_first_seq bigint, p_last_seq bigint, p_last_hash bytea, p_horizon timestamptz, p_removed_at timestamptz,
      p_archive_sha256 text, p_key_id text, p_signature bytea)
    returns table (entries_removed bigint, checkpoints_removed bigint)
    language plpgsql volatile security definer set search_path = pg_catalog, public as $$
    declare
      start_seq bigint;
      anchor_hash bytea;
      n_entries bigint;
      n_checkpoints bigint;
      privileged boolean;
    begin
      -- One removal at a time across the farm ("audit_rt"); appends are not held up.
      perform pg_advisory_xact_lock(7017846207087387508);
      select coalesce(max(r.last_seq), 0) + 1 into start_seq from audit_retention r;
      if p_first_seq <> start_seq then
        raise exception 'audit retention: the chain now starts at seq %, not %', start_seq, p_first_seq using errcode = 'check_violation';
      end if;
      if p_last_seq < p_first_seq then
        raise exception 'audit retention: nothing to remove before seq %', p_first_seq using errcode = 'check_violation';
      end if;
      select c.hash into anchor_hash from audit_checkpoint c join audit_event e on e.seq = c.seq and e.hash = c.hash where c.seq = p_last_seq;
      if anchor_hash is null or anchor_hash <> p_last_hash then
        raise exception 'audit retention: no signed checkpoint at seq % matching the chain', p_last_seq using errcode = 'check_violation';
      end if;
      if not exists (select 1 from audit_event e where e.seq > p_last_seq) then
        raise exception 'audit retention: at least one entry must stay after seq %', p_last_seq using errcode = 'check_violation';
      end if;

      -- Only when the owner lacks it (0002 revoked it): granted here, revoked below, never committed.
      privileged := has_table_privilege(current_user, 'audit_event', 'DELETE') and has_table_privilege(current_user, 'audit_checkpoint', 'DELETE');
      if not privileged then
        execute format('grant delete on audit_event, audit_checkpoint to %I', current_user);
      end if;
      perform set_config('telesalud.audit_retention', 'on', true);
      delete from audit_event e where e.seq <= p_last_seq;
      get diagnostics n_entries = row_count;
      -- The checkpoint at p_last_seq stays: it anchors what remains.
      delete from audit_checkpoint c where c.seq < p_last_seq;
      get diagnostics n_checkpoints = row_count;
      perform set_config('telesalud.audit_retention', '', true);
      if not privileged then
        execute format('revoke delete on audit_event, audit_checkpoint from %I', current_user);
      end if;

      insert into audit_retention (first_seq, last_seq, last_hash, horizon, removed_at, entries_removed, checkpoints_removed, archive_sha256, key_id, signature)
        values (p_first_seq, p_last_seq, p_last_hash, p_horizon, p_removed_at, n_entries, n_checkpoints, p_archive_sha256, p_key_id, p_signature);
      return query select n_entries, n_checkpoints;
    end $$`.execute(db);
  await sql`revoke all on function audit_retention_truncate(bigint, bigint, bytea, timestamptz, timestamptz, text, text, bytea) from public`.execute(db);

  const version = (await sql<{ v: string }>`select version() as v`.execute(db)).rows[0]?.v ?? '';
  if (!/wasm|emscripten/i.test(version)) {
    // As for the trail itself (0002): nobody keeps UPDATE, DELETE or TRUNCATE on the removal records.
    await sql`
      do $$
      declare
        owner_role oid;
        is_super boolean;
      begin
        select rolsuper into is_super from pg_roles where rolname = current_user;
        select relowner into owner_role from pg_class where oid = 'audit_retention'::regclass;
        if is_super or pg_has_role(current_user, owner_role, 'MEMBER') then
          revoke update, delete, truncate on audit_retention from public;
          if not (select rolsuper from pg_roles where oid = owner_role) then
            execute format('revoke update, delete, truncate on audit_retention from %I', (select rolname from pg_roles where oid = owner_role));
          end if;
        end if;
      end $$`.execute(db);
  }
}

export async function down(): Promise<void> {
  throw new Error('audit retention records are never rolled back by migration; restore a backup instead');
}
