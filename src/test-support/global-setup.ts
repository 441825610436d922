import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { openPglite, openPostgres } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import { pgliteTemplateDir, pgTemplateDatabase, TEST_DATA_DIR, testLogDir } from './paths.js';

/**
 * Once per test run: a migrated PGlite data dir to copy (creating one costs seconds, copying
 * milliseconds) and, when TELESALUD_TEST_DATABASE_URL is set, a migrated template database
 * on the real PostgreSQL from which each test file clones its own.
 */
export default async function setup(): Promise<() => Promise<void>> {
  // npm test names the run dir and scans its logs afterwards; a bare vitest run cleans up after itself.
  const ownRunDir = !process.env.TELESALUD_TEST_RUN_DIR;
  process.env.TELESALUD_TEST_RUN_DIR ??= path.join(TEST_DATA_DIR, `run-${process.pid}`);
  const dir = process.env.TELESALUD_TEST_RUN_DIR;
  await rm(process.env.TELESALUD_TEST_RUN_DIR, { recursive: true, force: true });
  await mkdir(testLogDir(), { recursive: true });
  const lite = await openPglite(pgliteTemplateDir());
  await migrateToLatest(lite.db);
  await lite.close();

  const url = process.env.TELESALUD_TEST_DATABASE_URL;
  const template = pgTemplateDatabase();
  if (url) {
    await adminQuery(url, `drop database if exists ${template} with (force)`);
    await adminQuery(url, `create database ${template}`);
    const store = openPostgres(databaseUrl(url, template), 1);
    await migrateToLatest(store.db);
    await store.close();
  }
  return async () => {
    if (url) await adminQuery(url, `drop database if exists ${template} with (force)`);
    await rm(ownRunDir ? dir : pgliteTemplateDir(), { recursive: true, force: true });
  };
}

export function databaseUrl(base: string, database: string): string {
  const u = new URL(base);
  u.pathname = `/${database}`;
  return u.toString();
}

/** One short connection per statement: CREATE DATABASE … TEMPLATE needs the template idle. */
export async function adminQuery(url: string, statement: string): Promise<void> {
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }) });
  try {
    await sql.raw(statement).execute(db);
  } finally {
    await db.destroy();
  }
}
