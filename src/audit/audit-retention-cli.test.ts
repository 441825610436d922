import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../cli/main.js';
import { loadConfig } from '../config/config.js';
import { openPglite, openPostgres, type Store } from '../db/database.js';
import { adminQuery, databaseUrl } from '../test-support/global-setup.js';
import { pgliteTemplateDir, pgTemplateDatabase } from '../test-support/paths.js';
import { STORE_KINDS, testLogger } from '../test-support/test-node.js';
import { AuditLog } from './audit-log.js';
import { parseAuditSigningKey } from './audit-signing-key.js';

const VARS = ['TELESALUD_DATA_DIR', 'TELESALUD_DATABASE_URL', 'TELESALUD_AUDIT_SIGNING_KEY', 'TELESALUD_ADMIN_TOKEN', 'TELESALUD_LOG_LEVEL'];

describe('TELESALUD_AUDIT_RETENTION_DAYS', () => {
  it('is off by default (kept forever), and refuses less than a year or a non-number in one line', () => {
    expect(loadConfig({}).auditRetentionDays).toBeUndefined();
    expect(loadConfig({ TELESALUD_AUDIT_RETENTION_DAYS: '2190' }).auditRetentionDays).toBe(2190);
    expect(() => loadConfig({ TELESALUD_AUDIT_RETENTION_DAYS: '30' })).toThrow(/TELESALUD_AUDIT_RETENTION_DAYS.*between 365 and 36500, got 30/);
    expect(() => loadConfig({ TELESALUD_AUDIT_RETENTION_DAYS: '6y' })).toThrow(/TELESALUD_AUDIT_RETENTION_DAYS.*whole number/);
  });
});

describe.each(STORE_KINDS)('telesalud audit archive / truncate / verify (%s)', (kind) => {
  const saved: Record<string, string | undefined> = {};
  let dir: string;
  let url: string | undefined;
  let dropDatabase = async () => undefined as void;
  let envKey: string;
  const open = async (): Promise<Store> => (kind === 'pglite' ? openPglite(path.join(dir, 'pg')) : openPostgres(url!, 2));

  beforeAll(async () => {
    for (const v of VARS) saved[v] = process.env[v];
    dir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-retention-cli-'));
    if (kind === 'pglite') await cp(pgliteTemplateDir(), path.join(dir, 'pg'), { recursive: true });
    else {
      const base = process.env.TELESALUD_TEST_DATABASE_URL!;
      const name = `telesalud_test_${randomBytes(6).toString('hex')}`;
      await adminQuery(base, `create database ${name} template ${pgTemplateDatabase()}`);
      url = databaseUrl(base, name);
      dropDatabase = () => adminQuery(base, `drop database if exists ${name} with (force)`);
    }
    const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    envKey = Buffer.from(pem).toString('base64');
    const key = parseAuditSigningKey(pem, 'test key');
    const store = await open();
    try {
      // Twelve entries from 2019 (their time is what the chain covers), then three from today.
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(new Date('2019-03-01T10:00:00Z'));
      const old = new AuditLog(store.db, testLogger(), { signingKey: key, checkpointEvery: 5, checkpointIntervalMs: 3_600_000 });
      for (let i = 0; i < 12; i++) await old.record({ actor: 'Practitioner/dr-1', action: 'read', resourceType: 'Observation', resourceId: `obs-${i}`, patient: 'Patient/p-1', outcome: 'success' });
      await old.drain();
      vi.useRealTimers();
      const now = new AuditLog(store.db, testLogger(), { signingKey: key, checkpointEvery: 5, checkpointIntervalMs: 3_600_000 });
      for (let i = 0; i < 3; i++) await now.record({ actor: 'Practitioner/dr-2', action: 'read', resourceType: 'Observation', resourceId: `obs-new-${i}`, outcome: 'success' });
      await now.drain();
    } finally {
      vi.useRealTimers();
      await store.close();
    }
  });
  afterAll(async () => {
    for (const v of VARS) {
      if (saved[v] === undefined) delete process.env[v];
      else process.env[v] = saved[v];
    }
    await dropDatabase();
    await rm(dir, { recursive: true, force: true });
  });

  async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    for (const v of VARS) delete process.env[v];
    const env: Record<string, string> = { TELESALUD_DATA_DIR: dir, TELESALUD_AUDIT_SIGNING_KEY: envKey, TELESALUD_LOG_LEVEL: 'silent', ...(url ? { TELESALUD_DATABASE_URL: url } : {}) };
    Object.assign(process.env, env);
    let stdout = '';
    let stderr = '';
    const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: any) => ((stdout += String(chunk)), true));
    const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: any) => ((stderr += String(chunk)), true));
    try {
      return { code: await main(args), stdout, stderr };
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  }

  it('archives, truncates with the archive, and verify says what was removed and when; tampering after it is named', async () => {
    const recent = new Date(Date.now() - 10 * 86_400_000).toISOString().slice(0, 10);
    const tooRecent = await run(['audit', 'truncate', '--before', recent]);
    expect(tooRecent.code).toBe(1);
    expect(tooRecent.stderr).toMatch(/younger than 365 days/);
    expect((await run(['audit', 'truncate', '--before', '2019-01-01'])).stdout).toMatch(/^nothing to remove: no signed checkpoint lies entirely before 2019-01-01T00:00:00.000Z/);
    expect((await run(['audit', 'truncate', '--before', '2020-01-01', '--dry-run'])).stdout).toBe('would remove entries 1…12 (12), up to the signed checkpoint at seq 12\n');

    const archiveFile = path.join(dir, 'audit-2019.jsonl');
    const archived = await run(['audit', 'archive', '--before', '2020-01-01', archiveFile]);
    expect(archived.code, archived.stderr).toBe(0);
    expect(archived.stdout).toMatch(/^archived entries 1…12 \(12\), up to the signed checkpoint at seq 12 and 3 checkpoints to .*audit-2019\.jsonl \(sha256 [0-9a-f]{64}\)\n$/);
    expect((await run(['audit', 'archive', '--before', '2020-01-01', archiveFile])).stderr).toMatch(/already exists/);
    expect((await readFile(archiveFile, 'utf8')).split('\n').filter((l) => l.includes('"entry"'))).toHaveLength(12);

    const truncated = await run(['audit', 'truncate', '--before', '2020-01-01', '--archive', path.join(dir, 'removed.jsonl')]);
    expect(truncated.code, truncated.stderr).toBe(0);
    expect(truncated.stdout).toMatch(/^removed entries 1…12 \(12\), up to the signed checkpoint at seq 12; the checkpoint at seq 12 now anchors the chain; archived first to .*removed\.jsonl \(sha256 ([0-9a-f]{64})\)\n$/);
    const sha = /sha256 ([0-9a-f]{64})/.exec(truncated.stdout)![1];

    const verified = await run(['audit', 'verify']);
    expect(verified.code, verified.stderr).toBe(0);
    const lines = verified.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^audit chain valid: \d+ entries, \d+ signed checkpoints \(last at seq \d+\); verified from the signed anchor at seq 12$/);
    expect(lines[1]).toMatch(new RegExp(`^  removed by retention: entries 1…12 \\(12, recorded before 2020-01-01T00:00:00.000Z\\) on \\d{4}-\\d{2}-\\d{2}T[\\d:.]+Z, archived \\(sha256 ${sha}\\)$`));

    // Someone edits an entry that stayed: verify names it.
    const store = await open();
    try {
      const audited = await sql<{ action: string; detail: any }>`select action, detail from audit_event order by seq`.execute(store.db);
      // The export and the removal are on record.
      expect(audited.rows.map((r) => r.action)).toEqual(expect.arrayContaining(['audit-export', 'audit-truncated']));
      await store.db.transaction().execute(async (tx) => {
        await sql`alter table audit_event disable trigger audit_event_append_only`.execute(tx);
        await sql`update audit_event set actor = 'Practitioner/nobody' where seq = 14`.execute(tx);
        await sql`alter table audit_event enable trigger audit_event_append_only`.execute(tx);
      });
    } finally {
      await store.close();
    }
    const broken = await run(['audit', 'verify']);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/audit chain BROKEN: entry 14 altered/);
  }, 180_000);
});
