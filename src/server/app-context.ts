import type { AuditLog } from '../audit/audit-log.js';
import type { TokenVerifier } from '../auth/bootstrap-token.js';
import type { Bus } from '../cluster/bus.js';
import type { Config } from '../config/config.js';
import type { Store } from '../db/database.js';
import type { KeyRing } from '../documents/key-ring.js';
import type { Logger } from '../logging/logger.js';
import type { SessionStore } from '../auth/sessions/session-store.js';
import type { SignInService } from '../auth/sign-in/sign-in-service.js';

/** Everything a node holds while it runs. Nothing a later request needs lives only here. */
export interface AppContext {
  config: Config;
  logger: Logger;
  store: Store;
  bus: Bus;
  audit: AuditLog;
  keyRing: KeyRing;
  adminToken: TokenVerifier;
  sessions: SessionStore;
  signIn: SignInService;
  version: string;
  /** Set on SIGTERM: /readyz turns 503 so load balancers move traffic away. */
  lifecycle: { draining: boolean };
}
