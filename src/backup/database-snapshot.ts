import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/schema.js';

/**
 * The database as plain rows, portable between PGlite and PostgreSQL: every table of the
 * schema (documents included: their sealed bytes live in document_blob) read inside one
 * read-only repeatable-read transaction, so the copy is one consistent instant while the
 * service keeps writing. Rows travel as PostgreSQL's own JSON of the row and come back through
 * json_populate_recordset, so every type (bytea, arrays, jsonb, timestamps) round-trips exactly.
 */

/** Kysely's own bookkeeping: recreated by the migrator on restore, never copied. */
const MIGRATOR_TABLES = new Set(['schema_migration', 'schema_migration_lock']);

export interface TableInfo {
  name: string;
  /** Planner's estimate, for progress only. */
  estimatedRows: number;
  /** Rows per fetch: small for tables that hold document bytes. */
  fetchSize: number;
}

export type SnapshotLine =
  | { kind: 'manifest'; migrations: string[]; tables: string[] }
  /** `json` is the row as PostgreSQL wrote it (row_to_json), passed through untouched. */
  | { kind: 'row'; table: string; json: string }
  | { kind: 'end'; counts: Record<string, number> };

/** Tables in an order that satisfies every foreign key (parents before children). */
export async function tablesInDependencyOrder(db: Kysely<Database> | Transaction<Database>): Promise<TableInfo[]> {
  const tables = (
    await sql<{ name: string; estimated: number; has_bytes: boolean }>`
      select c.relname as name, greatest(c.reltuples, 0)::int8 as estimated,
             exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.atttypid = 'bytea'::regtype and a.attnum > 0 and not a.attisdropped and c.relname = 'document_blob') as has_bytes
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = 'public' and c.relkind in ('r', 'p') order by c.relname`.execute(db)
  ).rows.filter((t) => !MIGRATOR_TABLES.has(t.name));
  const edges = (
    await sql<{ child: string; parent: string }>`
      select cl.relname as child, pl.relname as parent from pg_constraint k
        join pg_class cl on cl.oid = k.conrelid join pg_class pl on pl.oid = k.confrelid
        join pg_namespace n on n.oid = cl.relnamespace
       where k.contype = 'f' and n.nspname = 'public' and cl.relname <> pl.relname`.execute(db)
  ).rows;
  const ordered: TableInfo[] = [];
  const placed = new Set<string>();
  let remaining = tables;
  while (remaining.length) {
    const ready = remaining.filter((t) => edges.every((e) => e.child !== t.name || placed.has(e.parent) || !tables.some((x) => x.name === e.parent)));
    if (!ready.length) throw new Error(`foreign keys form a cycle among ${remaining.map((t) => t.name).join(', ')}`);
    for (const t of ready) {
      placed.add(t.name);
      ordered.push({ name: t.name, estimatedRows: Number(t.estimated), fetchSize: t.has_bytes ? 8 : 500 });
    }
    remaining = remaining.filter((t) => !placed.has(t.name));
  }
  return ordered;
}

export async function appliedMigrations(db: Kysely<Database> | Transaction<Database>): Promise<string[]> {
  return (await sql<{ name: string }>`select name from schema_migration order by name`.execute(db)).rows.map((r) => r.name);
}

/**
 * Reads the whole database as one consistent snapshot and hands it to `emit` line by line
 * (emit awaits the writer, so memory stays flat). `onProgress` hears rows read per table
 * against the planner's estimate.
 */
export async function readSnapshot(db: Kysely<Database>, emit: (line: SnapshotLine) => Promise<void>, onProgress?: (table: string, rows: number, estimated: number) => void): Promise<Record<string, number>> {
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (tx) => {
      await sql`set transaction read only`.execute(tx);
      const tables = await tablesInDependencyOrder(tx);
      await emit({ kind: 'manifest', migrations: await appliedMigrations(tx), tables: tables.map((t) => t.name) });
      const counts: Record<string, number> = {};
      for (const table of tables) {
        let count = 0;
        await sql`declare snapshot_rows no scroll cursor for select row_to_json(t)::text as row from ${sql.table(table.name)} t`.execute(tx);
        for (;;) {
          const batch = (await sql<{ row: string }>`fetch ${sql.raw(String(table.fetchSize))} from snapshot_rows`.execute(tx)).rows;
          if (!batch.length) break;
          for (const { row } of batch) await emit({ kind: 'row', table: table.name, json: row });
          count += batch.length;
          onProgress?.(table.name, count, table.estimatedRows);
        }
        await sql`close snapshot_rows`.execute(tx);
        counts[table.name] = count;
      }
      await emit({ kind: 'end', counts });
      return counts;
    });
}

/** Inserts rows of one table in a batch, through PostgreSQL's JSON-to-row conversion. */
export async function insertRows(tx: Transaction<Database>, table: string, rows: Record<string, unknown>[]): Promise<void> {
  if (!rows.length) return;
  await sql`insert into ${sql.table(table)} select * from json_populate_recordset(null::${sql.table(table)}, ${JSON.stringify(rows)}::json)`.execute(tx);
}

/** After rows arrive with their ids, sequences must continue after the highest one. */
export async function resetSequences(tx: Transaction<Database>): Promise<void> {
  const columns = (
    await sql<{ table_name: string; column_name: string; seq: string }>`
      select table_name, column_name, pg_get_serial_sequence(quote_ident(table_name), column_name) as seq
        from information_schema.columns where table_schema = 'public' and pg_get_serial_sequence(quote_ident(table_name), column_name) is not null`.execute(tx)
  ).rows;
  for (const c of columns) {
    await sql`select setval(${c.seq}, coalesce((select max(${sql.ref(c.column_name)}) from ${sql.table(c.table_name)}), 0) + 1, false)`.execute(tx);
  }
}

/** One NDJSON line of the archive's content. */
export function snapshotLineText(line: SnapshotLine): string {
  return line.kind === 'row' ? `{"kind":"row","table":${JSON.stringify(line.table)},"row":${line.json}}\n` : `${JSON.stringify(line)}\n`;
}
