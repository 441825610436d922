import { AuditLog } from '../audit/audit-log.js';
import { loadAuditSigningKey } from '../audit/audit-signing-key.js';
import { loadAdminToken, TokenVerifier } from '../auth/bootstrap-token.js';
import { randomBytes } from 'node:crypto';
import { InProcessBus, type Bus } from '../cluster/bus.js';
import { RedisBanStore } from '../cluster/redis-ban-store.js';
import { RedisBus } from '../cluster/redis-bus.js';
import { RedisRateLimiter } from '../cluster/redis-rate-limiter.js';
import { InMemoryRateLimiter } from '../edge/rate-limiter.js';
import { RedisRoomStore } from '../consult/shared-room-store.js';
import type { Config } from '../config/config.js';
import { openStore, type Store } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import { loadKeyRing } from '../documents/key-ring.js';
import { preloadValidation } from '../records/fhir/validation.js';
import { SessionStore } from '../auth/sessions/session-store.js';
import { SignInService } from '../auth/sign-in/sign-in-service.js';
import { ConsultRooms } from '../consult/consult-rooms.js';
import { Notifications } from '../notifications/notifications.js';
import type { Logger } from '../logging/logger.js';
import type { AppContext } from './app-context.js';
import { lockDataDir } from './data-dir-lock.js';
import { VERSION } from './version.js';

/** How long a starting node waits for Redis before it serves without it. */
const REDIS_START_WAIT_MS = 3000;

/**
 * Opens everything a node needs, in order: store (migrated), keys, bus (Redis in a farm). Used by `serve`
 * and by tests, so both start the same way.
 */
export async function startNode(config: Config, logger: Logger): Promise<AppContext & { stop(): Promise<void> }> {
  const releaseLock = config.databaseUrl ? async () => undefined : await lockDataDir(config.dataDir);
  let store: Store | undefined;
  let redisBus: RedisBus | undefined;
  try {
    store = await openStore(config);
    const applied = await migrateToLatest(store.db);
    if (applied.length) logger.info({ migrations: applied }, 'database migrated');
    const keyRing = await loadKeyRing({
      ...(config.masterKey ? { masterKey: config.masterKey } : {}),
      ...(config.masterKeyFile ? { masterKeyFile: config.masterKeyFile } : {}),
      dataDir: config.dataDir,
      createIfMissing: true,
      // A rotation elsewhere changed the key file: ids only, never key material.
      onReload: (event) => ('ids' in event ? logger.info({ kekIds: event.ids }, 'master key file re-read') : logger.error({ err: event.error }, 'master key file could not be re-read')),
    });
    const admin = await loadAdminToken(config.adminToken, config.dataDir);
    if (admin.file) logger.info({ file: admin.file }, 'bootstrap admin token is in this file');
    preloadValidation();
    // Farm mode when Redis is configured. A node whose Redis is down still starts: sign-in and the record don't need it.
    const nodeId = randomBytes(8).toString('hex');
    redisBus = config.redisUrl ? new RedisBus(config.redisUrl, { prefix: config.redisPrefix, logger }) : undefined;
    const bus: Bus = redisBus ?? new InProcessBus();
    if (redisBus && !(await redisBus.ready(REDIS_START_WAIT_MS))) logger.warn({ redis: 'down' }, 'redis unreachable at start: serving with consultation signaling on this node only until it comes');
    // Checkpoints of the audit chain are signed; every node of a farm must hold the same key.
    const auditKey = await loadAuditSigningKey({ envValue: config.auditSigningKey, dataDir: config.dataDir, createIfMissing: true });
    const audit = new AuditLog(store.db, logger, { commit: config.auditCommit, ...(auditKey ? { signingKey: auditKey } : {}) });
    const sessions = new SessionStore(store.db);
    const signIn = new SignInService(store.db, sessions, audit, keyRing);
    const consult = new ConsultRooms(store.db, audit, logger, config);
    if (redisBus) {
      const shared = new RedisRoomStore(redisBus, nodeId, consult.roomHooks, { graceMs: () => consult.resumeGraceMs, socket: (id) => consult.socket(id), logger });
      await shared.start();
      consult.useSharedStore(shared);
    }
    const bans = redisBus ? new RedisBanStore(redisBus, logger) : undefined;
    await bans?.start();
    // The API rate limits and the password-check budgets, counted farm-wide when there is a farm.
    const rateLimiter = redisBus ? new RedisRateLimiter(redisBus, logger) : new InMemoryRateLimiter();
    // E-mail when TELESALUD_SMTP_URL is set: every node delivers from the shared outbox.
    const notifications = await Notifications.open({ db: store.db, keyRing, config, logger, audit, nodeId });
    notifications?.start();
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
      consult,
      version: VERSION,
      nodeId,
      ...(bans ? { bans } : {}),
      rateLimiter,
      ...(notifications ? { notifications } : {}),
      lifecycle: { draining: false },
      async stop() {
        // Rooms first: their last traffic figures and audit entries need the store.
        await consult.close();
        // The message being sent finishes; the rest stay queued for another node or the next start.
        await notifications?.stop();
        await audit.drain();
        await bans?.close();
        // Its last counts shared and its sync timer stopped while the bus is still open.
        if (rateLimiter instanceof RedisRateLimiter) await rateLimiter.close();
        await bus.close();
        await openedStore.close();
        await releaseLock();
      },
    };
  } catch (err) {
    await redisBus?.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
    await releaseLock();
    throw err;
  }
}
