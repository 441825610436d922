import { Migrator, type Kysely, type Migration, type MigrationResultSet } from 'kysely';
import * as clinicalRecord from './migrations/0001-clinical-record.js';
import * as auditChain from './migrations/0002-audit-chain.js';
import * as accounts from './migrations/0003-accounts.js';

/**
 * Versioned migrations, listed in code so they ship inside the build. Kysely's Postgres
 * adapter takes a transaction-scoped advisory lock around the run, so nodes that start
 * at once apply each migration exactly once.
 */
const MIGRATIONS: Record<string, Migration> = {
  '0001-clinical-record': clinicalRecord,
  '0002-audit-chain': auditChain,
  '0003-accounts': accounts,
};

export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => MIGRATIONS },
    migrationTableName: 'schema_migration',
    migrationLockTableName: 'schema_migration_lock',
  });
  const { error, results }: MigrationResultSet = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

export const LATEST_MIGRATION = Object.keys(MIGRATIONS).at(-1)!;
