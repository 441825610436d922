import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAuditVerifyingKeys } from '../audit/audit-signing-key.js';
import { verifyAuditChain } from '../audit/verify-chain.js';
import { loadKeyRing } from '../documents/key-ring.js';
import { create, patient } from '../test-support/fixtures.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import { rotateAuditSigningKey } from './audit-key-rotation.js';
import { KeyRotationRefused, retireUnusedKeys, rotateMasterKey } from './master-key-rotation.js';

describe.each(STORE_KINDS)('key rotation is audited (%s)', (kind) => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startTestNode(kind);
    const p = await create(node, patient('Auditada', ['Rotación']));
    for (let i = 0; i < 3; i++) {
      const res = await node.request({ method: 'POST', url: `/api/documents?patient=${p.id}&title=Informe`, payload: Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(300), Buffer.from('\n%%EOF\n')]), headers: { 'content-type': 'application/pdf' } });
      expect(res.statusCode).toBe(201);
    }
  });
  afterAll(async () => {
    await node?.stop();
  });

  const store = () => ({ db: node.ctx.store.db, kind: node.ctx.store.kind });
  const keyEvents = async () =>
    (
      await node.ctx.store.db
        .selectFrom('audit_event')
        .select(['seq', 'actor', 'action', 'outcome', 'source', 'detail'])
        .where('action', 'in', ['key-rotation-started', 'key-rotation-finished', 'key-retired', 'audit-key-rotated'])
        .orderBy('seq')
        .execute()
    ).map((e) => ({ ...e, detail: e.detail as Record<string, any> }));

  it('records start and finish of a rotation, an interrupted one as not done, refused and done retirements, and an audit key rotation: ids only', async () => {
    const keyFile = path.join(node.config.dataDir, 'master.key');
    const ring = await loadKeyRing({ dataDir: node.config.dataDir, createIfMissing: false });
    const firstKek = ring.current().id;

    // Interrupted at once (Ctrl-C before the first batch): started, then finished as "failed", interrupted.
    const stopped = new AbortController();
    stopped.abort();
    const interrupted = await rotateMasterKey(store(), ring, { signal: stopped.signal, batchSize: 1 });
    expect(interrupted.stopped).toBe(true);
    let events = await keyEvents();
    expect(events.map((e) => [e.action, e.outcome])).toEqual([
      ['key-rotation-started', 'success'],
      ['key-rotation-finished', 'failed'],
    ]);
    expect(events[0]).toMatchObject({ actor: 'system:keys-rotate', source: 'cli', detail: { previousKekId: firstKek, newKekId: interrupted.newKekId, toRewrap: { documents: 3 } } });
    expect(events[0]!.detail.host).toEqual(expect.any(String));
    expect(events[1]!.detail).toMatchObject({ targetKekId: interrupted.newKekId, interrupted: true, remaining: { documents: 3 } });

    // Retiring now would lose keys still in use: refused, and that is on record too.
    await expect(retireUnusedKeys(store(), ring)).rejects.toBeInstanceOf(KeyRotationRefused);
    events = await keyEvents();
    expect(events.at(-1)).toMatchObject({ action: 'key-retired', outcome: 'denied', actor: 'system:keys-retire', detail: { notRetired: [firstKek], pending: { documents: 3 } } });

    // The resumed rotation finishes; the old key is retired.
    const resumed = await rotateMasterKey(store(), ring, { resume: true });
    expect(resumed.remaining).toEqual({ documents: 0, totpSecrets: 0 });
    const retired = await retireUnusedKeys(store(), ring);
    expect(retired.retired).toEqual([firstKek]);
    events = await keyEvents();
    expect(events.slice(-3).map((e) => [e.action, e.outcome])).toEqual([
      ['key-rotation-started', 'success'],
      ['key-rotation-finished', 'success'],
      ['key-retired', 'success'],
    ]);
    expect(events.at(-3)!.detail).toMatchObject({ finishing: true, previousKekId: interrupted.newKekId });
    expect(events.at(-2)!.detail).toMatchObject({ targetKekId: interrupted.newKekId, rewrapped: { documents: 3 }, interrupted: false });
    expect(events.at(-1)!.detail).toMatchObject({ retired: [firstKek], currentKekId: interrupted.newKekId });

    // The audit signing key.
    const rotation = await rotateAuditSigningKey({ dataDir: node.config.dataDir, db: node.ctx.store.db });
    events = await keyEvents();
    expect(events.at(-1)).toMatchObject({ action: 'audit-key-rotated', outcome: 'success', actor: 'system:keys-rotate-audit', detail: { previousKeyId: rotation.previousKeyId, newKeyId: rotation.newKeyId } });

    // Never key material: no line of the key files appears in any entry.
    const secrets = [
      ...(await fs.readFile(keyFile, 'utf8')).split('\n'),
      ...(await fs.readFile(rotation.keyFile, 'utf8')).split('\n'),
    ].filter((l) => l.trim().length > 20 && !l.startsWith('#') && !l.startsWith('-----'));
    const stored = JSON.stringify(events);
    for (const secret of secrets) expect(stored).not.toContain(secret.trim());

    // The entries are links of the one chain, which still verifies.
    await node.ctx.audit.record({ actor: 'system', action: 'read', outcome: 'success' });
    await node.ctx.audit.drain();
    const report = await verifyAuditChain(node.ctx.store.db, { keys: await loadAuditVerifyingKeys({ dataDir: node.config.dataDir }) });
    expect(report.ok, JSON.stringify(report.firstProblem)).toBe(true);
  });
});
