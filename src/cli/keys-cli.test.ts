import { randomBytes } from 'node:crypto';
import { chmod, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount } from '../auth/accounts/account-service.js';
import { AuthTestClient } from '../auth/auth-test-client.js';
import { currentTotpCode } from '../auth/mfa/totp.js';
import { loadConfig } from '../config/config.js';
import { Repository } from '../records/repository.js';
import { buildApp } from '../server/app.js';
import { startNode } from '../server/node.js';
import { assertBuilt, runCli } from '../test-support/cli-process.js';
import { create, patient } from '../test-support/fixtures.js';
import { startTestNode, testLogger, type TestNode } from '../test-support/test-node.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const PDF = Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(3000), Buffer.from('\n%%EOF\n')]);

/** The node again on the same data dir, the way `serve` starts it. */
async function restart(dataDir: string, token: string): Promise<TestNode> {
  const config = loadConfig({ TELESALUD_DATA_DIR: dataDir, TELESALUD_ADMIN_TOKEN: token, TELESALUD_PORT: '0', TELESALUD_HOST: '127.0.0.1' });
  const ctx = await startNode(config, testLogger());
  const app = await buildApp(ctx);
  await app.ready();
  return {
    app,
    ctx,
    token,
    config,
    request: (options) => app.inject({ ...options, headers: { authorization: `Bearer ${token}`, ...(options.headers ?? {}) } }),
    async stop() {
      await app.close();
      await ctx.stop();
    },
  };
}

// The operator's path on the embedded database: stop the service, rotate, retire, start again.
describe('telesalud keys commands (pglite, built CLI)', () => {
  let dataDir: string;
  let token: string;
  let documentId: string;
  let clinician: { id: string; email: string; totpSecret: string };
  beforeAll(async () => {
    assertBuilt();
    const node = await startTestNode('pglite');
    dataDir = node.config.dataDir;
    token = node.token;
    const patientId = (await create(node, patient('Llaves', ['Ana']))).id;
    const up = await node.request({ method: 'POST', url: `/api/documents?patient=${patientId}&title=Informe`, payload: PDF, headers: { 'content-type': 'application/pdf' } });
    expect(up.statusCode).toBe(201);
    documentId = up.json().id;
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'keys-cli', source: 'test' });
    const made = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'clinica@example.org', role: 'clinician', name: 'Clínica Llaves', password: PASSWORD });
    clinician = { id: made.id, email: made.email, totpSecret: made.totpSecret! };
    // Stopped, not removed (node.stop() would delete the data dir the commands need).
    await node.app.close();
    await (node.ctx as typeof node.ctx & { stop(): Promise<void> }).stop();
  });
  afterAll(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('rotates, retires and rotates the audit key; the restarted node serves the same bytes and the same sign-in', async () => {
    const env = { TELESALUD_DATA_DIR: dataDir };
    const keyFile = path.join(dataDir, 'master.key');
    const secrets = [(await readFile(keyFile, 'utf8')).trim()];

    // A world-readable key file is refused at start, by the commands and by the service, naming the file.
    await chmod(keyFile, 0o644);
    const exposed = await runCli(['keys', 'status'], env);
    expect(exposed.code).toBe(1);
    expect(exposed.stderr).toBe(`telesalud: ${keyFile}: permissions 0644 let group or others access the master key; run chmod 600 ${keyFile}\n`);
    await expect(restart(dataDir, token)).rejects.toThrow(/chmod 600/);
    await chmod(keyFile, 0o600);

    const status = await runCli(['keys', 'status'], env);
    expect(status.code, status.stderr).toBe(0);
    const oldId = /^ {2}([0-9a-f]{16}) {2}current {2}1 document, 1 TOTP secret$/m.exec(status.stdout)?.[1];
    expect(oldId, status.stdout).toBeDefined();

    expect((await runCli(['keys', 'rotate', '--batch-size', '0'], env)).stderr).toMatch(/^telesalud: --batch-size must be a whole number/);
    const rotated = await runCli(['keys', 'rotate'], env);
    expect(rotated.code, rotated.stderr).toBe(0);
    const newId = new RegExp(`^new master key ([0-9a-f]{16}) is current in ${keyFile} \\(previous: ${oldId}\\); re-wrapped 1 document key and 1 TOTP secret`).exec(rotated.stdout)?.[1];
    expect(newId, rotated.stdout).toBeDefined();
    secrets.push(...(await readFile(keyFile, 'utf8')).split('\n').filter((l) => l && !l.startsWith('#')));

    const json = JSON.parse((await runCli(['keys', 'status', '--json'], env)).stdout);
    expect(json.keys).toEqual([
      { id: newId, state: 'current', documents: 1, totpSecrets: 1, queuedEmails: 0 },
      { id: oldId, state: 'old', documents: 0, totpSecrets: 0, queuedEmails: 0 },
    ]);

    const retired = await runCli(['keys', 'retire'], env);
    expect(retired.code, retired.stderr).toBe(0);
    expect(retired.stdout).toBe(`retired ${oldId}: ${keyFile} now holds only the current key ${newId}. Give every node this file.\n`);

    // Keys given in the environment are not rotated; the answer says how.
    const fromEnv = await runCli(['keys', 'rotate'], { ...env, TELESALUD_MASTER_KEY: randomBytes(32).toString('base64') });
    expect(fromEnv.code).toBe(1);
    expect(fromEnv.stderr).toMatch(/^telesalud: the master key comes from TELESALUD_MASTER_KEY, .*TELESALUD_MASTER_KEY_FILE.*\n$/);

    const audit = await runCli(['keys', 'rotate-audit'], env);
    expect(audit.code, audit.stderr).toBe(0);
    expect(audit.stdout).toMatch(/^new audit signing key [0-9a-f]{16} in .*audit-signing\.key; the previous key [0-9a-f]{16} is kept in .*audit-signing\.previous\.pub/);

    // The node comes back on the rotated keys: same bytes, same authenticator app; it signs with the new audit key.
    const node = await restart(dataDir, token);
    try {
      expect(node.ctx.keyRing.ids()).toEqual([newId]);
      const download = await node.request({ method: 'GET', url: `/api/documents/${documentId}/content` });
      expect(download.statusCode).toBe(200);
      expect(download.rawPayload.equals(PDF)).toBe(true);
      expect((await new AuthTestClient(node).signIn({ email: clinician.email, password: PASSWORD, code: currentTotpCode(clinician.totpSecret) })).statusCode).toBe(200);
    } finally {
      await node.stop();
    }

    // Checkpoints from before and after the audit key rotation verify together.
    const verified = await runCli(['audit', 'verify'], env);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(/^audit chain valid: \d+ entries, \d+ signed checkpoints/);
    const signers = await runCli(['audit', 'verify', '--json'], env);
    expect(JSON.parse(signers.stdout)).toMatchObject({ ok: true, checkpoints: expect.any(Number) });
    expect(JSON.parse(signers.stdout).checkpoints).toBeGreaterThanOrEqual(2);

    for (const run of [exposed, status, rotated, retired, fromEnv, audit, verified]) {
      for (const secret of secrets) expect(run.stdout + run.stderr).not.toContain(secret);
    }
  });
});
