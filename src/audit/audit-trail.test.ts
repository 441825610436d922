import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql, type Kysely, type Transaction } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { main } from '../cli/main.js';
import { openPglite, openPostgres, type Store } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import type { Database } from '../db/schema.js';
import { Repository } from '../records/repository.js';
import { adminQuery, databaseUrl } from '../test-support/global-setup.js';
import { pgliteTemplateDir, pgTemplateDatabase } from '../test-support/paths.js';
import { testLogger } from '../test-support/test-node.js';
import { patient } from '../test-support/fixtures.js';
import { chainedFieldsOf, chainHash } from './audit-chain.js';
import { signCheckpoint } from './audit-checkpoint.js';
import { AuditLog, type AuditEntry } from './audit-log.js';
import { parseAuditSigningKey, type AuditSigningKey } from './audit-signing-key.js';
import { bytes } from '../db/bytes.js';
import { verifyAuditChain, type AuditChainReport } from './verify-chain.js';

// Deliberately not the node harness: these tests need only the store, the audit log and the repository.
type StoreKind = 'pglite' | 'postgres';
const STORE_KINDS: StoreKind[] = process.env.TELESALUD_TEST_DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];
/** A test that only means something on one store (roles and grants exist only on a server) is declared only there, not skipped on the other. */
const onlyOn = (kind: StoreKind, wanted: StoreKind): typeof it => (kind === wanted ? it : ((() => undefined) as unknown as typeof it));

// ---- stores of our own: a copy of the run's migrated template, opened without a node ----

interface TestStore {
  kind: StoreKind;
  store: Store;
  dataDir: string;
  url: string | undefined;
  /** Another pool on the same database: a second node of a farm (PostgreSQL), or the same store (PGlite). */
  secondNode(): Store;
  reopen(): Promise<void>;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

async function openTestStore(kind: StoreKind): Promise<TestStore> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-audit-'));
  let url: string | undefined;
  let dropDatabase = async () => undefined as void;
  if (kind === 'pglite') {
    await cp(pgliteTemplateDir(), path.join(dataDir, 'pg'), { recursive: true });
  } else {
    const base = process.env.TELESALUD_TEST_DATABASE_URL!;
    const name = `telesalud_test_${randomBytes(6).toString('hex')}`;
    await adminQuery(base, `create database ${name} template ${pgTemplateDatabase()}`);
    url = databaseUrl(base, name);
    dropDatabase = () => adminQuery(base, `drop database if exists ${name} with (force)`);
  }
  const open = async () => (kind === 'pglite' ? openPglite(path.join(dataDir, 'pg')) : openPostgres(url!, 6));
  const extra: Store[] = [];
  const t: TestStore = {
    kind,
    store: await open(),
    dataDir,
    url,
    secondNode() {
      if (kind === 'pglite') return t.store;
      const s = openPostgres(url!, 6);
      extra.push(s);
      return s;
    },
    async reopen() {
      t.store = await open();
    },
    async close() {
      while (extra.length) await extra.pop()!.close();
      await t.store.close();
    },
    async destroy() {
      await t.close().catch(() => undefined);
      await dropDatabase();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return t;
}

const logger = testLogger;

function newKey(): AuditSigningKey {
  return parseAuditSigningKey(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'test key');
}

const entry = (i: number): AuditEntry => ({
  actor: i % 3 === 0 ? 'Practitioner/dr-1' : 'admin-token',
  action: i % 4 === 0 ? 'update' : 'read',
  resourceType: 'Observation',
  resourceId: `obs-${i}`,
  ...(i % 2 === 0 ? { patient: `Patient/p-${i % 5}` } : {}),
  outcome: i % 7 === 0 ? 'denied' : 'success',
  source: '192.0.2.10',
  requestId: `req-${i}`,
  ...(i % 3 === 1 ? { detail: { results: i, note: 'ñandú 😀', nested: { z: 1, a: [true, null, 2.5] } } } : {}),
});

/** `count` entries: bursts of concurrent reads through the group commit, and writes inside transactions. */
async function writeEntries(db: Kysely<Database>, audit: AuditLog, from: number, count: number): Promise<void> {
  let i = from;
  while (i < from + count) {
    const burst = Math.min(4, from + count - i);
    await Promise.all(Array.from({ length: burst }, (_, k) => audit.record(entry(i + k))));
    i += burst;
    if (i < from + count) {
      await db.transaction().execute((tx) => audit.recordIn(tx, [entry(i)]));
      i++;
    }
  }
}

/** What an attacker with the database superuser's powers does: switch the guard off, edit, switch it back on. */
async function asSuperuser(db: Kysely<Database>, edit: (tx: Transaction<Database>) => Promise<unknown>): Promise<void> {
  await db.transaction().execute(async (tx) => {
    await sql`alter table audit_event disable trigger audit_event_append_only`.execute(tx);
    await sql`alter table audit_checkpoint disable trigger audit_checkpoint_append_only`.execute(tx);
    await edit(tx);
    await sql`alter table audit_event enable trigger audit_event_append_only`.execute(tx);
    await sql`alter table audit_checkpoint enable trigger audit_checkpoint_append_only`.execute(tx);
  });
}

/** The attacker also knows the chain's algorithm: recompute every hash from `fromSeq` on. */
async function rehashFrom(tx: Transaction<Database>, fromSeq: number): Promise<void> {
  const rows = (await sql<any>`select * from audit_event where seq >= ${fromSeq - 1} order by seq`.execute(tx)).rows;
  let prev = fromSeq === 1 ? Buffer.alloc(32) : bytes(rows[0].hash);
  for (const row of rows) {
    if (Number(row.seq) < fromSeq) continue;
    const hash = chainHash(prev, fieldsOf(row));
    await sql`update audit_event set prev_hash = ${prev}, hash = ${hash} where id = ${row.id}`.execute(tx);
    prev = hash;
  }
}

const fieldsOf = (row: any) => chainedFieldsOf(row, Number(row.seq));

async function checkpointSeqs(db: Kysely<Database>): Promise<number[]> {
  return (await sql<{ seq: number }>`select seq from audit_checkpoint order by seq`.execute(db)).rows.map((r) => Number(r.seq));
}

async function hashAt(db: Kysely<Database>, seq: number): Promise<Buffer> {
  return bytes((await sql<{ hash: Uint8Array }>`select hash from audit_event where seq = ${seq}`.execute(db)).rows[0]!.hash);
}

const CHAIN = 35;

describe.each(STORE_KINDS)('tamper-evident audit trail (%s)', (kind) => {
  let t: TestStore;
  let key: AuditSigningKey;
  let audit: AuditLog;
  const verify = (pageSize = 7): Promise<AuditChainReport> => verifyAuditChain(t.store.db, { keys: [key], pageSize });

  beforeAll(async () => {
    t = await openTestStore(kind);
    key = newKey();
  });
  afterAll(async () => {
    await t?.destroy();
  });

  /** A fresh chain of 35 entries, checkpointed every 10 and at the end (the drain). */
  async function freshChain(): Promise<void> {
    await asSuperuser(t.store.db, async (tx) => {
      await sql`delete from audit_checkpoint`.execute(tx);
      await sql`delete from audit_event`.execute(tx);
    });
    audit = new AuditLog(t.store.db, logger(), { signingKey: key, checkpointEvery: 10, checkpointIntervalMs: 3_600_000 });
    await writeEntries(t.store.db, audit, 0, CHAIN);
    await audit.drain();
  }

  describe('an intact chain', () => {
    beforeAll(freshChain);

    it('is dense from 1, linked, signed, and verifies in pages', async () => {
      const rows = (await sql<any>`select seq, prev_hash, hash from audit_event order by seq`.execute(t.store.db)).rows;
      expect(rows.map((r) => Number(r.seq))).toEqual(Array.from({ length: CHAIN }, (_, i) => i + 1));
      for (let i = 1; i < rows.length; i++) expect(bytes(rows[i].prev_hash).equals(bytes(rows[i - 1].hash))).toBe(true);
      const cps = await checkpointSeqs(t.store.db);
      // One at (or just past, when a batch crosses it) every multiple of 10, and the tail signed at drain.
      expect(cps.length).toBeGreaterThanOrEqual(4);
      expect(cps.at(-1)).toBe(CHAIN);
      const progress: number[] = [];
      const report = await verifyAuditChain(t.store.db, { keys: [key], pageSize: 4, onProgress: (n) => progress.push(n) });
      expect(report).toEqual({ ok: true, entries: CHAIN, checkpoints: cps.length, lastCheckpointSeq: CHAIN, warnings: [] });
      expect(progress.at(-1)).toBe(CHAIN);
      expect(progress.length).toBeGreaterThanOrEqual(8);
    });

    it('stores entries exactly as hashed: detail text and keys as given, time to the millisecond', async () => {
      const row = (await sql<any>`select extract(microseconds from recorded)::int % 1000 as micros, detail from audit_event where request_id = 'req-1'`.execute(t.store.db)).rows[0];
      expect(row.detail).toEqual({ results: 1, note: 'ñandú 😀', nested: { z: 1, a: [true, null, 2.5] } });
      expect(row.micros).toBe(0);
    });

    it('stores awkward text exactly as hashed (array quoting, NULL-looking strings, NUL, lone surrogates)', async () => {
      const awkward: AuditEntry[] = [
        { actor: 'NULL', action: 'read', resourceId: 'null', patient: '', source: '{a,b}', requestId: 'say "hi" \\ back\\slash', outcome: 'success', detail: { 'k"ey': 'v\\al', NULL: null, '': [] } },
        { actor: 'x\u0000y', action: 'read', resourceType: 'Patient', resourceId: 'a\ud800', outcome: 'failed', detail: { s: '\udc00', emoji: '👩🏽‍⚕️' } },
        { actor: ' spaced ', action: 'read', outcome: 'denied', source: '\t\n', requestId: '}', detail: { deep: { deeper: { deepest: [1e21, -0, 0.1, 123456789012345680000] } } } },
      ];
      await Promise.all(awkward.map((e) => audit.record(e)));
      await t.store.db.transaction().execute((tx) => audit.recordIn(tx, awkward));
      await audit.drain();
      const rows = (await sql<any>`select actor, resource_id, patient, source, request_id from audit_event where seq > ${CHAIN} order by seq`.execute(t.store.db)).rows;
      expect(rows.slice(0, 3).map((r) => r.actor).sort()).toEqual([' spaced ', 'NULL', 'x\ufffdy']);
      expect(rows.find((r) => r.actor === 'NULL')).toEqual({ actor: 'NULL', resource_id: 'null', patient: '', source: '{a,b}', request_id: 'say "hi" \\ back\\slash' });
      expect((await verify()).ok).toBe(true);
    });

    it('refuses UPDATE, DELETE and TRUNCATE of audit rows and checkpoints from the application', async () => {
      for (const statement of [
        sql`update audit_event set actor = 'someone-else' where seq = 3`,
        sql`delete from audit_event where seq = 3`,
        sql`truncate audit_event`,
        sql`update audit_checkpoint set key_id = 'x'`,
        sql`delete from audit_checkpoint`,
        sql`truncate audit_checkpoint`,
      ]) {
        await expect(statement.execute(t.store.db)).rejects.toThrow(/append-only/);
      }
      expect((await verify()).ok).toBe(true);
    });

    onlyOn(kind, 'postgres')('grants nobody UPDATE, DELETE or TRUNCATE through PUBLIC', async () => {
      const privileges = (
        await sql<{ p: boolean }>`
          select has_table_privilege('public', t, p) as p
            from unnest(array['audit_event', 'audit_checkpoint']) t, unnest(array['UPDATE', 'DELETE', 'TRUNCATE']) p`.execute(t.store.db)
      ).rows;
      expect(privileges.map((r) => r.p)).toEqual(Array(6).fill(false));
    });
  });

  describe('tampering', () => {
    beforeEach(freshChain);

    it('an altered field: "altered" at that entry', async () => {
      await asSuperuser(t.store.db, (tx) => sql`update audit_event set actor = 'Practitioner/innocent' where seq = 7`.execute(tx));
      expect((await verify()).firstProblem).toMatchObject({ seq: 7, kind: 'altered' });
    });

    it('an altered detail or time: "altered"', async () => {
      await asSuperuser(t.store.db, (tx) => sql`update audit_event set detail = jsonb_set(detail, '{results}', '0') where seq = 23`.execute(tx));
      expect((await verify()).firstProblem).toMatchObject({ seq: 23, kind: 'altered' });
      await freshChain();
      await asSuperuser(t.store.db, (tx) => sql`update audit_event set recorded = recorded - interval '1 hour' where seq = 30`.execute(tx));
      expect((await verify()).firstProblem).toMatchObject({ seq: 30, kind: 'altered' });
    });

    it('an altered entry with its hash recomputed: caught by the next entry\'s link', async () => {
      await asSuperuser(t.store.db, async (tx) => {
        await sql`update audit_event set outcome = 'success' where seq = 8`.execute(tx);
        const prev = await hashAt(tx as unknown as Kysely<Database>, 7);
        const row = (await sql<any>`select * from audit_event where seq = 8`.execute(tx)).rows[0];
        await sql`update audit_event set hash = ${chainHash(prev, fieldsOf(row))} where seq = 8`.execute(tx);
      });
      expect((await verify()).firstProblem).toMatchObject({ seq: 8, kind: 'altered' });
    });

    it('a rewritten chain (every later hash recomputed): caught by the next signed checkpoint', async () => {
      await asSuperuser(t.store.db, async (tx) => {
        await sql`update audit_event set actor = 'Practitioner/innocent' where seq = 12`.execute(tx);
        await rehashFrom(tx, 12);
      });
      const cps = await checkpointSeqs(t.store.db);
      const caughtAt = cps.find((s) => s >= 12)!;
      const before = cps.filter((s) => s < 12).at(-1)!;
      const report = await verify();
      expect(report.firstProblem).toMatchObject({ seq: caughtAt, kind: 'altered' });
      expect(report.firstProblem!.detail).toContain(`between seq ${before + 1} and ${caughtAt}`);
    });

    it('a deleted entry in the middle: "deleted" at its position', async () => {
      await asSuperuser(t.store.db, (tx) => sql`delete from audit_event where seq = 15`.execute(tx));
      const report = await verify();
      expect(report.firstProblem).toMatchObject({ seq: 15, kind: 'deleted' });
      expect(report.entries).toBe(14);
    });

    it('a deleted entry with the later ones moved down to close the gap: "deleted"', async () => {
      await asSuperuser(t.store.db, async (tx) => {
        await sql`delete from audit_event where seq = 15`.execute(tx);
        await sql`update audit_event set seq = seq + 1000000 where seq > 15`.execute(tx);
        await sql`update audit_event set seq = seq - 1000001 where seq > 1000000`.execute(tx);
      });
      expect((await verify()).firstProblem).toMatchObject({ seq: 15, kind: 'deleted' });
    });

    it('a forged entry inserted in the middle, correctly hashed, later entries moved up: "inserted"', async () => {
      await asSuperuser(t.store.db, async (tx) => {
        await sql`update audit_event set seq = seq + 1000000 where seq >= 20`.execute(tx);
        await sql`update audit_event set seq = seq - 999999 where seq > 1000000`.execute(tx);
        const prev = await hashAt(tx as unknown as Kysely<Database>, 19);
        const forged = { seq: 20, recorded: new Date().toISOString(), actor: 'Practitioner/alibi', action: 'read', resourceType: 'Patient', resourceId: 'x', patient: 'Patient/x', outcome: 'success', source: '192.0.2.99', requestId: 'forged', detail: null };
        await sql`insert into audit_event (seq, recorded, actor, action, resource_type, resource_id, patient, outcome, source, request_id, detail, prev_hash, hash)
                  values (20, ${forged.recorded}, ${forged.actor}, 'read', 'Patient', 'x', 'Patient/x', 'success', '192.0.2.99', 'forged', null, ${prev}, ${chainHash(prev, forged)})`.execute(tx);
      });
      expect((await verify()).firstProblem).toMatchObject({ seq: 20, kind: 'inserted' });
    });

    it('a forged entry with a made-up hash at the end: "altered"', async () => {
      const prev = await hashAt(t.store.db, CHAIN);
      await sql`insert into audit_event (seq, recorded, actor, action, outcome, prev_hash, hash)
                values (${CHAIN + 1}, now(), 'Practitioner/alibi', 'read', 'success', ${prev}, ${randomBytes(32)})`.execute(t.store.db);
      expect((await verify()).firstProblem).toMatchObject({ seq: CHAIN + 1, kind: 'altered' });
    });

    it('a second entry at a taken position (unique constraint dropped): "inserted"', async () => {
      await asSuperuser(t.store.db, async (tx) => {
        await sql`alter table audit_event drop constraint audit_event_seq_key`.execute(tx);
        const row = (await sql<any>`select * from audit_event where seq = 20`.execute(tx)).rows[0];
        await sql`insert into audit_event (seq, recorded, actor, action, outcome, prev_hash, hash)
                  values (20, ${new Date(row.recorded).toISOString()}, 'Practitioner/alibi', 'read', 'success', ${row.prev_hash}, ${row.hash})`.execute(tx);
      });
      try {
        expect((await verify()).firstProblem).toMatchObject({ seq: 20, kind: 'inserted' });
      } finally {
        await asSuperuser(t.store.db, async (tx) => {
          await sql`delete from audit_event where actor = 'Practitioner/alibi'`.execute(tx);
          await sql`alter table audit_event add constraint audit_event_seq_key unique (seq)`.execute(tx);
        });
      }
    });

    it('a tail cut off back past a checkpoint: caught by that checkpoint', async () => {
      const cps = await checkpointSeqs(t.store.db);
      const signed = cps.at(-2)!; // a checkpoint inside the chain, not the drain's one at the very end
      await asSuperuser(t.store.db, (tx) => sql`delete from audit_event where seq > ${signed - 2}`.execute(tx));
      const report = await verify();
      expect(report.firstProblem).toMatchObject({ seq: signed - 1, kind: 'deleted' });
      expect(report.firstProblem!.detail).toContain(`vouches for seq ${signed}`);
    });

    it('a tail cut off just after a checkpoint: caught by the later one', async () => {
      const cps = await checkpointSeqs(t.store.db);
      await asSuperuser(t.store.db, (tx) => sql`delete from audit_event where seq > ${cps.at(-2)!}`.execute(tx));
      expect((await verify()).firstProblem).toMatchObject({ seq: cps.at(-2)! + 1, kind: 'deleted' });
    });

    it('a forged checkpoint, by another key or with a broken signature, in or past the chain: "bad-checkpoint"', async () => {
      const cps = await checkpointSeqs(t.store.db);
      const free = Array.from({ length: CHAIN }, (_, i) => i + 1).find((s) => s > 3 && !cps.includes(s))!;
      const forged = signCheckpoint(newKey(), free, await hashAt(t.store.db, free), new Date());
      await sql`insert into audit_checkpoint (seq, hash, signed_at, key_id, signature) values (${free}, ${forged.hash}, ${forged.signedAt}, ${forged.keyId}, ${forged.signature})`.execute(t.store.db);
      let report = await verify();
      expect(report.firstProblem).toMatchObject({ seq: free, kind: 'bad-checkpoint' });
      expect(report.firstProblem!.detail).toContain(forged.keyId);

      await freshChain();
      const target = (await checkpointSeqs(t.store.db))[1]!;
      await asSuperuser(t.store.db, (tx) => sql`update audit_checkpoint set signature = ${randomBytes(64)} where seq = ${target}`.execute(tx));
      report = await verify();
      expect(report.firstProblem).toMatchObject({ seq: target, kind: 'bad-checkpoint' });

      await freshChain();
      const beyond = signCheckpoint(newKey(), 500, randomBytes(32), new Date());
      await sql`insert into audit_checkpoint (seq, hash, signed_at, key_id, signature) values (500, ${beyond.hash}, ${beyond.signedAt}, ${key.keyId}, ${beyond.signature})`.execute(t.store.db);
      expect((await verify()).firstProblem).toMatchObject({ seq: 500, kind: 'bad-checkpoint' });
    });

    it('warns when the guard trigger is left disabled', async () => {
      await sql`alter table audit_event disable trigger audit_event_append_only`.execute(t.store.db);
      try {
        const report = await verify();
        expect(report.ok).toBe(true);
        expect(report.warnings).toEqual([expect.stringContaining('audit_event_append_only')]);
      } finally {
        await sql`alter table audit_event enable trigger audit_event_append_only`.execute(t.store.db);
      }
    });
  });

  describe('concurrent writers', () => {
    afterEach(async () => {
      await t.close();
      await t.reopen();
    });

    it('four writers on two nodes (own pools and group commits) make one dense chain that verifies', async () => {
      await asSuperuser(t.store.db, async (tx) => {
        await sql`delete from audit_checkpoint`.execute(tx);
        await sql`delete from audit_event`.execute(tx);
      });
      const nodes = [t.store, t.secondNode()];
      const audits = nodes.map((n) => new AuditLog(n.db, logger(), { signingKey: key, checkpointEvery: 7, checkpointIntervalMs: 3_600_000 }));
      const rounds = 6;
      await Promise.all(
        Array.from({ length: 4 }, async (_, w) => {
          const node = nodes[w % 2]!;
          const repo = new Repository(node.db, audits[w % 2]!, SYSTEM_ACTOR, { requestId: `writer-${w}`, source: 'test' });
          for (let r = 0; r < rounds; r++) {
            const created = await repo.create(patient(`Escritora${w}`, [`Ronda${r}`]));
            await Promise.all([repo.read('Patient', created.id), repo.read('Patient', created.id), repo.history('Patient', created.id, 10, 0)]);
            await repo.update({ ...created, gender: 'other' }, '1');
            await repo.read('Patient', created.id);
          }
        }),
      );
      await Promise.all(audits.map((a) => a.drain()));
      const expected = 4 * rounds * 6;
      const stats = (await sql<{ n: number; max: number; distinct: number }>`select count(*)::int as n, max(seq)::int as max, count(distinct seq)::int as distinct from audit_event`.execute(t.store.db)).rows[0]!;
      expect(stats).toEqual({ n: expected, max: expected, distinct: expected });
      const report = await verify(50);
      expect(report).toMatchObject({ ok: true, entries: expected, lastCheckpointSeq: expected });
      expect(report.checkpoints).toBeGreaterThanOrEqual(Math.floor(expected / 7));
    });
  });
});

// ---- telesalud audit verify, in process (no build needed) ----

describe.each(STORE_KINDS)('telesalud audit verify (%s)', (kind) => {
  let t: TestStore;
  let key: AuditSigningKey;
  let envKey: string;
  const saved: Record<string, string | undefined> = {};
  const VARS = ['TELESALUD_DATA_DIR', 'TELESALUD_DATABASE_URL', 'TELESALUD_AUDIT_SIGNING_KEY', 'TELESALUD_ADMIN_TOKEN'];

  beforeAll(async () => {
    for (const v of VARS) saved[v] = process.env[v];
    t = await openTestStore(kind);
    key = newKey();
    envKey = Buffer.from(key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string).toString('base64');
    const audit = new AuditLog(t.store.db, logger(), { signingKey: key, checkpointEvery: 10 });
    await writeEntries(t.store.db, audit, 0, CHAIN);
    await audit.drain();
    // The embedded database is one process's at a time: the command opens it itself.
    if (kind === 'pglite') await t.close();
  });
  afterAll(async () => {
    for (const v of VARS) {
      if (saved[v] === undefined) delete process.env[v];
      else process.env[v] = saved[v];
    }
    await t?.destroy();
  });

  async function run(args: string[], env: Record<string, string | undefined>): Promise<{ code: number; stdout: string; stderr: string }> {
    for (const v of VARS) delete process.env[v];
    const all: Record<string, string | undefined> = { TELESALUD_DATA_DIR: t.dataDir, ...(t.url ? { TELESALUD_DATABASE_URL: t.url } : {}), ...env };
    for (const [k, v] of Object.entries(all)) if (v !== undefined) process.env[k] = v;
    let stdout = '';
    let stderr = '';
    const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: any) => ((stdout += String(chunk)), true));
    const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: any) => ((stderr += String(chunk)), true));
    try {
      const code = await main(args);
      return { code, stdout, stderr };
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  }

  async function tamper(edit: (tx: Transaction<Database>) => Promise<unknown>): Promise<void> {
    if (kind === 'pglite') await t.reopen();
    await asSuperuser(t.store.db, edit);
    if (kind === 'pglite') await t.close();
  }

  it('exits 0 with a one-line summary when the chain is intact', async () => {
    const res = await run(['audit', 'verify'], { TELESALUD_AUDIT_SIGNING_KEY: envKey });
    expect(res.code).toBe(0);
    // Nothing on stderr but the progress line, which a slow (busy) machine shows after a second.
    expect(res.stderr.split('\n').filter((line) => line !== '' && !line.startsWith('verifying audit chain: '))).toEqual([]);
    expect(res.stdout).toMatch(new RegExp(`^audit chain valid: ${CHAIN} entries, \\d+ signed checkpoints \\(last at seq ${CHAIN}\\)\\n$`));
    const json = await run(['audit', 'verify', '--json'], { TELESALUD_AUDIT_SIGNING_KEY: envKey });
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, entries: CHAIN });
    const textfile = path.join(t.dataDir, 'audit.prom');
    expect((await run(['audit', 'verify', '--prometheus-file', textfile], { TELESALUD_AUDIT_SIGNING_KEY: envKey })).code).toBe(0);
    const metrics = await readFile(textfile, 'utf8');
    expect(metrics).toContain('\ntelesalud_audit_chain_ok 1\n');
    expect(metrics).toContain(`\ntelesalud_audit_chain_entries ${CHAIN}\n`);
    expect(metrics).toMatch(/\ntelesalud_audit_chain_verified_timestamp_seconds \d{10}\n/);
  });

  it('checks with only the public key (--public-key), and refuses to guess without any key', async () => {
    const pub = path.join(t.dataDir, 'auditor.pub');
    await writeFile(pub, key.publicKey.export({ type: 'spki', format: 'pem' }));
    expect((await run(['audit', 'verify', '--public-key', pub], {})).code).toBe(0);
    const none = await run(['audit', 'verify'], {});
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^telesalud: no audit key to check the signed checkpoints with: set TELESALUD_AUDIT_SIGNING_KEY/);
    const wrong = await run(['audit', 'verify'], { TELESALUD_AUDIT_SIGNING_KEY: Buffer.from(newKey().privateKey.export({ type: 'pkcs8', format: 'pem' }) as string).toString('base64') });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('bad checkpoint at seq');
  });

  onlyOn(kind, 'pglite')('says so when the service holds the embedded database', async () => {
    const sleeper = spawn('sleep', ['30']);
    try {
      await writeFile(path.join(t.dataDir, 'telesalud.pid'), String(sleeper.pid));
      // Locked minutes ago, so the command does not wait for a starting service to open its admin socket.
      const past = new Date(Date.now() - 5 * 60_000);
      await utimes(path.join(t.dataDir, 'telesalud.pid'), past, past);
      const res = await run(['audit', 'verify'], { TELESALUD_AUDIT_SIGNING_KEY: envKey });
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(new RegExp(`^telesalud: the telesalud service \\(pid ${sleeper.pid}\\) is running on ${t.dataDir} and holds its embedded database, but offers no admin socket .*: stop it, then run audit verify again\n$`));
    } finally {
      sleeper.kill();
      await rm(path.join(t.dataDir, 'telesalud.pid'), { force: true });
    }
  });

  it('exits 1 naming the first bad entry', async () => {
    await tamper((tx) => sql`update audit_event set patient = 'Patient/someone-else' where seq = 9`.execute(tx));
    const textfile = path.join(t.dataDir, 'audit.prom');
    const res = await run(['audit', 'verify', '--prometheus-file', textfile], { TELESALUD_AUDIT_SIGNING_KEY: envKey });
    expect(res.code).toBe(1);
    expect(await readFile(textfile, 'utf8')).toContain('\ntelesalud_audit_chain_ok 0\n');
    expect(res.stdout).toBe('');
    expect(res.stderr).toBe('telesalud: audit chain BROKEN: entry 9 altered: entry 9 (row id ' + res.stderr.match(/row id (\d+)/)![1] + ') no longer matches its hash (8 entries before it verified)\n');
  });

  it('refuses a data dir without a database, and a database without the chain, in one line', async () => {
    const empty = await mkdtemp(path.join(os.tmpdir(), 'telesalud-audit-empty-'));
    try {
      if (kind === 'pglite') {
        const res = await run(['audit', 'verify'], { TELESALUD_DATA_DIR: empty });
        expect(res).toMatchObject({ code: 1, stderr: `telesalud: no database in ${empty}: nothing to verify (set TELESALUD_DATA_DIR or TELESALUD_DATABASE_URL)\n` });
      } else {
        const base = process.env.TELESALUD_TEST_DATABASE_URL!;
        const name = `telesalud_test_${randomBytes(6).toString('hex')}`;
        await adminQuery(base, `create database ${name}`);
        try {
          const res = await run(['audit', 'verify'], { TELESALUD_DATA_DIR: empty, TELESALUD_DATABASE_URL: databaseUrl(base, name) });
          expect(res).toMatchObject({ code: 1, stderr: 'telesalud: this database has no audit chain yet: run `telesalud migrate` (or start the service) first\n' });
        } finally {
          await adminQuery(base, `drop database if exists ${name} with (force)`);
        }
      }
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});

// ---- migration 0002 on older data and with an unprivileged owner ----

describe('migration 0002-audit-chain', () => {
  it('chains audit rows written before it, in id order, and the chain verifies', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-audit-mig-'));
    await mkdir(dir, { recursive: true });
    const store = await openPglite(dir);
    try {
      const { Migrator } = await import('kysely');
      const clinicalRecord = await import('../db/migrations/0001-clinical-record.js');
      const migrator = new Migrator({ db: store.db, provider: { getMigrations: async () => ({ '0001-clinical-record': clinicalRecord }) }, migrationTableName: 'schema_migration', migrationLockTableName: 'schema_migration_lock' });
      await migrator.migrateToLatest();
      await sql`insert into audit_event (actor, action, outcome, detail) values ('a', 'read', 'success', '{"b":1,"a":[2]}'), ('b', 'create', 'success', null), ('c', 'search', 'denied', '{}')`.execute(store.db);
      expect(await migrateToLatest(store.db)).toContain('0002-audit-chain');
      const rows = (await sql<any>`select actor, seq from audit_event order by id`.execute(store.db)).rows;
      expect(rows.map((r) => [r.actor, Number(r.seq)])).toEqual([['a', 1], ['b', 2], ['c', 3]]);
      expect(await verifyAuditChain(store.db, { keys: [] })).toMatchObject({ ok: true, entries: 3, checkpoints: 0 });
      // And appending continues the chain.
      const audit = new AuditLog(store.db, logger(), { signingKey: newKey() });
      await audit.record(entry(1));
      await audit.drain();
      expect(await verifyAuditChain(store.db, { keys: [] })).toMatchObject({ ok: false, entries: 3, firstProblem: { kind: 'bad-checkpoint', seq: 4 } });
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 180_000); // every migration on a fresh PGlite: over a minute on a busy 2-core machine

  it.runIf(STORE_KINDS.includes('postgres'))('leaves an unprivileged owner role unable to update or delete audit rows', async () => {
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
      const privileges = (
        await sql<{ p: string; ok: boolean }>`
          select p, has_table_privilege(current_user, 'audit_event', p) as ok from unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p`.execute(store.db)
      ).rows;
      expect(Object.fromEntries(privileges.map((r) => [r.p, r.ok]))).toEqual({ SELECT: true, INSERT: true, UPDATE: false, DELETE: false, TRUNCATE: false });
      const audit = new AuditLog(store.db, logger(), { signingKey: newKey() });
      await audit.record(entry(2));
      await audit.drain();
      await expect(sql`update audit_event set actor = 'x'`.execute(store.db)).rejects.toThrow(/permission denied/);
      await expect(sql`delete from audit_event`.execute(store.db)).rejects.toThrow(/permission denied/);
    } finally {
      await store.close();
      await adminQuery(base, `drop database if exists ${name} with (force)`);
      await adminQuery(base, `drop role if exists ${role}`);
    }
  });
});
