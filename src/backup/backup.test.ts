import { randomBytes } from 'node:crypto';
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAuditSigningKey } from '../audit/audit-signing-key.js';
import { verifyAuditChain } from '../audit/verify-chain.js';
import { loadConfig } from '../config/config.js';
import { openPglite, openPostgres, type Store } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { kekFromBytes, KeyRing } from '../documents/key-ring.js';
import { buildApp } from '../server/app.js';
import { startNode } from '../server/node.js';
import { adminQuery, databaseUrl } from '../test-support/global-setup.js';
import { create, heartRate, patient } from '../test-support/fixtures.js';
import { startTestNode, STORE_KINDS, testLogger, type StoreKind, type TestNode } from '../test-support/test-node.js';
import { ArchiveError } from './archive-crypto.js';
import { backupDatabase, restoreDatabase } from './backup-archive.js';

const PDF = Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(300_000), Buffer.from('\n%%EOF\n')]);

/** An empty database of the same kind as the node's, for a restore to fill. */
async function emptyStore(kind: StoreKind, dir: string): Promise<{ store: Store; env: Record<string, string>; drop(): Promise<void> }> {
  if (kind === 'pglite') return { store: await openPglite(path.join(dir, 'pg')), env: {}, drop: async () => undefined };
  const base = process.env.TELESALUD_TEST_DATABASE_URL!;
  const name = `telesalud_restore_${randomBytes(5).toString('hex')}`;
  await adminQuery(base, `create database ${name}`);
  const url = databaseUrl(base, name);
  return { store: openPostgres(url, 4), env: { TELESALUD_DATABASE_URL: url }, drop: () => adminQuery(base, `drop database if exists ${name} with (force)`) };
}

async function rowsOf(db: Kysely<Database>, table: string): Promise<Set<string>> {
  return new Set((await sql<{ row: string }>`select row_to_json(t)::text as row from ${sql.table(table)} t`.execute(db)).rows.map((r) => r.row));
}

describe.each(STORE_KINDS)('backup and restore (%s)', (kind) => {
  let node: TestNode;
  let work: string;
  let documentId: string;
  let masterKey: Buffer;
  beforeAll(async () => {
    node = await startTestNode(kind);
    work = await mkdtemp(path.join(os.tmpdir(), 'telesalud-backup-'));
    masterKey = Buffer.from(node.ctx.keyRing.current().key);
    const p = await create(node, patient('Copia', ['Segura']));
    for (let i = 0; i < 20; i++) await create(node, heartRate(p.id, 60 + i, `2025-01-${String(1 + i).padStart(2, '0')}T09:00:00Z`));
    const upload = await node.request({ method: 'POST', url: `/api/documents?patient=${p.id}&title=Informe&category=clinical-note`, payload: PDF, headers: { 'content-type': 'application/pdf' } });
    expect(upload.statusCode).toBe(201);
    documentId = upload.json().id;
    await node.ctx.audit.drain();
  });
  afterAll(async () => {
    await node?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('copies a service under write load and restores every row, document and audit entry of that instant', async () => {
    const p = await create(node, patient('Carga', ['Escritura']));
    let writing = true;
    let written = 0;
    const load = (async () => {
      while (writing) {
        await create(node, heartRate(p.id, 70, '2025-02-01T09:00:00Z'));
        written += 1;
      }
    })();
    const file = path.join(work, `${kind}.tsbackup`);
    const summary = await backupDatabase(node.ctx.store.db, node.ctx.keyRing, file, { version: 'test' });
    writing = false;
    await load;
    await node.ctx.audit.drain();
    expect(written).toBeGreaterThan(0);
    expect(summary.counts.document_blob).toBe(1);
    expect(summary.counts.audit_event).toBeGreaterThan(20);
    // Nothing readable leaks into the file: it is sealed.
    const bytes = await readFile(file);
    expect(bytes.includes(Buffer.from('Copia'))).toBe(false);
    expect(bytes.includes(PDF.subarray(100, 140))).toBe(false);

    const dir = await mkdtemp(path.join(work, 'restored-'));
    const target = await emptyStore(kind, dir);
    try {
      const restored = await restoreDatabase(target.store.db, node.ctx.keyRing, file);
      expect(restored.rows).toBe(summary.rows);
      for (const [table, count] of Object.entries(summary.counts)) {
        const copy = await rowsOf(target.store.db, table);
        expect(copy.size, table).toBe(count);
        // Every restored row is, byte for byte as PostgreSQL prints it, a row of the source.
        const source = await rowsOf(node.ctx.store.db, table);
        for (const row of copy) expect(source.has(row), `${table} row differs`).toBe(true);
      }
      // The audit chain of the copy is the source's chain up to the instant of the backup, and verifies.
      const key = (await loadAuditSigningKey({ dataDir: node.config.dataDir, createIfMissing: false }))!;
      const report = await verifyAuditChain(target.store.db, { keys: [key] });
      expect(report.ok).toBe(true);
      expect(report.entries).toBe(summary.counts.audit_event);
      await target.store.close();

      // A node on the restored database, with the same master key, serves the document's exact bytes.
      const restoredNode = await startNode(loadConfig({ TELESALUD_DATA_DIR: dir, TELESALUD_MASTER_KEY: masterKey.toString('base64'), TELESALUD_AUDIT_SIGNING_KEY: Buffer.from(key.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string).toString('base64'), TELESALUD_ADMIN_TOKEN: node.token, TELESALUD_PORT: '0', ...target.env }), testLogger());
      const app = await buildApp(restoredNode);
      try {
        const download = await app.inject({ method: 'GET', url: `/api/documents/${documentId}/content`, headers: { authorization: `Bearer ${node.token}` } });
        expect(download.statusCode).toBe(200);
        expect(Buffer.compare(download.rawPayload, PDF)).toBe(0);
        // And it keeps working: new writes chain onto the restored audit trail.
        expect((await app.inject({ method: 'POST', url: '/fhir/R4/Patient', payload: patient('Después', ['Restaurado']), headers: { authorization: `Bearer ${node.token}` } })).statusCode).toBe(201);
        await restoredNode.audit.drain();
        expect((await verifyAuditChain(restoredNode.store.db, { keys: [key] })).firstProblem).toBeUndefined();
      } finally {
        await app.close();
        await restoredNode.stop();
      }
    } finally {
      await target.store.close().catch(() => undefined);
      await target.drop();
    }
  });

  it('refuses a wrong key, a damaged file and a truncated one without creating anything', async () => {
    const file = path.join(work, `${kind}-refusals.tsbackup`);
    await backupDatabase(node.ctx.store.db, node.ctx.keyRing, file, { version: 'test' });
    const bytes = await readFile(file);
    const damaged = path.join(work, 'damaged.tsbackup');
    const flipped = Buffer.from(bytes);
    flipped[Math.floor(flipped.length * 0.6)]! ^= 0x01;
    await writeFile(damaged, flipped);
    const truncated = path.join(work, 'truncated.tsbackup');
    await writeFile(truncated, bytes.subarray(0, bytes.length - 100));
    const otherKey = kekFromBytes(randomBytes(32));

    const cases: [string, KeyRing, RegExp][] = [
      [file, new KeyRing([otherKey], otherKey.id), /wrong key/],
      [damaged, node.ctx.keyRing, /damaged/],
      [truncated, node.ctx.keyRing, /truncated|damaged/],
    ];
    for (const [archive, ring, message] of cases) {
      const dir = await mkdtemp(path.join(work, 'refused-'));
      const target = await emptyStore(kind, dir);
      try {
        const error = await restoreDatabase(target.store.db, ring, archive).catch((err: unknown) => err);
        expect(error).toBeInstanceOf(ArchiveError);
        expect((error as Error).message).toMatch(message);
        const tables = await sql<{ n: number }>`select count(*)::int as n from pg_tables where schemaname = 'public'`.execute(target.store.db);
        expect(tables.rows[0]!.n).toBe(0);
      } finally {
        await target.store.close();
        await target.drop();
      }
    }
  });

  it('refuses to restore over a database that holds data', async () => {
    const file = path.join(work, `${kind}-occupied.tsbackup`);
    await backupDatabase(node.ctx.store.db, node.ctx.keyRing, file, { version: 'test' });
    await expect(restoreDatabase(node.ctx.store.db, node.ctx.keyRing, file)).rejects.toThrow(/not empty/);
  });
});
