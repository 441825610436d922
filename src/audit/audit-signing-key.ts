import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createSecretFileOnce, readSecretFile } from '../config/secret-file.js';

/**
 * The Ed25519 key that signs audit checkpoints. Whoever holds it can vouch for a chain, so
 * it lives outside the database: in `TELESALUD_AUDIT_SIGNING_KEY` (base64 of a PKCS#8 PEM,
 * e.g. `openssl genpkey -algorithm ed25519 | base64 -w0`) or in `<data dir>/audit-signing.key`
 * (PKCS#8 PEM, mode 0600), created on first start when neither exists.
 *
 * Farm nodes must share one key: give every node the same TELESALUD_AUDIT_SIGNING_KEY. A node
 * with a key of its own signs checkpoints that `audit verify` (run with the shared key) reports
 * as signed by an unknown key, and the node logs an error when it notices.
 *
 * Verifying needs only the public key: `audit-signing.pub` is written beside a generated key
 * so an auditor can check the chain without the power to sign one.
 */
export const AUDIT_SIGNING_KEY_ENV = 'TELESALUD_AUDIT_SIGNING_KEY';
export const AUDIT_SIGNING_KEY_FILE = 'audit-signing.key';
export const AUDIT_PUBLIC_KEY_FILE = 'audit-signing.pub';
/** Public keys of earlier signing keys (`telesalud keys rotate-audit` appends to it): checkpoints they signed still verify. */
export const AUDIT_PREVIOUS_PUBLIC_KEYS_FILE = 'audit-signing.previous.pub';

export interface AuditVerifyingKey {
  /** First 16 hex chars of SHA-256 of the public key (SPKI DER): names the key in checkpoint rows. */
  keyId: string;
  publicKey: KeyObject;
}

export interface AuditSigningKey extends AuditVerifyingKey {
  privateKey: KeyObject;
}

export function auditKeyId(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

/** PEM text, base64 of PEM text, or base64 of PKCS#8 DER. Errors never quote the value. */
export function parseAuditSigningKey(value: string, where: string): AuditSigningKey {
  const text = value.trim();
  let privateKey: KeyObject;
  try {
    if (text.startsWith('-----BEGIN')) {
      privateKey = createPrivateKey({ key: text, format: 'pem' });
    } else {
      const decoded = Buffer.from(text, 'base64');
      const asText = decoded.toString('utf8');
      privateKey = asText.startsWith('-----BEGIN')
        ? createPrivateKey({ key: asText, format: 'pem' })
        : createPrivateKey({ key: decoded, format: 'der', type: 'pkcs8' });
    }
  } catch {
    throw new Error(`${where}: not a PKCS#8 private key (expected base64 of the PEM from \`openssl genpkey -algorithm ed25519\`)`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new Error(`${where}: the audit signing key must be Ed25519, got ${privateKey.asymmetricKeyType ?? 'unknown'}`);
  }
  const publicKey = createPublicKey(privateKey);
  return { keyId: auditKeyId(publicKey), privateKey, publicKey };
}

export function parseAuditPublicKey(value: string, where: string): AuditVerifyingKey {
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: value.trim(), format: 'pem' });
  } catch {
    throw new Error(`${where}: not a PEM public key`);
  }
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new Error(`${where}: the audit key must be Ed25519, got ${publicKey.asymmetricKeyType ?? 'unknown'}`);
  return { keyId: auditKeyId(publicKey), publicKey };
}

/** Every PEM public key in `text` (a file may hold several, one after the other). */
export function parseAuditPublicKeys(text: string, where: string): AuditVerifyingKey[] {
  const blocks = text.match(/-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${where}: not a PEM public key`);
  return blocks.map((block, i) => parseAuditPublicKey(block, blocks.length > 1 ? `${where} (key ${i + 1})` : where));
}

/**
 * The keys whose checkpoint signatures `audit verify` trusts: the signing key's public half (from
 * TELESALUD_AUDIT_SIGNING_KEY or the data dir), `audit-signing.pub`, and every earlier key kept in
 * `audit-signing.previous.pub` — so a chain signed before and after a rotation verifies whole.
 */
export async function loadAuditVerifyingKeys(opts: { envValue?: string | undefined; dataDir: string }): Promise<AuditVerifyingKey[]> {
  const keys = new Map<string, AuditVerifyingKey>();
  const signing = await loadAuditSigningKey({ envValue: opts.envValue, dataDir: opts.dataDir, createIfMissing: false });
  if (signing) keys.set(signing.keyId, { keyId: signing.keyId, publicKey: signing.publicKey });
  for (const name of [AUDIT_PUBLIC_KEY_FILE, AUDIT_PREVIOUS_PUBLIC_KEYS_FILE]) {
    const file = path.join(opts.dataDir, name);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    // audit-signing.pub is the current key's public half: already there when the signing key is.
    if (name === AUDIT_PUBLIC_KEY_FILE && signing) continue;
    for (const key of parseAuditPublicKeys(text, file)) keys.set(key.keyId, key);
  }
  return [...keys.values()];
}

export interface LoadAuditSigningKeyOptions {
  /** The value of TELESALUD_AUDIT_SIGNING_KEY, if set: takes precedence over the file. */
  envValue?: string | undefined;
  dataDir: string;
  /** Generate `<dataDir>/audit-signing.key` when there is none (a node starting); `audit verify` never does. */
  createIfMissing: boolean;
}

/** The configured key, or undefined when there is none and `createIfMissing` is false. */
export async function loadAuditSigningKey(opts: LoadAuditSigningKeyOptions): Promise<AuditSigningKey | undefined> {
  if (opts.envValue) return parseAuditSigningKey(opts.envValue, AUDIT_SIGNING_KEY_ENV);
  const file = path.join(opts.dataDir, AUDIT_SIGNING_KEY_FILE);
  try {
    return await readKeyFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    if (!opts.createIfMissing) return undefined;
  }
  await createKeyFile(opts.dataDir, file);
  return readKeyFile(file);
}

async function readKeyFile(file: string): Promise<AuditSigningKey> {
  return parseAuditSigningKey(await readSecretFile(file, 'audit signing key'), file);
}

async function createKeyFile(dataDir: string, file: string): Promise<void> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  if (await createSecretFileOnce(dataDir, file, privateKey.export({ type: 'pkcs8', format: 'pem' }))) {
    // The public half is for auditors: `audit verify --public-key` needs no signing key.
    await fs.writeFile(path.join(dataDir, AUDIT_PUBLIC_KEY_FILE), publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 });
  }
}
