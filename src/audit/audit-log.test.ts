import { generateKeyPairSync } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORE_KINDS, startTestNode, testLogger, type TestNode } from '../test-support/test-node.js';
import { AuditLog, type AuditEntry } from './audit-log.js';
import { parseAuditSigningKey } from './audit-signing-key.js';
import { verifyAuditChain } from './verify-chain.js';

const key = parseAuditSigningKey(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'test key');

const read = (i: number, prefix = 'group-commit'): AuditEntry => ({ actor: 'Practitioner/dr-1', action: 'read', resourceType: 'Patient', resourceId: `p-${i}`, patient: `Patient/p-${i}`, outcome: 'success', requestId: `${prefix}-${i}` });

describe.each(STORE_KINDS)('audit group commit (%s)', (kind) => {
  let node: TestNode;

  beforeAll(async () => {
    node = await startTestNode(kind);
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('answers each read only once its entry is committed, keeps the chain dense under concurrent appends, and signs the tail at drain', async () => {
    const db = node.ctx.store.db;
    const audit = new AuditLog(db, testLogger(), { signingKey: key, checkpointEvery: 7, checkpointIntervalMs: 3_600_000 });
    const before = Number((await sql<{ n: number }>`select count(*)::int as n from audit_event`.execute(db)).rows[0]!.n);
    // Bursts that overlap: each caller checks, as soon as it is answered, that its entry is in the database.
    const missing: number[] = [];
    const total = 240;
    await Promise.all(
      Array.from({ length: 8 }, async (_, worker) => {
        for (let i = worker; i < total; i += 8) {
          await audit.record(read(i));
          const found = await sql<{ n: number }>`select count(*)::int as n from audit_event where request_id = ${`group-commit-${i}`}`.execute(db);
          if (found.rows[0]!.n !== 1) missing.push(i);
          if (i % 5 === 0) await new Promise((r) => setImmediate(r));
        }
      }),
    );
    expect(missing).toEqual([]);
    await audit.drain();

    const stats = (await sql<{ n: number; max: number }>`select count(*)::int as n, max(seq)::int as max from audit_event`.execute(db)).rows[0]!;
    expect(stats.n).toBe(before + total);
    expect(stats.max).toBe(stats.n);
    const report = await verifyAuditChain(db, { keys: [key] });
    expect(report.firstProblem).toBeUndefined();
    // A clean stop leaves no unsigned tail, whatever order the concurrent appends completed in.
    expect(report).toMatchObject({ ok: true, entries: stats.n, lastCheckpointSeq: stats.n });
  });

  it('drain waits for entries queued but not yet sent', async () => {
    const db = node.ctx.store.db;
    const audit = new AuditLog(db, testLogger(), { signingKey: key });
    const answered: number[] = [];
    for (let i = 0; i < 20; i++) void audit.record(read(i, 'queued')).then(() => answered.push(i));
    await audit.drain();
    expect(answered).toHaveLength(20);
    const found = await sql<{ n: number }>`select count(*)::int as n from audit_event where request_id like 'queued-%'`.execute(db);
    expect(found.rows[0]!.n).toBe(20);
  });

  it('stores exactly the values the chain hashes, whatever characters they hold', async () => {
    const db = node.ctx.store.db;
    const audit = new AuditLog(db, testLogger(), { signingKey: key });
    // Line breaks, quotes, backslashes, a line separator, astral characters, numbers, nesting and
    // absent fields: the database reads each column back out of the entry's canonical text.
    const awkward: AuditEntry = {
      actor: 'Practitioner/"o\\brien"',
      action: 'read',
      resourceType: 'Observation',
      resourceId: 'obs-1',
      patient: 'Patient/núñez-ñ',
      outcome: 'success',
      requestId: 'awkward-1',
      detail: { reason: 'line one\nline two\r\ttab "quoted" \\ back \u2028 sep 🩺', nested: { z: [1, 2.5, -0, 1e21, null, true], a: 'ä' }, count: 3 },
    };
    const bare: AuditEntry = { actor: 'system:test', action: 'sign-in', outcome: 'failed', requestId: 'awkward-2' };
    await Promise.all([audit.record(awkward), audit.record(bare)]);
    await audit.drain();
    const rows = (await sql<Record<string, unknown>>`select actor, action, resource_type, resource_id, patient, outcome, source, request_id, detail from audit_event where request_id like 'awkward-%' order by request_id`.execute(db)).rows;
    expect(rows).toEqual([
      { actor: awkward.actor, action: 'read', resource_type: 'Observation', resource_id: 'obs-1', patient: awkward.patient, outcome: 'success', source: null, request_id: 'awkward-1', detail: JSON.parse(JSON.stringify(awkward.detail)) },
      { actor: 'system:test', action: 'sign-in', resource_type: null, resource_id: null, patient: null, outcome: 'failed', source: null, request_id: 'awkward-2', detail: null },
    ]);
    expect((await verifyAuditChain(db, { keys: [key] })).firstProblem).toBeUndefined();
  });
});
