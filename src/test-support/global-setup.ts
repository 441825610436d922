import { rm } from 'node:fs/promises';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { openPglite, openPostgres } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import { PG_TEMPLATE_DATABASE, PGLITE_TEMPLATE_DIR, TEST_LOG_DIR } from './paths.js';

/**
 * Once per test run: a migrated PGlite data dir to copy (creating one costs seconds, copying
 * milliseconds) and, when TELESALUD_TEST_DATABASE_URL is set, a migrated template database
 * on the real PostgreSQL from which each test file clones its own.
 */
export default async function setup(): Promise<void> {
  await rm(TEST_LOG_DIR, { recursive: true, force: true });
  await rm(PGLITE_TEMPLATE_DIR, { recursive: true, force: true });
  const lite = await openPglite(PGLITE_TEMPLATE_DIR);
  await migrateToLatest(lite.db);
  await lite.close();

  const url = process.env.TELESALUD_TEST_DATABASE_URL;
  if (url) {
    const admin = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }) });
    await dropStaleTestDatabases(admin);
    await sql.raw(`create database ${PG_TEMPLATE_DATABASE}`).execute(admin);
    await admin.destroy();
    const template = openPostgres(databaseUrl(url, PG_TEMPLATE_DATABASE), 1);
    await migrateToLatest(template.db);
    await template.close();
  }
}

async function dropStaleTestDatabases(admin: Kysely<any>): Promise<void> {
  const { rows } = await sql<{ datname: string }>`select datname from pg_database where datname like 'telesalud_test_%'`.execute(admin);
  for (const { datname } of rows) await sql.raw(`drop database if exists "${datname}" with (force)`).execute(admin);
}

export function databaseUrl(base: string, database: string): string {
  const u = new URL(base);
  u.pathname = `/${database}`;
  return u.toString();
}
