import { Migrator, type Kysely, type Migration, type MigrationResultSet } from 'kysely';
import * as clinicalRecord from './migrations/0001-clinical-record.js';
import * as auditChain from './migrations/0002-audit-chain.js';
import * as accounts from './migrations/0003-accounts.js';
import * as consultations from './migrations/0004-consultations.js';
import * as accessPolicy from './migrations/0005-access-policy.js';
import * as oauthClients from './migrations/0006-oauth-clients.js';
import * as searchStringCoveringIndex from './migrations/0007-search-string-covering-index.js';
import * as accountLifecycle from './migrations/0008-account-lifecycle.js';
import * as consent from './migrations/0011-consent.js';
import * as auditRetention from './migrations/0013-audit-retention.js';
import * as invitationRevocation from './migrations/0014-invitation-revocation.js';
import * as relayedTraffic from './migrations/0015-relayed-traffic.js';
import * as auditIndexCosts from './migrations/0016-audit-index-costs.js';
import * as reauthPasskeyChallenge from './migrations/0017-reauth-passkey-challenge.js';
import * as notificationOutbox from './migrations/0018-notification-outbox.js';
import * as smartAppLaunch from './migrations/0019-smart-app-launch.js';
import * as receptionRole from './migrations/0020-reception-role.js';
import * as searchStringRecency from './migrations/0021-search-string-recency.js';
import * as auditSeqIdentity from './migrations/0022-audit-seq-identity.js';
import * as auditAppendBatch from './migrations/0023-audit-append-batch.js';

/**
 * Versioned migrations, listed in code so they ship inside the build. Kysely's Postgres
 * adapter takes a transaction-scoped advisory lock around the run, so nodes that start
 * at once apply each migration exactly once.
 */
const MIGRATIONS: Record<string, Migration> = {
  '0001-clinical-record': clinicalRecord,
  '0002-audit-chain': auditChain,
  '0003-accounts': accounts,
  '0004-consultations': consultations,
  '0005-access-policy': accessPolicy,
  '0006-oauth-clients': oauthClients,
  '0007-search-string-covering-index': searchStringCoveringIndex,
  '0008-account-lifecycle': accountLifecycle,
  '0011-consent': consent,
  '0013-audit-retention': auditRetention,
  '0014-invitation-revocation': invitationRevocation,
  '0015-relayed-traffic': relayedTraffic,
  '0016-audit-index-costs': auditIndexCosts,
  '0017-reauth-passkey-challenge': reauthPasskeyChallenge,
  '0018-notification-outbox': notificationOutbox,
  '0019-smart-app-launch': smartAppLaunch,
  '0020-reception-role': receptionRole,
  '0021-search-string-recency': searchStringRecency,
  '0022-audit-seq-identity': auditSeqIdentity,
  '0023-audit-append-batch': auditAppendBatch,
};

export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  return run(db, (migrator) => migrator.migrateToLatest());
}

/** Up to and including `name` (a restore first rebuilds the schema its archive was taken at). */
export async function migrateUpTo(db: Kysely<any>, name: string): Promise<string[]> {
  if (!(name in MIGRATIONS)) throw new Error(`unknown migration ${name}`);
  return run(db, (migrator) => migrator.migrateTo(name));
}

export const KNOWN_MIGRATIONS: readonly string[] = Object.keys(MIGRATIONS).sort();

async function run(db: Kysely<any>, step: (migrator: Migrator) => Promise<MigrationResultSet>): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => MIGRATIONS },
    migrationTableName: 'schema_migration',
    migrationLockTableName: 'schema_migration_lock',
  });
  const { error, results }: MigrationResultSet = await step(migrator);
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

export const LATEST_MIGRATION = Object.keys(MIGRATIONS).at(-1)!;
