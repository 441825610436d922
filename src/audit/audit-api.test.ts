import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import { create, heartRate, patient, search } from '../test-support/fixtures.js';
import { AuditLog } from './audit-log.js';
import { loadAuditSigningKey, type AuditSigningKey } from './audit-signing-key.js';
import { verifyAuditChain } from './verify-chain.js';

// The chain as the API writes it: every FHIR interaction through the real HTTP stack.
describe.each(STORE_KINDS)('audit chain from API traffic (%s)', (kind) => {
  let node: TestNode;
  let key: AuditSigningKey;
  let keyed: AuditLog;

  beforeAll(async () => {
    node = await startTestNode(kind);
    key = (await loadAuditSigningKey({ dataDir: node.config.dataDir, createIfMissing: true }))!;
  });
  afterAll(async () => {
    await keyed?.drain();
    await node?.stop();
  });

  async function traffic(round: number): Promise<void> {
    const p = await create(node, patient(`Cadena${round}`, ['Auditada']));
    const url = `/fhir/R4/Patient/${p.id}`;
    await Promise.all(Array.from({ length: 6 }, (_, i) => create(node, heartRate(p.id, 60 + i, `2025-03-0${1 + (i % 9)}T10:00:00Z`))));
    const reads = await Promise.all(Array.from({ length: 8 }, () => node.request({ method: 'GET', url })));
    expect(reads.every((r) => r.statusCode === 200)).toBe(true);
    expect((await search(node, `Observation?patient=${p.id}`)).entry).toHaveLength(6);
    expect((await node.request({ method: 'PUT', url, payload: { ...p, gender: 'other' }, headers: { 'if-match': 'W/"1"' } })).statusCode).toBe(200);
    expect((await node.request({ method: 'GET', url: `${url}/_history` })).statusCode).toBe(200);
    expect((await node.request({ method: 'GET', url: `/fhir/R4/Patient/${p.id.slice(0, -1)}${p.id.endsWith('0') ? '1' : '0'}` })).statusCode).toBe(404);
  }

  it('verifies, dense and linked, with the node as it starts (and with checkpoints once it signs)', async () => {
    await traffic(1);
    await node.ctx.audit.drain();
    const before = await verifyAuditChain(node.ctx.store.db, { keys: [key], pageSize: 9 });
    expect(before).toMatchObject({ ok: true });
    expect(before.entries).toBeGreaterThanOrEqual(18);

    // A signing node, as serve runs it once the key is wired in (see audit-signing-key.ts).
    keyed = new AuditLog(node.ctx.store.db, node.ctx.logger, { signingKey: key, checkpointEvery: 10 });
    node.ctx.audit = keyed;
    await traffic(2);
    await traffic(3);
    await keyed.drain();
    const rows = (await sql<{ n: number; max: number }>`select count(*)::int as n, max(seq)::int as max from audit_event`.execute(node.ctx.store.db)).rows[0]!;
    expect(rows.n).toBe(rows.max);
    const report = await verifyAuditChain(node.ctx.store.db, { keys: [key], pageSize: 9 });
    expect(report).toMatchObject({ ok: true, entries: rows.n, lastCheckpointSeq: rows.n });
    expect(report.checkpoints).toBeGreaterThanOrEqual(Math.floor((rows.n - before.entries) / 10));
  });

  it('keeps naming the first altered entry while traffic goes on appending', async () => {
    const target = Number((await sql<{ s: number }>`select min(seq) as s from audit_event where action = 'read'`.execute(node.ctx.store.db)).rows[0]!.s);
    await node.ctx.store.db.transaction().execute(async (tx) => {
      await sql`alter table audit_event disable trigger audit_event_append_only`.execute(tx);
      await sql`update audit_event set outcome = 'denied' where seq = ${target}`.execute(tx);
      await sql`alter table audit_event enable trigger audit_event_append_only`.execute(tx);
    });
    await traffic(4);
    await keyed.drain();
    expect((await verifyAuditChain(node.ctx.store.db, { keys: [key] })).firstProblem).toMatchObject({ seq: target, kind: 'altered' });
  });
});
