import { cp, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentTotpCode } from '../auth/mfa/totp.js';
import { assertBuilt, httpsJson, startCli, waitForOutput } from '../test-support/cli-process.js';
import { pgliteTemplateDir } from '../test-support/paths.js';

// The quick start: `npm start -- --demo` must leave a newcomer able to sign in and hold a consultation.
describe('serve --demo', () => {
  let dataDir: string;
  let child: ReturnType<typeof startCli> | undefined;
  beforeAll(async () => {
    assertBuilt();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-demo-'));
    await cp(pgliteTemplateDir(), path.join(dataDir, 'pg'), { recursive: true });
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('seeds the clinic and prints a clinician and a patient who can sign in to one of today\'s consultations', async () => {
    child = startCli(['serve', '--demo'], { TELESALUD_DATA_DIR: dataDir, TELESALUD_PORT: '0', TELESALUD_HOST: '127.0.0.1' });
    const output: string[] = [];
    child.stdout.on('data', (d) => output.push(String(d)));
    const port = Number((await waitForOutput(child, /listening on https:\/\/[^:]+:(\d+)/, 90_000))[1]);
    const printed = output.join('');
    const accounts = JSON.parse(await readFile(path.join(dataDir, 'demo-accounts.json'), 'utf8'));
    expect((await stat(path.join(dataDir, 'demo-accounts.json'))).mode & 0o777).toBe(0o600);
    expect(printed).toContain(`clinician  ${accounts.clinician.email}  password ${accounts.clinician.password}`);
    expect(printed).toMatch(new RegExp(`/consult/${accounts.appointmentId}\\n`));

    const signIn = (body: Record<string, string>) => httpsJson(port, { method: 'POST', path: '/api/auth/sign-in', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const clinician = await signIn({ email: accounts.clinician.email, password: accounts.clinician.password, code: currentTotpCode(accounts.clinician.totpSecret) });
    expect(clinician.status).toBe(200);
    const patient = await signIn({ email: accounts.patient.email, password: accounts.patient.password });
    expect(patient.status).toBe(200);
    expect((await httpsJson(port, { path: `/consult/${accounts.appointmentId}` })).status).toBe(200);
  });
});
