import path from 'node:path';
import { parseAuditSigningKey } from '../audit/audit-signing-key.js';

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
  redisUrl: string | undefined;
  /** base64 of 32 bytes, given directly (a secret manager can inject it). */
  masterKey: Buffer | undefined;
  masterKeyFile: string | undefined;
  /** Ed25519 PKCS#8 PEM (base64) that signs audit checkpoints; farm nodes share it. Undefined: a key file in the data dir. */
  auditSigningKey: string | undefined;
  /** Bootstrap admin token until identity lands; undefined means generated into the data dir. */
  adminToken: string | undefined;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Append logs to this file instead of stdout. */
  logFile: string | undefined;
  shutdownTimeoutMs: number;
  maxUploadBytes: number;
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
  const redisUrl = url(env, 'TELESALUD_REDIS_URL', ['redis:', 'rediss:']);
  if (redisUrl) {
    // The Redis bus arrives with farm mode; refusing is better than silently running single-node.
    throw new ConfigError('TELESALUD_REDIS_URL', 'farm mode over Redis is not available in this version; unset it to run a single node');
  }

  const publicUrl = url(env, 'TELESALUD_PUBLIC_URL', ['https:']) ?? `https://localhost:${port}`;

  return {
    host,
    port,
    publicUrl: publicUrl.replace(/\/+$/, ''),
    dataDir,
    tls: certFile && keyFile ? { certFile, keyFile } : undefined,
    databaseUrl,
    databasePoolSize: integer(env, 'TELESALUD_DB_POOL_SIZE', 10, 1, 200),
    redisUrl,
    masterKey,
    masterKeyFile,
    auditSigningKey,
    adminToken,
    logLevel,
    logFile: env.TELESALUD_LOG_FILE || undefined,
    shutdownTimeoutMs: integer(env, 'TELESALUD_SHUTDOWN_TIMEOUT_MS', 10_000, 100, 600_000),
    maxUploadBytes: integer(env, 'TELESALUD_MAX_UPLOAD_BYTES', 20 * 1024 * 1024, 1024, 512 * 1024 * 1024),
  };
}
