import { generateKeyPairSync } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  AUDIT_PREVIOUS_PUBLIC_KEYS_FILE,
  AUDIT_PUBLIC_KEY_FILE,
  AUDIT_SIGNING_KEY_ENV,
  AUDIT_SIGNING_KEY_FILE,
  auditKeyId,
  loadAuditSigningKey,
  parseAuditPublicKeys,
} from '../audit/audit-signing-key.js';
import { replaceSecretFile } from '../config/secret-file.js';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { recordKeyEvent } from './key-rotation-audit.js';
import { KeyRotationRefused } from './master-key-rotation.js';

export interface AuditKeyRotation {
  previousKeyId: string;
  newKeyId: string;
  keyFile: string;
  previousPublicKeysFile: string;
}

/**
 * `telesalud keys rotate-audit`: a new Ed25519 signing key in the data dir. The old public key is
 * appended to `audit-signing.previous.pub` before the key file changes, so at no moment can a
 * checkpoint already signed stop verifying. Running nodes sign with the key they started with until
 * restarted; both keys verify.
 *
 * With `db`, the rotation is an audit entry (`audit-key-rotated`, key ids only), committed once
 * the new key is in place. Should that fail, the key is rotated all the same (both keys verify),
 * and the error says so: record it by hand.
 */
export async function rotateAuditSigningKey(opts: { envValue?: string | undefined; dataDir: string; db?: Kysely<Database> }): Promise<AuditKeyRotation> {
  if (opts.envValue) {
    throw new KeyRotationRefused(
      `the audit signing key comes from ${AUDIT_SIGNING_KEY_ENV}: to rotate it, append its public key (\`echo "$${AUDIT_SIGNING_KEY_ENV}" | base64 -d | openssl pkey -pubout\`) to ${path.join(opts.dataDir, AUDIT_PREVIOUS_PUBLIC_KEYS_FILE)} where \`audit verify\` runs, then give every node a new value (\`openssl genpkey -algorithm ed25519 | base64 -w0\`) and restart them`,
    );
  }
  const keyFile = path.join(opts.dataDir, AUDIT_SIGNING_KEY_FILE);
  const old = await loadAuditSigningKey({ dataDir: opts.dataDir, createIfMissing: false });
  if (!old) throw new KeyRotationRefused(`${keyFile} does not exist: start the service once (it creates the key), then rotate`);

  const previousFile = path.join(opts.dataDir, AUDIT_PREVIOUS_PUBLIC_KEYS_FILE);
  let previous = '';
  try {
    previous = await fs.readFile(previousFile, 'utf8');
    parseAuditPublicKeys(previous, previousFile); // refuse to build on a damaged file
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const oldPem = old.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  if (!previous.includes(oldPem.trim())) {
    const joined = `${previous}${previous === '' || previous.endsWith('\n') ? '' : '\n'}# ${old.keyId}, replaced ${new Date().toISOString()}\n${oldPem}`;
    // Public keys: readable by an auditor, but written as atomically as the secret ones.
    await replaceSecretFile(previousFile, joined, 0o644);
  }

  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  await replaceSecretFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await replaceSecretFile(path.join(opts.dataDir, AUDIT_PUBLIC_KEY_FILE), publicKey.export({ type: 'spki', format: 'pem' }), 0o644);
  const rotation = { previousKeyId: old.keyId, newKeyId: auditKeyId(publicKey), keyFile, previousPublicKeysFile: previousFile };
  if (opts.db) {
    await recordKeyEvent(opts.db, { action: 'audit-key-rotated', outcome: 'success', detail: { previousKeyId: rotation.previousKeyId, newKeyId: rotation.newKeyId } }).catch((err: Error) => {
      throw new Error(`the audit signing key was rotated to ${rotation.newKeyId} (previous ${rotation.previousKeyId}), but the rotation could not be recorded in the audit trail: ${err.message}`);
    });
  }
  return rotation;
}
