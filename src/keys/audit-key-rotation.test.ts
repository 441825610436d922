import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../audit/audit-log.js';
import { AUDIT_PREVIOUS_PUBLIC_KEYS_FILE, AUDIT_PUBLIC_KEY_FILE, loadAuditSigningKey, loadAuditVerifyingKeys, parseAuditPublicKeys } from '../audit/audit-signing-key.js';
import { verifyAuditChain } from '../audit/verify-chain.js';
import { startTestNode, STORE_KINDS, testLogger, type TestNode } from '../test-support/test-node.js';
import { rotateAuditSigningKey } from './audit-key-rotation.js';
import { KeyRotationRefused } from './master-key-rotation.js';

describe.each(STORE_KINDS)('telesalud keys rotate-audit (%s)', (kind) => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startTestNode(kind);
  });
  afterAll(async () => {
    await node?.stop();
  });

  async function appendSigned(log: AuditLog, n: number): Promise<void> {
    for (let i = 0; i < n; i++) await log.record({ actor: 'system', action: 'read', resourceType: 'Patient', resourceId: `p${i}`, outcome: 'success' });
    await log.checkpointIfUncovered();
    await log.drain();
  }

  it('verifies a chain whose checkpoints were signed by the old key before the rotation and the new key after', async () => {
    const dataDir = node.config.dataDir;
    const oldKey = (await loadAuditSigningKey({ dataDir, createIfMissing: false }))!;
    await appendSigned(new AuditLog(node.ctx.store.db, testLogger(), { signingKey: oldKey, checkpointEvery: 5, checkpointIntervalMs: 3_600_000 }), 12);

    const rotation = await rotateAuditSigningKey({ dataDir });
    expect(rotation.previousKeyId).toBe(oldKey.keyId);
    expect(rotation.newKeyId).not.toBe(oldKey.keyId);
    const newKey = (await loadAuditSigningKey({ dataDir, createIfMissing: false }))!;
    expect(newKey.keyId).toBe(rotation.newKeyId);
    expect((await fs.stat(rotation.keyFile)).mode & 0o777).toBe(0o600);
    expect(parseAuditPublicKeys(await fs.readFile(path.join(dataDir, AUDIT_PUBLIC_KEY_FILE), 'utf8'), 'pub').map((k) => k.keyId)).toEqual([newKey.keyId]);
    expect(parseAuditPublicKeys(await fs.readFile(path.join(dataDir, AUDIT_PREVIOUS_PUBLIC_KEYS_FILE), 'utf8'), 'prev').map((k) => k.keyId)).toEqual([oldKey.keyId]);

    await appendSigned(new AuditLog(node.ctx.store.db, testLogger(), { signingKey: newKey, checkpointEvery: 5, checkpointIntervalMs: 3_600_000 }), 12);
    const signers = await node.ctx.store.db.selectFrom('audit_checkpoint').select('key_id').distinct().execute();
    expect(signers.map((s) => s.key_id).sort()).toEqual([oldKey.keyId, newKey.keyId].sort());

    const keys = await loadAuditVerifyingKeys({ dataDir });
    expect(keys.map((k) => k.keyId).sort()).toEqual([oldKey.keyId, newKey.keyId].sort());
    const report = await verifyAuditChain(node.ctx.store.db, { keys });
    expect(report.ok).toBe(true);
    expect(report.checkpoints).toBeGreaterThanOrEqual(4);

    // Without the old public key the old checkpoints are rightly untrusted.
    const onlyNew = await verifyAuditChain(node.ctx.store.db, { keys: [newKey] });
    expect(onlyNew.ok).toBe(false);
    expect(onlyNew.firstProblem).toMatchObject({ kind: 'bad-checkpoint' });
    expect(onlyNew.firstProblem!.detail).toContain(oldKey.keyId);

    // A second rotation keeps both earlier keys.
    await rotateAuditSigningKey({ dataDir });
    expect((await loadAuditVerifyingKeys({ dataDir })).length).toBe(3);
    expect((await verifyAuditChain(node.ctx.store.db, { keys: await loadAuditVerifyingKeys({ dataDir }) })).ok).toBe(true);
  });

  it('explains how to rotate a key given in TELESALUD_AUDIT_SIGNING_KEY, changing nothing', async () => {
    const before = await fs.readdir(node.config.dataDir);
    const err = await rotateAuditSigningKey({ envValue: 'anything', dataDir: node.config.dataDir }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(KeyRotationRefused);
    expect((err as Error).message).toMatch(/TELESALUD_AUDIT_SIGNING_KEY.*audit-signing\.previous\.pub.*restart/);
    expect((err as Error).message).not.toContain('\n');
    expect(await fs.readdir(node.config.dataDir)).toEqual(before);
  });
});
