import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, httpsJson, runCli, startCli, waitForOutput } from '../test-support/cli-process.js';
import { pgliteTemplateDir } from '../test-support/paths.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

/** A data dir holding a copy of the run's migrated PGlite template (creating one takes seconds). */
async function dataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-client-cli-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await cp(pgliteTemplateDir(), path.join(dir, 'pg'), { recursive: true });
  return dir;
}

describe('telesalud client (OAuth clients of the FHIR API)', () => {
  beforeAll(assertBuilt);

  it('explains itself and refuses bad input with one line and a non-zero exit, creating nothing', async () => {
    const help = await runCli(['client', 'add', '--help'], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--scopes');
    const dir = await dataDir();
    for (const [args, reason] of [
      [['--name', 'lab', '--scopes', 'system/Patient.rad'], /^telesalud: --scopes: scope "system\/Patient\.rad" is not system\//],
      [['--name', 'lab', '--scopes', 'patient/Patient.read'], /^telesalud: --scopes: .*only system\//],
      [['--name', '', '--scopes', 'system/Patient.read'], /^telesalud: --name must have 1 to 100/],
    ] as const) {
      const res = await runCli(['client', 'add', ...args], { TELESALUD_DATA_DIR: dir });
      expect(res.code).toBe(1);
      expect(res.stderr.trim().split('\n')).toEqual([expect.stringMatching(reason)]);
    }
    expect((await runCli(['client', 'add', '--name', 'lab'], { TELESALUD_DATA_DIR: dir })).code).not.toBe(0);
    const list = await runCli(['client', 'list'], { TELESALUD_DATA_DIR: dir });
    expect(JSON.parse(list.stdout)).toEqual([]);
  });

  it('adds a client whose credentials get a token the FHIR API honours within its scopes, and revokes it', async () => {
    const dir = await dataDir();
    const added = await runCli(['client', 'add', '--name', 'Laboratorio Central', '--scopes', 'system/Patient.read system/Observation.rs'], { TELESALUD_DATA_DIR: dir });
    expect(added.code).toBe(0);
    const client = JSON.parse(added.stdout);
    expect(client).toEqual({ client_id: expect.stringMatching(/^tsc-[0-9a-f]{24}$/), client_secret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), name: 'Laboratorio Central', scope: 'system/Patient.read system/Observation.rs' });
    const listed = await runCli(['client', 'list'], { TELESALUD_DATA_DIR: dir });
    expect(listed.stdout).not.toContain(client.client_secret);
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ client_id: client.client_id, status: 'active' })]);

    const server = startCli(['serve'], { TELESALUD_DATA_DIR: dir, TELESALUD_PORT: '0', TELESALUD_HOST: '127.0.0.1' });
    cleanups.push(async () => server.kill('SIGKILL'));
    const port = Number((await waitForOutput(server, /listening on https:\/\/[^:]+:(\d+)/))[1]);
    const token = await httpsJson(port, {
      method: 'POST',
      path: '/oauth2/token',
      headers: { authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    expect(token.status).toBe(200);
    const bearer = { authorization: `Bearer ${token.body.access_token}` };
    expect((await httpsJson(port, { path: '/fhir/R4/Patient', headers: bearer })).status).toBe(200);
    const write = await httpsJson(port, { method: 'POST', path: '/fhir/R4/Patient', headers: { ...bearer, 'content-type': 'application/fhir+json' }, body: JSON.stringify({ resourceType: 'Patient', gender: 'other' }) });
    expect(write.status).toBe(403);
    const exited = new Promise((resolve) => server.on('exit', resolve));
    server.kill('SIGTERM');
    await exited;

    const revoked = await runCli(['client', 'revoke', client.client_id], { TELESALUD_DATA_DIR: dir });
    expect(revoked.code).toBe(0);
    expect(JSON.parse(revoked.stdout)).toEqual({ client_id: client.client_id, status: 'revoked' });
    const again = await runCli(['client', 'revoke', client.client_id], { TELESALUD_DATA_DIR: dir });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^telesalud: no active client/);
  }, 150_000);
});
