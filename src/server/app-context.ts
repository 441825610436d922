import type { AuditLog } from '../audit/audit-log.js';
import type { TokenVerifier } from '../auth/bootstrap-token.js';
import type { Bus } from '../cluster/bus.js';
import type { BanStore } from '../edge/ban-store.js';
import type { Config } from '../config/config.js';
import type { Store } from '../db/database.js';
import type { KeyRing } from '../documents/key-ring.js';
import type { Logger } from '../logging/logger.js';
import type { SessionStore } from '../auth/sessions/session-store.js';
import type { SignInService } from '../auth/sign-in/sign-in-service.js';
import type { ConsultRooms } from '../consult/consult-rooms.js';
import type { OcspStapler } from './ocsp-stapling.js';
import type { RateLimiter } from '../edge/rate-limiter.js';
import type { Notifications } from '../notifications/notifications.js';

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
  /** This node's consultation rooms (in memory while in use) and their signaling. */
  consult: ConsultRooms;
  version: string;
  /** Random per process: names this node in the farm's presence (Redis) and its bus channel. */
  nodeId: string;
  /** The shield's bans, shared by the farm's nodes through Redis; absent: the shield keeps them in memory. */
  bans?: BanStore;
  /** Request counters of the rate limits: in Redis in a farm (failing open to this node), else in memory; absent: in memory. */
  rateLimiter?: RateLimiter;
  /** OCSP stapling of the node's own certificate (a CA-issued one naming a responder); absent otherwise. */
  ocspStapling?: Pick<OcspStapler, 'status'>;
  /** Outgoing e-mail (outbox and this node's delivery loop); absent without TELESALUD_SMTP_URL. */
  notifications?: Notifications;
  /** Set on SIGTERM: /readyz turns 503 so load balancers move traffic away. */
  lifecycle: { draining: boolean };
}
