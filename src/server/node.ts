import { AuditLog } from '../audit/audit-log.js';
import { loadAuditSigningKey } from '../audit/audit-signing-key.js';
import { loadAdminToken, TokenVerifier } from '../auth/bootstrap-token.js';
import { InProcessBus } from '../cluster/bus.js';
import type { Config } from '../config/config.js';
import { openStore, type Store } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import { loadKeyRing } from '../documents/key-ring.js';
import { preloadValidation } from '../records/fhir/validation.js';
import { SessionStore } from '../auth/sessions/session-store.js';
import { SignInService } from '../auth/sign-in/sign-in-service.js';
import type { Logger } from '../logging/logger.js';
import type { AppContext } from './app-context.js';
import { lockDataDir } from './data-dir-lock.js';
import { VERSION } from './version.js';

/**
 * Opens everything a node needs, in order: store (migrated), keys, bus. Used by `serve`
 * and by tests, so both start the same way.
 */
export async function startNode(config: Config, logger: Logger): Promise<AppContext & { stop(): Promise<void> }> {
  const releaseLock = config.databaseUrl ? async () => undefined : await lockDataDir(config.dataDir);
  let store: Store | undefined;
  try {
    store = await openStore(config);
    const applied = await migrateToLatest(store.db);
    if (applied.length) logger.info({ migrations: applied }, 'database migrated');
    const keyRing = await loadKeyRing({ ...(config.masterKey ? { masterKey: config.masterKey } : {}), ...(config.masterKeyFile ? { masterKeyFile: config.masterKeyFile } : {}), dataDir: config.dataDir, createIfMissing: true });
    const admin = await loadAdminToken(config.adminToken, config.dataDir);
    if (admin.file) logger.info({ file: admin.file }, 'bootstrap admin token is in this file');
    preloadValidation();
    const bus = new InProcessBus();
    // Checkpoints of the audit chain are signed; every node of a farm must hold the same key.
    const auditKey = await loadAuditSigningKey({ envValue: config.auditSigningKey, dataDir: config.dataDir, createIfMissing: true });
    const audit = new AuditLog(store.db, logger, auditKey ? { signingKey: auditKey } : {});
    const sessions = new SessionStore(store.db);
    const signIn = new SignInService(store.db, sessions, audit, keyRing);
    const openedStore = store;
    return {
      config,
      logger,
      store: openedStore,
      bus,
      audit,
      keyRing,
      adminToken: new TokenVerifier(admin.token),
      sessions,
      signIn,
      version: VERSION,
      lifecycle: { draining: false },
      async stop() {
        await audit.drain();
        await bus.close();
        await openedStore.close();
        await releaseLock();
      },
    };
  } catch (err) {
    await store?.close().catch(() => undefined);
    await releaseLock();
    throw err;
  }
}
