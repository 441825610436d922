import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql, type Kysely, type Transaction } from 'kysely';
import Fastify from 'fastify';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../config/config.js';
import { bytes } from '../db/bytes.js';
import { openPglite, openPostgres, type Store } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import type { Database } from '../db/schema.js';
import { adminQuery, databaseUrl } from '../test-support/global-setup.js';
import { pgliteTemplateDir, pgTemplateDatabase } from '../test-support/paths.js';
import { STORE_KINDS, testLogger, type StoreKind } from '../test-support/test-node.js';
import { chainedFieldsOf, chainHash } from './audit-chain.js';
import { AuditLog } from './audit-log.js';
import { scheduleAuditRetention } from './audit-retention-schedule.js';
import { applyAuditRetention, AuditRetentionRefused, checkHorizon, planAuditRetention, retentionHorizon } from './audit-retention.js';
import { parseAuditSigningKey, type AuditSigningKey } from './audit-signing-key.js';
import { verifyAuditChain } from './verify-chain.js';

// Only the store and the audit log: retention needs nothing else of a node.
async function openTestStore(kind: StoreKind): Promise<{ store: Store; destroy(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-retention-'));
  if (kind === 'pglite') {
    await cp(pgliteTemplateDir(), path.join(dir, 'pg'), { recursive: true });
    const store = await openPglite(path.join(dir, 'pg'));
    return { store, destroy: async () => { await store.close().catch(() => undefined); await rm(dir, { recursive: true, force: true }); } };
  }
  const base = process.env.TELESALUD_TEST_DATABASE_URL!;
  const name = `telesalud_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(base, `create database ${name} template ${pgTemplateDatabase()}`);
  const store = openPostgres(databaseUrl(base, name), 4);
  return {
    store,
    destroy: async () => {
      await store.close().catch(() => undefined);
      await adminQuery(base, `drop database if exists ${name} with (force)`);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function newKey(): AuditSigningKey {
  return parseAuditSigningKey(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'test key');
}

/** One entry per append, so checkpoints land at multiples of 5; the drain signs the tail (as a node's clean stop does). */
async function write(audit: AuditLog, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await audit.record({ actor: 'Practitioner/dr-1', action: 'read', resourceType: 'Observation', resourceId: `obs-${i}`, patient: `Patient/p-${i % 3}`, outcome: 'success', requestId: `req-${i}` });
  }
  await audit.drain();
}

/** A horizon strictly after every entry written so far (recorded has millisecond precision). */
async function horizonNow(): Promise<Date> {
  const at = new Date();
  while (Date.now() <= at.getTime() + 1) await new Promise((resolve) => setTimeout(resolve, 2));
  return at;
}

/** Someone with the owner's or a superuser's powers: guards off, edit, guards on. */
async function asSuperuser(db: Kysely<Database>, edit: (tx: Transaction<Database>) => Promise<unknown>): Promise<void> {
  await db.transaction().execute(async (tx) => {
    for (const t of ['audit_event', 'audit_checkpoint', 'audit_retention']) await sql`alter table ${sql.id(t)} disable trigger ${sql.id(`${t}_append_only`)}`.execute(tx);
    await edit(tx);
    for (const t of ['audit_event', 'audit_checkpoint', 'audit_retention']) await sql`alter table ${sql.id(t)} enable trigger ${sql.id(`${t}_append_only`)}`.execute(tx);
  });
}

const seqs = async (db: Kysely<Database>, table: 'audit_event' | 'audit_checkpoint') => (await db.selectFrom(table).select('seq').orderBy('seq').execute()).map((r) => Number(r.seq));

describe.each(STORE_KINDS)('audit retention: checkpoint and truncate (%s)', (kind) => {
  let t: Awaited<ReturnType<typeof openTestStore>>;
  let key: AuditSigningKey;
  let audit: AuditLog;
  const run = (before: Date, archiveFile?: string) =>
    applyAuditRetention(
      { db: t.store.db, audit, signingKey: key, verifyingKeys: [key] },
      { actor: 'system:audit-truncate', source: 'test', requestId: 'retention-test', before, ...(archiveFile ? { archiveFile } : {}) },
    );

  beforeEach(async () => {
    t = await openTestStore(kind);
    key = newKey();
    audit = new AuditLog(t.store.db, testLogger(), { signingKey: key, checkpointEvery: 5, checkpointIntervalMs: 3_600_000 });
  });
  afterEach(async () => {
    await t.destroy();
  });

  /** 12 old entries (checkpoints at 5, 10 and 12), a horizon, then 8 young ones (checkpoints at 15 and 20). */
  async function oldAndYoung(): Promise<Date> {
    await write(audit, 12);
    const horizon = await horizonNow();
    await write(audit, 8);
    return horizon;
  }

  it('removes the old prefix up to the last signed checkpoint before the horizon; the rest verifies from that anchor', async () => {
    const horizon = await oldAndYoung();
    const anchorHash = bytes((await t.store.db.selectFrom('audit_event').select('hash').where('seq', '=', 12).executeTakeFirstOrThrow()).hash);

    const result = await run(horizon);
    expect(result).toMatchObject({ plan: { firstSeq: 1, lastSeq: 12, entries: 12 }, entriesRemoved: 12, checkpointsRemoved: 2 });
    expect(await seqs(t.store.db, 'audit_event')).toEqual(Array.from({ length: 9 }, (_, i) => 13 + i));
    expect(await seqs(t.store.db, 'audit_checkpoint')).toEqual([12, 15, 20]);
    const record = await t.store.db.selectFrom('audit_retention').selectAll().executeTakeFirstOrThrow();
    expect(bytes(record.last_hash).equals(anchorHash)).toBe(true);

    // The removal is itself an audit entry, at the head of the chain.
    const last = await t.store.db.selectFrom('audit_event').selectAll().orderBy('seq', 'desc').limit(1).executeTakeFirstOrThrow();
    expect(last).toMatchObject({ seq: 21, action: 'audit-truncated', actor: 'system:audit-truncate', outcome: 'success' });
    expect(last.detail).toMatchObject({ firstSeq: 1, lastSeq: 12, entries: 12, checkpoints: 2 });

    await audit.checkpointIfUncovered();
    const report = await verifyAuditChain(t.store.db, { keys: [key], pageSize: 4 });
    expect(report).toMatchObject({ ok: true, entries: 9, warnings: [] });
    expect(report.removed).toEqual([{ firstSeq: 1, lastSeq: 12, entries: 12, horizon: horizon.toISOString(), removedAt: result.removedAt, archiveSha256: null }]);

    // A second removal continues from the anchor, and the chain still verifies.
    await write(audit, 4);
    const later = await horizonNow();
    await write(audit, 1);
    expect(await run(later)).toMatchObject({ plan: { firstSeq: 13, lastSeq: 25 }, entriesRemoved: 13 });
    const again = await verifyAuditChain(t.store.db, { keys: [key] });
    expect(again.ok, JSON.stringify(again.firstProblem)).toBe(true);
    expect(again.removed!.map((r) => [r.firstSeq, r.lastSeq])).toEqual([[1, 12], [13, 25]]);
    // Nothing to remove: the horizon is before every remaining checkpoint.
    expect(await run(later)).toEqual({ entriesRemoved: 0, checkpointsRemoved: 0 });
  });

  it('writes the removed range to an archive first whose chain recomputes to the signed anchor', async () => {
    const horizon = await oldAndYoung();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-archive-'));
    try {
      const file = path.join(dir, 'audit-2019.jsonl');
      const result = await run(horizon, file);
      expect(result.archive).toMatchObject({ file, entries: 12, checkpoints: 3 });
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      const lines = (await readFile(file, 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
      expect(lines[0]).toMatchObject({ format: 'telesalud-audit-archive/1', firstSeq: 1, lastSeq: 12 });
      let prev: Buffer = Buffer.alloc(32);
      for (const { entry } of lines.filter((l) => l.entry)) {
        prev = chainHash(prev, chainedFieldsOf(entry, entry.seq));
        expect(prev.toString('hex')).toBe(entry.hash);
      }
      const record = await t.store.db.selectFrom('audit_retention').selectAll().executeTakeFirstOrThrow();
      expect(prev.equals(bytes(record.last_hash))).toBe(true);
      expect(record.archive_sha256).toBe(result.archive!.sha256);
      expect((await verifyAuditChain(t.store.db, { keys: [key] })).removed![0]!.archiveSha256).toBe(result.archive!.sha256);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to remove a range that does not verify, and changes nothing', async () => {
    const horizon = await oldAndYoung();
    await asSuperuser(t.store.db, (tx) => sql`update audit_event set actor = 'Practitioner/someone-else' where seq = 3`.execute(tx));
    await expect(run(horizon)).rejects.toThrow(/broken at seq 3 \(altered\): nothing removed/);
    expect((await seqs(t.store.db, 'audit_event')).slice(0, 3)).toEqual([1, 2, 3]);
    expect(await t.store.db.selectFrom('audit_retention').selectAll().execute()).toEqual([]);
    // …and the refusal is on record.
    const refused = await t.store.db.selectFrom('audit_event').selectAll().where('action', '=', 'audit-truncated').executeTakeFirstOrThrow();
    expect(refused.outcome).toBe('failed');
  });

  it('keeps the trail append-only outside the retention path', async () => {
    await oldAndYoung();
    await expect(sql`delete from audit_event where seq = 1`.execute(t.store.db)).rejects.toThrow(/append-only|permission denied/);
    await expect(sql`delete from audit_retention`.execute(t.store.db)).rejects.toThrow(/append-only|permission denied/);
    // The database function itself refuses anything but a prefix ending at a signed checkpoint.
    const hash7 = bytes((await t.store.db.selectFrom('audit_event').select('hash').where('seq', '=', 7).executeTakeFirstOrThrow()).hash);
    await expect(
      sql`select * from audit_retention_truncate(1, 7, ${hash7}, now(), now(), null, 'k', ${Buffer.alloc(64)})`.execute(t.store.db),
    ).rejects.toThrow(/no signed checkpoint at seq 7/);
    await expect(
      sql`select * from audit_retention_truncate(2, 10, ${hash7}, now(), now(), null, 'k', ${Buffer.alloc(64)})`.execute(t.store.db),
    ).rejects.toThrow(/starts at seq 1, not 2/);
    expect((await seqs(t.store.db, 'audit_event')).length).toBe(20);
  });

  it('refuses a retention shorter than the minimum, from config or the command line', () => {
    expect(() => retentionHorizon(30)).toThrow(AuditRetentionRefused);
    expect(retentionHorizon(400, new Date('2026-01-01T00:00:00Z')).toISOString()).toBe('2024-11-27T00:00:00.000Z');
    expect(() => checkHorizon(new Date(Date.now() - 10 * 86_400_000))).toThrow(/younger than 365 days/);
    expect(() => checkHorizon(new Date('not a date'))).toThrow(/not a date/);
    expect(() => checkHorizon(new Date('2020-01-01'))).not.toThrow();
  });

  describe('tampering after truncation is named by verify', () => {
    beforeEach(async () => {
      const horizon = await oldAndYoung();
      await run(horizon);
      await audit.checkpointIfUncovered();
      expect((await verifyAuditChain(t.store.db, { keys: [key] })).ok).toBe(true);
    });

    it('an entry after the anchor altered: "altered" at it', async () => {
      await asSuperuser(t.store.db, (tx) => sql`update audit_event set patient = 'Patient/other' where seq = 13`.execute(tx));
      expect(await verifyAuditChain(t.store.db, { keys: [key] })).toMatchObject({ ok: false, firstProblem: { seq: 13, kind: 'altered' } });
    });

    it('the first entry after the anchor deleted: "deleted" at it', async () => {
      await asSuperuser(t.store.db, (tx) => sql`delete from audit_event where seq = 13`.execute(tx));
      expect(await verifyAuditChain(t.store.db, { keys: [key] })).toMatchObject({ ok: false, firstProblem: { seq: 13, kind: 'deleted' } });
    });

    it('the retention record removed (a silent removal): entries 1…12 are missing', async () => {
      await asSuperuser(t.store.db, (tx) => sql`delete from audit_retention`.execute(tx));
      const report = await verifyAuditChain(t.store.db, { keys: [key] });
      expect(report).toMatchObject({ ok: false, firstProblem: { seq: 1, kind: 'deleted' } });
      expect(report.firstProblem!.detail).toContain('1…12');
    });

    it('a removal widened to hide more deletions (record edited to a later checkpoint): the record\'s signature fails', async () => {
      await asSuperuser(t.store.db, async (tx) => {
        const cp15 = (await sql<{ hash: Uint8Array }>`select hash from audit_checkpoint where seq = 15`.execute(tx)).rows[0]!;
        await sql`delete from audit_event where seq <= 15`.execute(tx);
        await sql`delete from audit_checkpoint where seq < 15`.execute(tx);
        await sql`update audit_retention set last_seq = 15, last_hash = ${cp15.hash}`.execute(tx);
      });
      const report = await verifyAuditChain(t.store.db, { keys: [key] });
      expect(report).toMatchObject({ ok: false, firstProblem: { seq: 1, kind: 'bad-checkpoint' } });
      expect(report.firstProblem!.detail).toMatch(/removal of entries 1…15: the signature does not match/);
    });

    it('the anchor checkpoint deleted: named', async () => {
      await asSuperuser(t.store.db, (tx) => sql`delete from audit_checkpoint where seq = 12`.execute(tx));
      expect(await verifyAuditChain(t.store.db, { keys: [key] })).toMatchObject({ ok: false, firstProblem: { seq: 12, kind: 'deleted' } });
    });

    it('an entry put back inside the removed range: "inserted"', async () => {
      await asSuperuser(t.store.db, (tx) =>
        sql`insert into audit_event (seq, recorded, actor, action, outcome, prev_hash, hash) values (4, now(), 'x', 'read', 'success', ${Buffer.alloc(32)}, ${Buffer.alloc(32)})`.execute(tx),
      );
      expect(await verifyAuditChain(t.store.db, { keys: [key] })).toMatchObject({ ok: false, firstProblem: { seq: 4, kind: 'inserted' } });
    });
  });

  it('plans nothing without a checkpoint before the horizon, and always leaves the head', async () => {
    expect(await planAuditRetention(t.store.db, new Date(Date.now() + 60_000))).toBeUndefined();
    await write(audit, 4); // the only checkpoint is at the head (4): it stays
    expect(await planAuditRetention(t.store.db, new Date(Date.now() + 60_000))).toBeUndefined();
    await write(audit, 1);
    expect(await planAuditRetention(t.store.db, new Date(Date.now() + 60_000))).toMatchObject({ firstSeq: 1, lastSeq: 4, entries: 4 });
  });
});

describe.runIf(STORE_KINDS.includes('postgres'))('audit retention with an unprivileged owner role (postgres)', () => {
  it('removes through the security-definer function while the role itself still may not delete audit rows', async () => {
    const base = process.env.TELESALUD_TEST_DATABASE_URL!;
    const suffix = randomBytes(5).toString('hex');
    const role = `telesalud_app_${suffix}`;
    const name = `telesalud_test_owner_${suffix}`;
    await adminQuery(base, `create role ${role} login`);
    await adminQuery(base, `create database ${name} owner ${role}`);
    const u = new URL(databaseUrl(base, name));
    u.username = role;
    const store = openPostgres(u.toString(), 2);
    try {
      await migrateToLatest(store.db);
      const key = newKey();
      const audit = new AuditLog(store.db, testLogger(), { signingKey: key, checkpointEvery: 5, checkpointIntervalMs: 3_600_000 });
      await write(audit, 7);
      const horizon = await horizonNow();
      await write(audit, 1);
      const result = await applyAuditRetention(
        { db: store.db, audit, signingKey: key, verifyingKeys: [key] },
        { actor: 'system:audit-retention', source: 'test', requestId: 'r', before: horizon },
      );
      expect(result.entriesRemoved).toBe(7);
      expect((await verifyAuditChain(store.db, { keys: [key] })).ok).toBe(true);
      const privileges = (
        await sql<{ t: string; ok: boolean }>`select t, has_table_privilege(current_user, t, 'DELETE') as ok from unnest(array['audit_event', 'audit_checkpoint', 'audit_retention']) t`.execute(store.db)
      ).rows;
      expect(privileges.every((p) => !p.ok)).toBe(true);
      await expect(sql`select set_config('telesalud.audit_retention', 'on', false)`.execute(store.db).then(() => sql`delete from audit_event`.execute(store.db))).rejects.toThrow(/permission denied/);
    } finally {
      await store.close();
      await adminQuery(base, `drop database if exists ${name} with (force)`);
      await adminQuery(base, `drop role if exists ${role}`);
    }
  });
});

describe.each(STORE_KINDS)('the service\'s daily retention run (%s)', (kind) => {
  it('with TELESALUD_AUDIT_RETENTION_DAYS, removes what is older and records it; without it, does nothing', async () => {
    const t = await openTestStore(kind);
    const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const key = parseAuditSigningKey(pem, 'test key');
    const apps: ReturnType<typeof Fastify>[] = [];
    let dataDir: string | undefined;
    try {
      // Entries from 2021 (the chain covers their time), then today's.
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(new Date('2021-06-01T08:00:00Z'));
      const old = new AuditLog(t.store.db, testLogger(), { signingKey: key, checkpointEvery: 5, checkpointIntervalMs: 3_600_000 });
      await write(old, 6);
      vi.useRealTimers();
      const audit = new AuditLog(t.store.db, testLogger(), { signingKey: key, checkpointEvery: 5, checkpointIntervalMs: 3_600_000 });
      await write(audit, 2);
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-retention-node-'));
      const env = { TELESALUD_AUDIT_SIGNING_KEY: Buffer.from(pem).toString('base64'), TELESALUD_DATA_DIR: dataDir };
      const removals = () => t.store.db.selectFrom('audit_retention').selectAll().execute();

      const off = Fastify();
      apps.push(off);
      scheduleAuditRetention(off, { config: loadConfig(env), store: t.store, audit, logger: testLogger() }, { firstRunMs: 0, everyMs: 60_000 });
      const on = Fastify();
      apps.push(on);
      scheduleAuditRetention(on, { config: loadConfig({ ...env, TELESALUD_AUDIT_RETENTION_DAYS: '365' }), store: t.store, audit, logger: testLogger() }, { firstRunMs: 0, everyMs: 60_000 });
      const deadline = Date.now() + 30_000;
      while ((await removals()).length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      const [removal] = await removals();
      expect(removal).toMatchObject({ first_seq: 1, last_seq: 6 });
      expect(await t.store.db.selectFrom('audit_event').select(['actor', 'outcome']).where('action', '=', 'audit-truncated').execute()).toEqual([{ actor: 'system:audit-retention', outcome: 'success' }]);
      await audit.drain();
      expect((await verifyAuditChain(t.store.db, { keys: [key] })).ok).toBe(true);
    } finally {
      vi.useRealTimers();
      for (const app of apps) await app.close();
      await t.destroy();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    }
  });
});
