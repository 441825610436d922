import { sql } from 'kysely';
import pg from 'pg';
import { build } from './build.js';

export interface CopyResult {
  rows: number;
  seconds: number;
  analyzeSeconds: number;
}

const BATCH_ROWS = 2000;

/**
 * Gives a PGlite data dir the very rows of a seeded PostgreSQL database (same ids, same
 * content), by SQL rather than through the repository: the same dataset for both stores, in
 * a fraction of the time PGlite takes to write 110,000 resources one transaction at a time.
 * The PGlite side is migrated by the node as usual; every non-empty table of the source
 * (except the migration bookkeeping) is copied in batches through json_populate_recordset.
 */
export async function copyPostgresIntoPglite(options: { sourceUrl: string; dataDir: string; adminToken: string }): Promise<CopyResult> {
  const { loadConfig, startNode, createLogger } = await build();
  const config = loadConfig({ TELESALUD_DATA_DIR: options.dataDir, TELESALUD_ADMIN_TOKEN: options.adminToken, TELESALUD_LOG_LEVEL: 'warn' });
  const ctx = await startNode(config, createLogger('error'));
  const source = new pg.Client({ connectionString: options.sourceUrl });
  await source.connect();
  try {
    const started = performance.now();
    const tables = (
      await source.query<{ name: string }>(
        `select table_name as name from information_schema.tables
          where table_schema = 'public' and table_type = 'BASE TABLE' and table_name not like 'schema_migration%' order by table_name`,
      )
    ).rows.map((r) => r.name);
    let rows = 0;
    await source.query('begin isolation level repeatable read read only');
    for (const table of tables) {
      const ident = sql.id(table);
      await source.query(`declare rows_of_${table} no scroll cursor for select row_to_json(t)::text as j from ${pg.escapeIdentifier(table)} t`);
      for (;;) {
        const batch = await source.query<{ j: string }>(`fetch ${BATCH_ROWS} from rows_of_${table}`);
        if (batch.rows.length === 0) break;
        const json = `[${batch.rows.map((r) => r.j).join(',')}]`;
        await sql`insert into ${ident} select * from json_populate_recordset(null::${ident}, ${json}::json)`.execute(ctx.store.db);
        rows += batch.rows.length;
      }
      await source.query(`close rows_of_${table}`);
    }
    await source.query('commit');

    // Serial columns continue after the copied rows.
    const serials = (
      await source.query<{ table_name: string; column_name: string }>(
        `select table_name, column_name from information_schema.columns where table_schema = 'public' and column_default like 'nextval(%'`,
      )
    ).rows;
    for (const { table_name, column_name } of serials) {
      await sql`select setval(pg_get_serial_sequence(${table_name}, ${column_name}), coalesce((select max(${sql.id(column_name)}) from ${sql.id(table_name)}), 0) + 1, false)`.execute(ctx.store.db);
    }
    const seconds = (performance.now() - started) / 1000;

    const analyzeStarted = performance.now();
    await sql`vacuum analyze`.execute(ctx.store.db);
    return { rows, seconds, analyzeSeconds: (performance.now() - analyzeStarted) / 1000 };
  } finally {
    await source.end().catch(() => undefined);
    await ctx.stop();
  }
}
