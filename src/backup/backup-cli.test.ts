import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, runCli } from '../test-support/cli-process.js';
import { pgliteTemplateDir } from '../test-support/paths.js';

// The operator's path on the embedded database: stop the service, back up, restore on a new machine.
describe('telesalud backup / restore commands (pglite)', () => {
  let work: string;
  let source: string;
  beforeAll(async () => {
    assertBuilt();
    work = await mkdtemp(path.join(os.tmpdir(), 'telesalud-backup-cli-'));
    source = path.join(work, 'source');
    await cp(pgliteTemplateDir(), path.join(source, 'pg'), { recursive: true });
    const seeded = await runCli(['seed-demo', '--patients', '3'], { TELESALUD_DATA_DIR: source });
    expect(seeded.code, seeded.stderr).toBe(0);
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('backs up a data dir and restores it into a new one that verifies, with the master key supplied', async () => {
    const file = path.join(work, 'clinic.tsbackup');
    const backup = await runCli(['backup', file], { TELESALUD_DATA_DIR: source });
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.stdout).toMatch(/^backup written: .*clinic\.tsbackup \([\d.]+ MB, [\d,]+ rows in \d+ tables, [\d.]+ s\)\. It opens only with master key [0-9a-f]{16}/);
    expect((await runCli(['backup', file], { TELESALUD_DATA_DIR: source })).stderr).toMatch(/already exists/);

    const target = path.join(work, 'new-machine');
    const noKey = await runCli(['restore', file], { TELESALUD_DATA_DIR: target });
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toMatch(/^telesalud: restore needs the master key the backup was made with/);

    const masterKey = (await readFile(path.join(source, 'master.key'), 'utf8')).split('\n').find((l) => l && !l.startsWith('#'))!.trim();
    const auditKey = Buffer.from(await readFile(path.join(source, 'audit-signing.key'), 'utf8')).toString('base64');
    const env = { TELESALUD_DATA_DIR: target, TELESALUD_MASTER_KEY: masterKey, TELESALUD_AUDIT_SIGNING_KEY: auditKey };
    const restore = await runCli(['restore', file], env);
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.stdout).toMatch(/^restored [\d,]+ rows in \d+ tables from a backup of /);
    const verify = await runCli(['audit', 'verify'], env);
    expect(verify.code, verify.stderr).toBe(0);
    expect((await runCli(['restore', file], env)).stderr).toMatch(/already holds a database/);
  });
});
