import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../config/config.js';
import type { Database } from '../db/schema.js';
import { STORE_KINDS, startTestNode, testLogger, type TestNode } from '../test-support/test-node.js';
import { AuditLog, QUEUED_FLUSH_MS, QUEUED_LIMIT_MS, type AuditEntry } from './audit-log.js';
import { verifyAuditChain } from './verify-chain.js';

/**
 * A serving node's default (TELESALUD_AUDIT_COMMIT=behind): an audited read is answered once its
 * entry is queued, the entry's append starts within QUEUED_FLUSH_MS in a batch with its neighbours, and a
 * failing database neither loses answered entries nor lets further accesses through unaudited.
 */
const read = (tag: string, i: number): AuditEntry => ({ actor: 'Practitioner/dr-behind', action: 'read', resourceType: 'Patient', resourceId: `p-${i}`, patient: `Patient/p-${i}`, outcome: 'success', requestId: `${tag}-${i}` });

async function count(db: Kysely<Database>, tag: string): Promise<number> {
  return (await sql<{ n: number }>`select count(*)::int as n from audit_event where request_id like ${`${tag}-%`}`.execute(db)).rows[0]!.n;
}

async function waitFor(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return check();
}

describe('TELESALUD_AUDIT_COMMIT', () => {
  it('is `behind` on a serving node unless set, and refuses anything but behind or before-answer', () => {
    expect(loadConfig({}).auditCommit).toBe('behind');
    expect(loadConfig({ TELESALUD_AUDIT_COMMIT: 'before-answer' }).auditCommit).toBe('before-answer');
    expect(() => loadConfig({ TELESALUD_AUDIT_COMMIT: 'never' })).toThrow(/TELESALUD_AUDIT_COMMIT.*behind, before-answer/);
  });
});

describe.each(STORE_KINDS)('audit entries committed behind the answer (%s)', (kind) => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startTestNode(kind);
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('answers before the commit, commits a burst in a few batches, and keeps the chain whole', async () => {
    const db = node.ctx.store.db;
    const audit = new AuditLog(db, testLogger(), { commit: 'behind' });
    await Promise.all(Array.from({ length: 300 }, (_, i) => audit.record(read('burst', i))));
    // Answered: the entries are queued, not all committed yet.
    expect(audit.backlog().entries).toBeGreaterThan(0);
    expect(await waitFor(async () => (await count(db, 'burst')) === 300, 2_000)).toBe(true);
    expect(audit.backlog()).toMatchObject({ entries: 0, oldestSeconds: 0 });
    // One append stamps its entries with one time: a burst of 300 takes a handful of round trips, not 300.
    const appends = (await sql<{ n: number }>`select count(distinct recorded)::int as n from audit_event where request_id like 'burst-%'`.execute(db)).rows[0]!.n;
    expect(appends).toBeLessThanOrEqual(3);
    expect((await verifyAuditChain(db, { keys: [] })).firstProblem).toBeUndefined();
  });

  it('gathers entries that trickle in for up to QUEUED_FLUSH_MS, one append at a time', async () => {
    const db = node.ctx.store.db;
    const audit = new AuditLog(db, testLogger(), { commit: 'behind' });
    const started = Date.now();
    for (let i = 0; i < 40; i++) {
      await audit.record(read('trickle', i));
      await new Promise((r) => setTimeout(r, 2));
    }
    const elapsed = Date.now() - started;
    expect(await waitFor(async () => (await count(db, 'trickle')) === 40, 2_000)).toBe(true);
    const appends = (await sql<{ n: number }>`select count(distinct recorded)::int as n from audit_event where request_id like 'trickle-%'`.execute(db)).rows[0]!.n;
    // An append per window of QUEUED_FLUSH_MS (plus the last one after the loop), not one per entry or per few.
    expect(appends).toBeLessThanOrEqual(Math.ceil(elapsed / QUEUED_FLUSH_MS) + 1);
    expect(appends).toBeLessThan(40);
  });

  it('settled() waits for the entries recorded before it, so a reader of the trail sees them', async () => {
    const db = node.ctx.store.db;
    const audit = new AuditLog(db, testLogger(), { commit: 'behind' });
    for (let i = 0; i < 25; i++) await audit.record(read('settle', i));
    await audit.settled();
    expect(await count(db, 'settle')).toBe(25);
  });

  it('keeps answered entries through a database failure, refuses new accesses meanwhile, and writes them once it recovers', async () => {
    const db = node.ctx.store.db;
    const audit = new AuditLog(db, testLogger(), { commit: 'behind' });
    await sql`alter function audit_append_batch rename to audit_append_batch_unavailable`.execute(db);
    let renamedBack = false;
    try {
      // Answered while the queue is healthy; its append then fails.
      await audit.record(read('outage', 0));
      expect(await waitFor(async () => audit.backlog().failedAppends > 0, 2_000)).toBe(true);
      expect(audit.unwritten().map((u) => u.entry.requestId)).toEqual(['outage-0']);
      // While appends fail, an access waits for its own commit, and fails with it: it does not happen unaudited.
      await expect(audit.record(read('outage', 1))).rejects.toThrow(/audit_append_batch/);
      // Past a second of outage, the entry keeps the time of the access as well as that of its append.
      await new Promise((r) => setTimeout(r, QUEUED_LIMIT_MS + 100));
      await sql`alter function audit_append_batch_unavailable rename to audit_append_batch`.execute(db);
      renamedBack = true;
      expect(await waitFor(async () => (await count(db, 'outage')) === 1, 5_000)).toBe(true);
      const row = await db.selectFrom('audit_event').select(['request_id', 'detail', 'recorded']).where('request_id', 'like', 'outage-%').executeTakeFirstOrThrow();
      expect(row.request_id).toBe('outage-0');
      const accessedAt = Date.parse((row.detail as { accessedAt: string }).accessedAt);
      expect(new Date(row.recorded).getTime() - accessedAt).toBeGreaterThan(QUEUED_LIMIT_MS);
      // Recovered: answered behind again.
      await audit.record(read('after', 0));
      expect(audit.backlog().entries).toBe(1);
      await audit.drain();
      expect(await count(db, 'after')).toBe(1);
      expect((await verifyAuditChain(db, { keys: [] })).firstProblem).toBeUndefined();
    } finally {
      if (!renamedBack) await sql`alter function audit_append_batch_unavailable rename to audit_append_batch`.execute(db);
    }
  });

  it('a node answers a FHIR read before its entry commits and has it in the trail right after', async () => {
    const behind = await startTestNode(kind, { TELESALUD_AUDIT_COMMIT: 'behind' });
    try {
      expect(behind.config.auditCommit).toBe('behind');
      const created = await behind.request({ method: 'POST', url: '/fhir/R4/Patient', payload: { resourceType: 'Patient', name: [{ family: 'Behind', given: ['Queued'] }] } });
      const id = (created.json() as { id: string }).id;
      const res = await behind.request({ method: 'GET', url: `/fhir/R4/Patient/${id}` });
      expect(res.statusCode).toBe(200);
      await behind.ctx.audit.settled();
      const rows = await behind.ctx.store.db.selectFrom('audit_event').select(['action', 'outcome']).where('resource_id', '=', id).orderBy('seq').execute();
      expect(rows).toEqual([
        { action: 'create', outcome: 'success' },
        { action: 'read', outcome: 'success' },
      ]);
    } finally {
      await behind.stop();
    }
  });
});
