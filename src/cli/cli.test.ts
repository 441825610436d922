import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { assertBuilt, httpsJson, runCli, startCli, waitForOutput } from '../test-support/cli-process.js';
import { adminQuery, databaseUrl } from '../test-support/global-setup.js';
import { LATEST_MIGRATION } from '../db/migrate.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

async function tempDataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-cli-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('telesalud CLI', () => {
  beforeAll(assertBuilt);

  it('explains itself with --help and lists its commands', async () => {
    const res = await runCli(['--help'], {});
    expect(res.code).toBe(0);
    for (const command of ['serve', 'migrate', 'seed-demo']) expect(res.stdout).toContain(command);
    const sub = await runCli(['seed-demo', '--help'], {});
    expect(sub.stdout).toContain('--patients');
  });

  it('stops with a one-line reason that names a bad variable', async () => {
    const res = await runCli(['serve'], { TELESALUD_PORT: 'eighty' });
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^telesalud: TELESALUD_PORT: /)]);
  });

  it('refuses an unknown command and bad options with a non-zero exit', async () => {
    expect((await runCli(['frobnicate'], {})).code).not.toBe(0);
    const res = await runCli(['seed-demo', '--patients', 'many'], { TELESALUD_DATA_DIR: await tempDataDir() });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('--patients');
  });

  it('serves HTTPS on the embedded default, drains on SIGTERM and finishes the request in flight', async () => {
    const dataDir = await tempDataDir();
    const token = randomBytes(24).toString('hex');
    const child = startCli(['serve'], { TELESALUD_DATA_DIR: dataDir, TELESALUD_PORT: '0', TELESALUD_HOST: '127.0.0.1', TELESALUD_ADMIN_TOKEN: token, TELESALUD_LOG_LEVEL: 'info' });
    cleanups.push(async () => child.kill('SIGKILL'));
    const port = Number((await waitForOutput(child, /listening on https:\/\/[^:]+:(\d+)/))[1]);

    expect((await httpsJson(port, { path: '/healthz' })).status).toBe(200);
    expect((await httpsJson(port, { path: '/readyz' })).body).toMatchObject({ status: 'ready', database: 'pglite' });
    expect((await httpsJson(port, { path: '/fhir/R4/Patient' })).status).toBe(401);
    expect((await httpsJson(port, { path: '/fhir/R4/metadata' })).body.resourceType).toBe('CapabilityStatement');
    const keyMode = (await stat(path.join(dataDir, 'master.key'))).mode & 0o777;
    expect(keyMode).toBe(0o600);

    // A request is half sent when SIGTERM arrives; it must still complete.
    const body = Buffer.from(JSON.stringify({ resourceType: 'Organization', name: 'Clínica en vuelo', active: true }));
    const inFlight = new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port, method: 'POST', path: '/fhir/R4/Organization', rejectUnauthorized: false, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json', 'content-length': body.length } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.write(body.subarray(0, 10));
      setTimeout(() => {
        child.kill('SIGTERM');
        setTimeout(() => req.end(body.subarray(10)), 300);
      }, 100);
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    expect(await inFlight).toBe(201);
    expect(await exited).toBe(0);
    // The lock is released: another process may take the data dir now.
    await expect(stat(path.join(dataDir, 'telesalud.pid'))).rejects.toThrow();
  });

  it('refuses a second process on the same embedded data dir', async () => {
    const dataDir = await tempDataDir();
    const child = startCli(['serve'], { TELESALUD_DATA_DIR: dataDir, TELESALUD_PORT: '0', TELESALUD_HOST: '127.0.0.1' });
    cleanups.push(async () => child.kill('SIGKILL'));
    await waitForOutput(child, /listening on/);
    const res = await runCli(['migrate'], { TELESALUD_DATA_DIR: dataDir });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/in use by telesalud process \d+/);
    // The generated admin token is in the data dir, readable by the owner only.
    expect((await stat(path.join(dataDir, 'admin-token'))).mode & 0o777).toBe(0o600);
  });

  it('seeds a demo clinic whose day of telehealth appointments the API shows', async () => {
    const dataDir = await tempDataDir();
    const seeded = await runCli(['seed-demo', '--patients', '8'], { TELESALUD_DATA_DIR: dataDir });
    expect(seeded.code, seeded.stderr).toBe(0);
    const summary = JSON.parse(seeded.stdout);
    expect(summary).toMatchObject({ practitioners: 4, patients: 8 });
    expect(summary.appointments).toBeGreaterThanOrEqual(24);

    const child = startCli(['serve'], { TELESALUD_DATA_DIR: dataDir, TELESALUD_PORT: '0', TELESALUD_HOST: '127.0.0.1' });
    cleanups.push(async () => child.kill('SIGKILL'));
    const port = Number((await waitForOutput(child, /listening on https:\/\/[^:]+:(\d+)/))[1]);
    const token = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
    const today = await httpsJson(port, { path: `/fhir/R4/Appointment?date=${summary.day}&_count=100&_total=accurate`, headers: { authorization: `Bearer ${token}` } });
    expect(today.status).toBe(200);
    expect(today.body.total).toBe(summary.appointments);
    const telehealth = today.body.entry.filter((e: any) => e.resource.appointmentType.coding[0].code === 'telehealth');
    expect(telehealth.length).toBeGreaterThan(summary.appointments / 2);
  });
});

describe.runIf(process.env.TELESALUD_TEST_DATABASE_URL)('telesalud migrate on PostgreSQL', () => {
  it('applies each migration once when several nodes migrate at the same moment', async () => {
    const base = process.env.TELESALUD_TEST_DATABASE_URL!;
    const name = `telesalud_test_migrate_${randomBytes(4).toString('hex')}`;
    await adminQuery(base, `create database ${name}`);
    cleanups.push(() => adminQuery(base, `drop database if exists ${name} with (force)`));
    const env = { TELESALUD_DATABASE_URL: databaseUrl(base, name) };
    const results = await Promise.all([1, 2, 3, 4].map(() => runCli(['migrate'], env)));
    expect(results.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    expect(results.filter((r) => r.stdout.includes('applied')).length).toBe(1);
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: env.TELESALUD_DATABASE_URL, max: 1 }) }) });
    try {
      const { rows } = await sql<{ name: string }>`select name from schema_migration`.execute(db);
      expect(rows.map((r) => r.name)).toContain(LATEST_MIGRATION);
      expect(new Set(rows.map((r) => r.name)).size).toBe(rows.length);
    } finally {
      await db.destroy();
    }
    expect((await runCli(['migrate'], env)).stdout).toContain('already up to date');
  });
});
