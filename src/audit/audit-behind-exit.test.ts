import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, httpsJson, startCli, waitForOutput } from '../test-support/cli-process.js';
import { startTestNode, type TestNode } from '../test-support/test-node.js';

/**
 * A node that must exit while the database refuses its audit entries (TELESALUD_AUDIT_COMMIT=behind,
 * the default) leaves the reads it answered in its log: the one witness left once the shutdown
 * timeout runs out. Real PostgreSQL: the test breaks the append under the running `telesalud serve`.
 */
describe.runIf(process.env.TELESALUD_TEST_DATABASE_URL)('an audited read answered before a forced exit', () => {
  let node: TestNode;
  let dir: string;
  beforeAll(async () => {
    assertBuilt();
    node = await startTestNode('postgres');
    dir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-audit-exit-'));
  });
  afterAll(async () => {
    await sql`alter function if exists audit_append_batch_unavailable rename to audit_append_batch`.execute(node.ctx.store.db).catch(() => undefined);
    await node?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('logs each entry it could not write, by id, and exits 1', async () => {
    const created = await node.request({ method: 'POST', url: '/fhir/R4/Patient', payload: { resourceType: 'Patient', name: [{ family: 'Salida', given: ['Forzada'] }] } });
    const patientId = (created.json() as { id: string }).id;
    const logFile = path.join(dir, 'serve.log');
    const child = startCli(['serve'], {
      TELESALUD_DATA_DIR: path.join(dir, 'data'),
      TELESALUD_DATABASE_URL: node.config.databaseUrl!,
      TELESALUD_ADMIN_TOKEN: node.token,
      TELESALUD_PORT: '0',
      TELESALUD_HOST: '127.0.0.1',
      TELESALUD_SHUTDOWN_TIMEOUT_MS: '1500',
      TELESALUD_LOG_FILE: logFile,
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const port = Number((await waitForOutput(child, /listening on https:\/\/[^:]+:(\d+)/))[1]);
      await sql`alter function audit_append_batch rename to audit_append_batch_unavailable`.execute(node.ctx.store.db);
      const read = await httpsJson(port, { path: `/fhir/R4/Patient/${patientId}`, headers: { authorization: `Bearer ${node.token}` } });
      expect(read.status).toBe(200);
      child.kill('SIGTERM');
      expect(await exited).toBe(1);
    } finally {
      child.kill('SIGKILL');
    }
    const lines = (await readFile(logFile, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { msg: string; auditEntry?: { action: string; resourceId?: string; patient?: string; accessedAt: string } });
    const unwritten = lines.filter((l) => l.msg === 'audit entry not written before exit').map((l) => l.auditEntry);
    expect(unwritten).toContainEqual(expect.objectContaining({ action: 'read', resourceId: patientId, patient: `Patient/${patientId}`, accessedAt: expect.any(String) }));
    // Ids only, as in every log line: the patient's name never reaches it.
    expect(lines.some((l) => JSON.stringify(l).includes('Salida'))).toBe(false);
  });
});
