import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseAuditSigningKey } from '../audit/audit-signing-key.js';
import { MIN_AUDIT_RETENTION_DAYS } from '../audit/audit-retention-record.js';
import { AUDIT_COMMITS, type AuditCommit } from '../audit/audit-log.js';
import { NO_TRUSTED_PROXIES, parseTrustedProxies, type TrustedProxies } from '../edge/trusted-proxies.js';
import { canonicalTimeZone, DEFAULT_CLINIC_TIME_ZONE } from '../auth/policy/clinic-time-zone.js';

/**
 * Everything telesalud reads from its environment, validated once at start.
 * A wrong value stops the process with a one-line reason that names the variable.
 */
export interface Config {
  host: string;
  port: number;
  publicUrl: string;
  dataDir: string;
  tls: { certFile: string; keyFile: string } | undefined;
  /** postgres:// URL of a real server; undefined means the embedded PGlite data dir. */
  databaseUrl: string | undefined;
  databasePoolSize: number;
  /** redis:// or rediss:// URL: farm mode. Undefined: one node, in-process bus. */
  redisUrl: string | undefined;
  /** Put before every Redis key and channel, so deployments can share one Redis. */
  redisPrefix: string;
  /** Proxies whose X-Forwarded-For names the client (TELESALUD_TRUSTED_PROXIES); none by default. */
  trustedProxies: TrustedProxies;
  /** base64 of 32 bytes, given directly (a secret manager can inject it). */
  masterKey: Buffer | undefined;
  masterKeyFile: string | undefined;
  /** Ed25519 PKCS#8 PEM (base64) that signs audit checkpoints; farm nodes share it. Undefined: a key file in the data dir. */
  auditSigningKey: string | undefined;
  /** TELESALUD_AUDIT_RETENTION_DAYS: audit entries older than this are removed daily (checkpoint and truncate). Undefined: kept forever. */
  auditRetentionDays: number | undefined;
  /** TELESALUD_AUDIT_COMMIT: whether an audited read is answered before its entry commits (`behind`, within milliseconds) or after (`before-answer`). See AuditLog. */
  auditCommit: AuditCommit;
  /** Bootstrap admin token until identity lands; undefined means generated into the data dir. */
  adminToken: string | undefined;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Append logs to this file instead of stdout. */
  logFile: string | undefined;
  shutdownTimeoutMs: number;
  /**
   * After SIGTERM, how long a node keeps serving while /readyz answers 503, so the load balancer
   * takes it out of rotation before its connections close (no request races a closing connection).
   */
  drainDelayMs: number;
  maxUploadBytes: number;
  /** coturn's TURN URLs and its static-auth-secret (short-lived HMAC credentials); both or neither. */
  turn: { urls: string[]; secret: string } | undefined;
  /** Optional STUN URLs handed to browsers; none by default (no public STUN server is assumed reachable). */
  stunUrls: string[];
  /** TELESALUD_CLINIC_TIME_ZONE: the clinic's IANA time zone until an admin sets one in the policy; UTC by default. */
  clinicTimeZone: string;
  /**
   * The in-process shield (src/edge): attack inspection, positive model, bans. `off` is for
   * benchmarks and diagnosis only: it leaves the node unprotected. Security headers stay on.
   */
  shield: 'on' | 'off';
  /**
   * Requests a minute to the FHIR and application APIs (src/edge/rate-limit-plugin.ts), shared by
   * the farm through Redis; 0 turns that limit off. `perSource`: anonymous requests from one
   * address; `perSourceSignedIn`: signed-in requests from one address (higher: a hospital's NAT
   * puts many people behind one); `perAccount`: one account or OAuth client, wherever it is.
   */
  rateLimits: { perSource: number; perSourceSignedIn: number; perAccount: number };
  /** Outgoing e-mail (src/notifications); undefined without TELESALUD_SMTP_URL: links are then shown to whoever creates them. */
  mail: MailSettings | undefined;
}

/** How e-mail leaves: one SMTP relay, always over TLS (smtps:// or smtp:// with STARTTLS required). */
export interface MailSettings {
  /** Holds the relay's credentials when given: never logged, never shown. */
  smtpUrl: string;
  from: string;
  /** PEM file of a CA to trust for the relay's certificate (a clinic's internal CA); else the system's. */
  caFile: string | undefined;
  /** Language of e-mails to people whose record and account name none. */
  defaultLanguage: 'es' | 'en';
}

export class ConfigError extends Error {
  constructor(readonly variable: string, reason: string) {
    super(`${variable}: ${reason}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${raw.slice(0, 20)}"`);
  return raw as T;
}

function url(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, 'is not a valid URL');
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must start with ${protocols.map((p) => `${p}//`).join(' or ')}`);
  }
  return raw;
}

/** `turn:host[:port][?transport=udp|tcp]` (or turns:/stun:/stuns:), as RTCPeerConnection takes them. */
const ICE_URL = /^(?:turns?|stuns?):(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?(?:\?transport=(?:udp|tcp))?$/;

function iceUrls(env: Env, name: string, schemes: string[]): string[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return [];
  const urls = raw.split(',').map((u) => u.trim()).filter((u) => u !== '');
  for (const u of urls) {
    const scheme = u.slice(0, u.indexOf(':'));
    if (!schemes.includes(scheme) || !ICE_URL.test(u) || Number(/:(\d+)(?:\?|$)/.exec(u)?.[1] ?? 1) > 65535) {
      throw new ConfigError(name, `"${u.slice(0, 80)}" is not a ${schemes.map((s) => `${s}:`).join(' or ')} URL like ${schemes[0]}:turn.example.org:3478?transport=udp`);
    }
  }
  return urls;
}

function turnSettings(env: Env): Config['turn'] {
  const urls = iceUrls(env, 'TELESALUD_TURN_URLS', ['turn', 'turns']);
  const secret = env.TELESALUD_TURN_SECRET || undefined;
  if (urls.length === 0 && secret === undefined) return undefined;
  if (urls.length === 0) throw new ConfigError('TELESALUD_TURN_URLS', 'must be set together with TELESALUD_TURN_SECRET');
  if (secret === undefined) throw new ConfigError('TELESALUD_TURN_SECRET', 'must be set together with TELESALUD_TURN_URLS (coturn static-auth-secret)');
  if (secret.length < 16 || !/^[\x21-\x7e]+$/.test(secret)) throw new ConfigError('TELESALUD_TURN_SECRET', 'must be at least 16 printable characters without spaces');
  return { urls, secret };
}

function shieldSetting(env: Env): Config['shield'] {
  const raw = env.TELESALUD_SHIELD || 'on';
  if (raw !== 'on' && raw !== 'off') throw new ConfigError('TELESALUD_SHIELD', `must be "on" or "off" (off only for benchmarks and diagnosis), got "${raw.slice(0, 20)}"`);
  return raw;
}

function clinicTimeZoneSetting(env: Env): string {
  const raw = env.TELESALUD_CLINIC_TIME_ZONE?.trim();
  if (!raw) return DEFAULT_CLINIC_TIME_ZONE;
  const zone = canonicalTimeZone(raw);
  if (!zone) throw new ConfigError('TELESALUD_CLINIC_TIME_ZONE', `"${raw.slice(0, 40)}" is not an IANA time zone name like America/Mexico_City or Europe/Madrid`);
  return zone;
}

/** A bare address or `Name <address>`, on one line (a line break would inject headers). */
const MAIL_FROM = /^(?:[^<>\r\n"]{1,100} <[^\s@<>]{1,64}@[^\s@<>]{1,189}>|[^\s@<>]{1,64}@[^\s@<>]{1,189})$/;

function mailSettings(env: Env): Config['mail'] {
  const raw = env.TELESALUD_SMTP_URL?.trim();
  if (!raw) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    // Never the value itself: it may hold the relay's password.
    throw new ConfigError('TELESALUD_SMTP_URL', 'is not a valid URL like smtps://user:password@smtp.example.org:465');
  }
  if (parsed.protocol !== 'smtp:' && parsed.protocol !== 'smtps:') throw new ConfigError('TELESALUD_SMTP_URL', 'must start with smtps:// (TLS) or smtp:// (STARTTLS, required)');
  if (!parsed.hostname) throw new ConfigError('TELESALUD_SMTP_URL', 'names no host');
  if ((parsed.pathname && parsed.pathname !== '/') || parsed.search || parsed.hash) throw new ConfigError('TELESALUD_SMTP_URL', 'takes no path, query or fragment: smtps://user:password@host:port');
  const from = env.TELESALUD_MAIL_FROM?.trim();
  if (!from) throw new ConfigError('TELESALUD_MAIL_FROM', 'must be set together with TELESALUD_SMTP_URL (e.g. "Clínica <no-reply@clinica.example.org>")');
  if (!MAIL_FROM.test(from)) throw new ConfigError('TELESALUD_MAIL_FROM', 'must be an address or "Name <address>" on one line');
  const language = env.TELESALUD_MAIL_LANGUAGE?.trim() || 'es';
  if (language !== 'es' && language !== 'en') throw new ConfigError('TELESALUD_MAIL_LANGUAGE', `must be "es" or "en", got "${language.slice(0, 10)}"`);
  const caFile = env.TELESALUD_SMTP_CA_FILE || undefined;
  if (caFile && !existsSync(caFile)) throw new ConfigError('TELESALUD_SMTP_CA_FILE', 'names no file: give the PEM of the CA that signed the relay\'s certificate');
  return { smtpUrl: raw, from, caFile, defaultLanguage: language };
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function loadConfig(env: Env = process.env): Config {
  const port = integer(env, 'TELESALUD_PORT', 8443, 0, 65535);
  const host = env.TELESALUD_HOST || '0.0.0.0';
  const dataDir = path.resolve(env.TELESALUD_DATA_DIR || './data');

  const certFile = env.TELESALUD_TLS_CERT || undefined;
  const keyFile = env.TELESALUD_TLS_KEY || undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError(certFile ? 'TELESALUD_TLS_KEY' : 'TELESALUD_TLS_CERT', 'must be set together with its pair (certificate and key)');
  }

  let masterKey: Buffer | undefined;
  if (env.TELESALUD_MASTER_KEY) {
    masterKey = Buffer.from(env.TELESALUD_MASTER_KEY, 'base64');
    if (masterKey.length !== 32 || masterKey.toString('base64') !== env.TELESALUD_MASTER_KEY.trim()) {
      throw new ConfigError('TELESALUD_MASTER_KEY', 'must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)');
    }
  }
  const masterKeyFile = env.TELESALUD_MASTER_KEY_FILE || undefined;
  if (masterKey && masterKeyFile) {
    throw new ConfigError('TELESALUD_MASTER_KEY_FILE', 'set either TELESALUD_MASTER_KEY or TELESALUD_MASTER_KEY_FILE, not both');
  }

  const auditSigningKey = env.TELESALUD_AUDIT_SIGNING_KEY || undefined;
  if (auditSigningKey) {
    try {
      parseAuditSigningKey(auditSigningKey, 'TELESALUD_AUDIT_SIGNING_KEY');
    } catch {
      throw new ConfigError('TELESALUD_AUDIT_SIGNING_KEY', 'must be an Ed25519 private key in PKCS#8 PEM, base64-encoded');
    }
  }

  const adminToken = env.TELESALUD_ADMIN_TOKEN || undefined;
  if (adminToken !== undefined && (adminToken.length < 32 || !/^[\x21-\x7e]+$/.test(adminToken))) {
    throw new ConfigError('TELESALUD_ADMIN_TOKEN', 'must be at least 32 printable characters without spaces');
  }

  const logLevel = (env.TELESALUD_LOG_LEVEL || 'info') as Config['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError('TELESALUD_LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`);
  }

  const databaseUrl = url(env, 'TELESALUD_DATABASE_URL', ['postgres:', 'postgresql:']);
  // Farm mode: consultation presence and signaling across nodes (rediss:// for TLS).
  const redisUrl = url(env, 'TELESALUD_REDIS_URL', ['redis:', 'rediss:']);
  const redisPrefix = env.TELESALUD_REDIS_PREFIX || 'telesalud:';
  if (!/^[A-Za-z0-9:_.-]{1,64}$/.test(redisPrefix)) throw new ConfigError('TELESALUD_REDIS_PREFIX', 'must be 1 to 64 letters, digits or : _ . -');

  const publicUrl = url(env, 'TELESALUD_PUBLIC_URL', ['https:']) ?? `https://localhost:${port}`;

  const trustedProxies = env.TELESALUD_TRUSTED_PROXIES ? parseTrustedProxies(env.TELESALUD_TRUSTED_PROXIES) : NO_TRUSTED_PROXIES;
  if (typeof trustedProxies === 'string') throw new ConfigError('TELESALUD_TRUSTED_PROXIES', `${trustedProxies}: give addresses or CIDR ranges separated by commas`);

  return {
    host,
    port,
    publicUrl: publicUrl.replace(/\/+$/, ''),
    dataDir,
    tls: certFile && keyFile ? { certFile, keyFile } : undefined,
    databaseUrl,
    databasePoolSize: integer(env, 'TELESALUD_DB_POOL_SIZE', 10, 1, 200),
    redisUrl,
    redisPrefix,
    trustedProxies,
    masterKey,
    masterKeyFile,
    auditSigningKey,
    auditRetentionDays: env.TELESALUD_AUDIT_RETENTION_DAYS ? integer(env, 'TELESALUD_AUDIT_RETENTION_DAYS', 0, MIN_AUDIT_RETENTION_DAYS, 36_500) : undefined,
    auditCommit: oneOf(env, 'TELESALUD_AUDIT_COMMIT', AUDIT_COMMITS, 'behind'),
    adminToken,
    logLevel,
    logFile: env.TELESALUD_LOG_FILE || undefined,
    shutdownTimeoutMs: integer(env, 'TELESALUD_SHUTDOWN_TIMEOUT_MS', 10_000, 100, 600_000),
    // A farm sits behind a load balancer that checks /readyz (deploy: every second, down after 2): 3 s covers it.
    drainDelayMs: integer(env, 'TELESALUD_DRAIN_DELAY_MS', redisUrl ? 3_000 : 0, 0, 60_000),
    maxUploadBytes: integer(env, 'TELESALUD_MAX_UPLOAD_BYTES', 20 * 1024 * 1024, 1024, 512 * 1024 * 1024),
    turn: turnSettings(env),
    stunUrls: iceUrls(env, 'TELESALUD_STUN_URLS', ['stun', 'stuns']),
    clinicTimeZone: clinicTimeZoneSetting(env),
    shield: shieldSetting(env),
    mail: mailSettings(env),
    // Generous: a chart page fires a dozen requests at once and the schedule polls; abuse is far above.
    rateLimits: {
      perSource: integer(env, 'TELESALUD_RATE_LIMIT_PER_SOURCE', 600, 0, 1_000_000),
      perSourceSignedIn: integer(env, 'TELESALUD_RATE_LIMIT_PER_SOURCE_SIGNED_IN', 6000, 0, 10_000_000),
      perAccount: integer(env, 'TELESALUD_RATE_LIMIT_PER_ACCOUNT', 1200, 0, 1_000_000),
    },
  };
}
