import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, cp, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAuditSigningKey } from '../audit/audit-signing-key.js';
import { verifyAuditChain } from '../audit/verify-chain.js';
import { callAdminSocket } from '../cli/admin-socket-client.js';
import { adminSocketPath } from '../cli/admin-socket-protocol.js';
import { openPglite } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { assertBuilt, httpsJson, runCli, startCli, waitForOutput } from '../test-support/cli-process.js';
import { heartRate, patient } from '../test-support/fixtures.js';
import { pgliteTemplateDir } from '../test-support/paths.js';

/**
 * The operator's path on the embedded default with the service running: `telesalud backup`,
 * `audit verify` and `keys …` from another process reach the node through its admin socket.
 * Everything here goes through the built CLI and a real `telesalud serve` child process.
 */

const pdf = (n: number) => Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(40_000 + n), Buffer.from('\n%%EOF\n')]);

/** Every row of a table as PostgreSQL prints it: equal text, equal row (bytea, jsonb, timestamps included). */
async function rowsOf(db: Kysely<Database>, table: string): Promise<Set<string>> {
  return new Set((await sql<{ row: string }>`select row_to_json(t)::text as row from ${sql.table(table)} t`.execute(db)).rows.map((r) => r.row));
}

describe('online backup, audit verify and key rotation on the running embedded node (built CLI)', () => {
  let work: string;
  let dataDir: string;
  let server: ChildProcessWithoutNullStreams | undefined;
  let port: number;
  let patientId: string;
  const token = randomBytes(24).toString('hex');
  const documents = new Map<string, Buffer>();
  const env = () => ({ TELESALUD_DATA_DIR: dataDir });

  const api = (method: string, url: string, body?: Buffer | string, contentType = 'application/fhir+json') =>
    httpsJson(port, { method, path: url, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': contentType, 'content-length': Buffer.byteLength(body) } : {}) }, ...(body ? { body } : {}) });
  const upload = async (bytes: Buffer) => {
    const res = await api('POST', `/api/documents?patient=${patientId}&title=Informe&category=clinical-note`, bytes, 'application/pdf');
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    documents.set(res.body.id, bytes);
    return res.body.id as string;
  };
  const download = (id: string) =>
    new Promise<Buffer>((resolve, reject) => {
      httpsRequest({ host: '127.0.0.1', port, path: `/api/documents/${id}/content`, rejectUnauthorized: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`download answered ${res.statusCode}`))));
      })
        .on('error', reject)
        .end();
    });

  beforeAll(async () => {
    assertBuilt();
    // Short: a Unix socket path holds about 100 bytes.
    work = await mkdtemp(path.join(os.tmpdir(), 'ts-online-'));
    dataDir = path.join(work, 'data');
    await cp(pgliteTemplateDir(), path.join(dataDir, 'pg'), { recursive: true });
    await chmod(dataDir, 0o700);
    server = startCli(['serve'], { TELESALUD_DATA_DIR: dataDir, TELESALUD_PORT: '0', TELESALUD_HOST: '127.0.0.1', TELESALUD_ADMIN_TOKEN: token, TELESALUD_LOG_LEVEL: 'info' });
    port = Number((await waitForOutput(server, /listening on https:\/\/[^:]+:(\d+)/, 90_000))[1]);
    const created = await api('POST', '/fhir/R4/Patient', JSON.stringify(patient('Copia', ['En', 'Línea'])));
    expect(created.status).toBe(201);
    patientId = created.body.id;
    for (let i = 0; i < 3; i++) await upload(pdf(i));
  });

  afterAll(async () => {
    server?.kill('SIGKILL');
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('opens the admin socket owner-only, and refuses once the data dir or the socket is opened to other accounts', async () => {
    const socket = adminSocketPath(dataDir);
    expect((await stat(socket)).mode & 0o777).toBe(0o600);

    await chmod(socket, 0o666);
    const openSocket = await runCli(['audit', 'verify'], env());
    expect(openSocket.code).toBe(1);
    expect(openSocket.stderr).toMatch(/^telesalud: refused: the admin socket .* is open to other accounts \(mode 666\)/);
    await chmod(socket, 0o600);

    await chmod(dataDir, 0o750);
    try {
      const openDir = await runCli(['backup', path.join(work, 'refused.tsbackup')], env());
      expect(openDir.code).toBe(1);
      expect(openDir.stderr).toMatch(/^telesalud: refused: the data dir .* is open to other accounts \(mode 750\): run `chmod 700/);
      // The node checks too, whatever the client does: a raw connection is answered with the refusal.
      await expect(callAdminSocket(socket, { command: 'keys-status' })).rejects.toThrow(/^refused: the data dir .* is open to other accounts/);
    } finally {
      await chmod(dataDir, 0o700);
    }
    expect((await readdir(work)).filter((f) => f.startsWith('refused'))).toEqual([]);
    // A request that is not one of the commands changes nothing and says so.
    await expect(callAdminSocket(socket, { command: 'drop-everything' } as never)).rejects.toThrow(/^bad request/);
  });

  it('verifies the audit chain on the running node and reports how many entries it checked', async () => {
    const first = await runCli(['audit', 'verify', '--json'], env());
    expect(first.code, first.stderr).toBe(0);
    const report = JSON.parse(first.stdout);
    expect(report.ok).toBe(true);
    expect(report.entries).toBeGreaterThan(4);
    const second = await runCli(['audit', 'verify'], env());
    expect(second.code, second.stderr).toBe(0);
    // The first verification is itself an audit entry, so the chain grew by at least it.
    const entries = Number(/^audit chain valid: (\d+) entries/.exec(second.stdout)?.[1]);
    expect(entries).toBeGreaterThan(report.entries);
  });

  it('rotates the master key online: the node seals and opens under the new key at once', async () => {
    const before = JSON.parse((await runCli(['keys', 'status', '--json'], env())).stdout);
    const oldKey = before.keys.find((k: { state: string }) => k.state === 'current').id;
    expect(before.keys[0].documents).toBe(3);

    const rotated = await runCli(['keys', 'rotate'], env());
    expect(rotated.code, rotated.stderr).toBe(0);
    const newKey = /^new master key ([0-9a-f]{16}) is current/.exec(rotated.stdout)?.[1];
    expect(newKey).toBeDefined();
    expect(rotated.stdout).toContain('re-wrapped 3 document keys');

    const fresh = await upload(pdf(99));
    const after = JSON.parse((await runCli(['keys', 'status', '--json'], env())).stdout);
    expect(after.keys).toEqual([
      { id: newKey, state: 'current', documents: 4, totpSecrets: 0, queuedEmails: 0 },
      { id: oldKey, state: 'old', documents: 0, totpSecrets: 0, queuedEmails: 0 },
    ]);
    for (const [id, bytes] of documents) expect(Buffer.compare(await download(id), bytes), id).toBe(0);
    expect(documents.has(fresh)).toBe(true);
    const retired = await runCli(['keys', 'retire'], env());
    expect(retired.code, retired.stderr).toBe(0);
    expect(retired.stdout).toMatch(new RegExp(`^retired ${oldKey}:`));
  });

  it('cleans up after a command that hangs up mid-backup, and keeps serving', async () => {
    // An archive far larger than the socket's buffers, so the node is still writing when the command goes.
    await upload(pdf(3_000_000));
    const socket = adminSocketPath(dataDir);
    let chunks = 0;
    const cut = await callAdminSocket(socket, { command: 'backup' }, {
      onData: async () => {
        chunks += 1;
        throw new Error('the operator pressed Ctrl-C');
      },
    }).catch((err: Error) => err);
    expect((cut as Error).message).toBe('the operator pressed Ctrl-C');
    expect(chunks).toBe(1);
    // The node notices, stops reading and removes its snapshot copy.
    for (let i = 0; i < 100 && (await readdir(dataDir)).some((f) => f.startsWith('.backup-snapshot-')); i++) await new Promise((r) => setTimeout(r, 200));
    expect((await readdir(dataDir)).filter((f) => f.startsWith('.backup-snapshot-'))).toEqual([]);
    expect((await api('POST', '/fhir/R4/Observation', JSON.stringify(heartRate(patientId, 61, '2025-03-01T08:00:00Z')))).status).toBe(201);
  });

  it('backs up the running node under write load; the restore holds one instant of it, documents with their rows, and the chain verifies', async () => {
    const file = path.join(work, 'clinic.tsbackup');
    let writing = true;
    const during: number[] = [];
    const before: number[] = [];
    let backupRunning = false;
    let failures = 0;
    const load = (async () => {
      for (let i = 0; writing; i++) {
        const started = performance.now();
        const res = await (i % 4 === 3
          ? api('POST', `/api/documents?patient=${patientId}&title=Carga&category=clinical-note`, pdf(i), 'application/pdf')
          : api('POST', '/fhir/R4/Observation', JSON.stringify(heartRate(patientId, 60 + (i % 40), '2025-03-01T09:00:00Z')))
        ).catch(() => ({ status: 0 }));
        if (res.status !== 201) failures += 1;
        (backupRunning ? during : before).push(performance.now() - started);
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    backupRunning = true;
    const backup = await runCli(['backup', file], env()).finally(() => {
      backupRunning = false;
      setTimeout(() => (writing = false), 300);
    });
    // A few more writes after the snapshot (for 300 ms): they must not be in it.
    await load;
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.stdout).toMatch(/^backup written: .*clinic\.tsbackup \([\d.]+ MB, [\d,]+ rows in \d+ tables, [\d.]+ s\)\. It opens only with master key [0-9a-f]{16}/);
    expect(backup.stdout).toMatch(/written by the running service over its admin socket; its requests waited \d+ ms for the snapshot/);
    expect(failures).toBe(0);
    // The service kept taking writes while the backup ran.
    expect(during.length).toBeGreaterThan(0);
    const slowest = (ms: number[]) => Math.round(Math.max(...ms));
    const median = (ms: number[]) => Math.round([...ms].sort((a, b) => a - b)[Math.floor(ms.length / 2)]!);
    console.info(
      `online backup: ${during.length} writes during it (median ${median(during)} ms, slowest ${slowest(during)} ms; without a backup: median ${median(before)} ms, slowest ${slowest(before)} ms); ${backup.stdout.split('\n')[1]}`,
    );
    // No snapshot copy is left behind in the data dir.
    expect((await readdir(dataDir)).filter((f) => f.startsWith('.backup-snapshot-'))).toEqual([]);

    // Stopped, the source can be read here and compared with what the restore gives.
    const exited = new Promise((resolve) => server!.on('exit', resolve));
    server!.kill('SIGTERM');
    await exited;
    server = undefined;
    await expect(stat(adminSocketPath(dataDir))).rejects.toThrow(/ENOENT/);

    const target = path.join(work, 'restored');
    const masterKey = (await readFile(path.join(dataDir, 'master.key'), 'utf8')).split('\n').find((l) => l && !l.startsWith('#'))!.trim();
    const auditKeyPem = await readFile(path.join(dataDir, 'audit-signing.key'), 'utf8');
    const restoreEnv = { TELESALUD_DATA_DIR: target, TELESALUD_MASTER_KEY: masterKey, TELESALUD_AUDIT_SIGNING_KEY: Buffer.from(auditKeyPem).toString('base64') };
    const restore = await runCli(['restore', file], restoreEnv);
    expect(restore.code, restore.stderr).toBe(0);
    const verify = await runCli(['audit', 'verify'], restoreEnv);
    expect(verify.code, verify.stderr).toBe(0);

    const source = await openPglite(path.join(dataDir, 'pg'));
    const copy = await openPglite(path.join(target, 'pg'));
    try {
      const tables = (await sql<{ name: string }>`select tablename as name from pg_tables where schemaname = 'public' and tablename not like 'schema_migration%'`.execute(copy.db)).rows.map((r) => r.name);
      let fewer = 0;
      for (const table of tables) {
        const restored = await rowsOf(copy.db, table);
        const original = await rowsOf(source.db, table);
        // Every restored row is, as PostgreSQL prints it, a row of the source.
        for (const row of restored) expect(original.has(row), `${table} row differs`).toBe(true);
        if (restored.size < original.size) fewer += 1;
      }
      // Writes after the snapshot are in the source only.
      expect(fewer).toBeGreaterThan(0);
      // Documents and the rows that name them are of the same instant: no DocumentReference without its bytes, and none the other way.
      const unmatched = await sql<{ n: number }>`
        select count(*)::int as n from document_reference d full join document_blob b on b.id = d.id where d.id is null or b.id is null`.execute(copy.db);
      expect(unmatched.rows[0]!.n).toBe(0);
      expect((await rowsOf(copy.db, 'document_blob')).size).toBeGreaterThan(4);
      // The restored chain is a prefix of the source's and verifies with the node's key.
      const key = (await loadAuditSigningKey({ dataDir, createIfMissing: false }))!;
      const copied = await verifyAuditChain(copy.db, { keys: [key] });
      expect(copied.ok).toBe(true);
      expect(copied.entries).toBeLessThan((await verifyAuditChain(source.db, { keys: [key] })).entries);
      // The backup and the key operations are on record, with the operating-system account behind them.
      const operations = await sql<{ actor: string; action: string; source: string; outcome: string; os_user: string | null }>`
        select actor, action, source, outcome, detail->>'osUser' as os_user from audit_event
         where actor in ('system:backup', 'system:keys-rotate', 'system:keys-retire', 'system:audit-verify') order by seq`.execute(source.db);
      expect(operations.rows.map((r) => `${r.actor} ${r.action}`)).toEqual([
        'system:audit-verify audit-search',
        'system:audit-verify audit-search',
        'system:keys-rotate key-rotation-started',
        'system:keys-rotate key-rotation-finished',
        'system:keys-retire key-retired',
        'system:backup export',
        'system:backup export',
      ]);
      // The one cut off is on record as failed.
      expect(operations.rows.slice(-2).map((r) => `${r.source} ${r.outcome}`)).toEqual(['admin-socket failed', 'admin-socket success']);
      for (const row of operations.rows) expect(row.os_user).toBe(os.userInfo().username);
    } finally {
      await source.close();
      await copy.close();
    }
  }, 300_000);
});
