import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../actor.js';
import { createAccount, type NewAccount } from '../accounts/account-service.js';
import { AuthTestClient } from '../auth-test-client.js';
import { currentTotpCode } from '../mfa/totp.js';
import { Repository } from '../../records/repository.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
/** The next step's code: the sign-in already used the current one, and the replay guard refuses it. */
const nextCode = (secret: string, steps = 1) => currentTotpCode(secret, new Date(Date.now() + steps * 30_000));

describe.each(STORE_KINDS)('policy, MFA and account administration (%s)', (kind) => {
  let node: TestNode;
  let admin: NewAccount;
  let clinician: NewAccount;
  let patientAccount: NewAccount;
  let adminClient: AuthTestClient;
  beforeAll(async () => {
    node = await startTestNode(kind);
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const make = (email: string, role: string, name: string) => createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email, role, name, password: PASSWORD });
    admin = await make('admin@clinica.example.org', 'admin', 'Marta Ruiz');
    clinician = await make('doctora@clinica.example.org', 'clinician', 'Lucía Fernández');
    patientAccount = await make('paciente@example.org', 'patient', 'Tomás Romero');
    adminClient = new AuthTestClient(node);
    expect((await adminClient.signIn({ email: admin.email, password: PASSWORD, code: currentTotpCode(admin.totpSecret!) })).statusCode).toBe(200);
  });
  beforeEach(async () => {
    // Each test signs in afresh: let every test use the current TOTP step again.
    await node.ctx.store.db.updateTable('account').set({ totp_last_step: null }).where('id', '!=', admin.id).execute();
  });
  afterAll(async () => {
    await node?.stop();
  });

  const signedIn = async (email: string, secret?: string) => {
    const client = new AuthTestClient(node);
    const res = await client.signIn({ email, password: PASSWORD, ...(secret ? { code: currentTotpCode(secret) } : {}) });
    expect(res.statusCode).toBe(200);
    return client;
  };

  it('lets an admin read and change the policy, validated, audited, and applied at the next sign-in', async () => {
    const before = await adminClient.get('/api/admin/policy');
    expect(before.statusCode).toBe(200);
    expect(before.json()).toMatchObject({ password: { minLength: 12, historySize: 5, expiryDays: { patient: null, clinician: 180 } }, mfaRequired: { patient: false, clinician: true, admin: true }, sessions: { idleMinutes: { patient: 30, clinician: 15 }, absoluteHours: 12 } });

    const bad = await adminClient.send('PUT', '/api/admin/policy', { password: { minLength: 4 }, mfaRequired: { admin: false }, sessions: { idleMinutes: { patient: 0 } }, colour: 'blue' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().issues.map((i: { field: string }) => i.field).sort()).toEqual(['colour', 'mfaRequired.admin', 'password.minLength', 'sessions.idleMinutes.patient']);
    expect((await adminClient.get('/api/admin/policy')).json()).toEqual(before.json());

    // A patient with a session before the change keeps it; the next sign-in must enrol a second factor.
    const patient = await signedIn('paciente@example.org');
    expect((await patient.send('PUT', '/api/admin/policy', { mfaRequired: { patient: true } })).statusCode).toBe(403);
    const changed = await adminClient.send('PUT', '/api/admin/policy', { mfaRequired: { patient: true }, sessions: { idleMinutes: { patient: 20 } } });
    expect(changed.statusCode).toBe(200);
    expect(changed.json().mfaRequired.patient).toBe(true);
    const next = new AuthTestClient(node);
    const res = await next.signIn({ email: 'paciente@example.org', password: PASSWORD });
    expect(res.statusCode).toBe(200);
    expect(res.json().mfaEnrolmentRequired).toBe(true);
    expect((await next.get(`/fhir/R4/Patient/${patientAccount.patientId}`)).json().issue[0].code).toBe('mfa-enrolment-required');
    const session = await node.ctx.store.db.selectFrom('session').select('idle_timeout_seconds').where('account_id', '=', patientAccount.id).orderBy('created', 'desc').executeTakeFirstOrThrow();
    expect(session.idle_timeout_seconds).toBe(20 * 60);

    // Enrolment in that session: the password alone (there is no factor yet), then a code.
    const enrol = await next.post('/api/auth/mfa/totp/enrol', { password: PASSWORD });
    expect(enrol.statusCode).toBe(200);
    const confirmed = await next.post('/api/auth/mfa/totp/confirm', { code: currentTotpCode(enrol.json().secret) });
    expect(confirmed.statusCode).toBe(200);
    expect((await next.get(`/fhir/R4/Patient/${patientAccount.patientId}`)).statusCode).toBe(200);
    // The change of factor ended the older session.
    expect((await patient.get('/api/auth/session')).statusCode).toBe(401);
    // …and a patient may not turn MFA off while the policy requires it.
    expect((await next.post('/api/auth/mfa/totp/disable', { password: PASSWORD, code: nextCode(enrol.json().secret) })).json().error).toBe('mfa-required-by-policy');

    const audit = await node.ctx.store.db.selectFrom('audit_event').select(['outcome', 'detail']).where('action', '=', 'policy-changed').orderBy('seq').execute();
    expect(audit.map((a) => a.outcome)).toEqual(['failed', 'success']);
    expect(audit[1]!.detail).toMatchObject({ changed: expect.arrayContaining(['mfaRequired.patient', 'sessions.idleMinutes.patient']) });

    await adminClient.send('PUT', '/api/admin/policy', { mfaRequired: { patient: false }, sessions: { idleMinutes: { patient: 30 } } });
    // Optional again: the patient may turn the app off (password and a fresh code).
    const off = await next.post('/api/auth/mfa/totp/disable', { password: PASSWORD, code: nextCode(enrol.json().secret, 1) });
    expect(off.statusCode).toBe(200);
    expect((await new AuthTestClient(node).signIn({ email: 'paciente@example.org', password: PASSWORD })).statusCode).toBe(200);
  });

  it('re-enrols an authenticator app only after the password and a current code', async () => {
    const client = await signedIn(clinician.email, clinician.totpSecret);
    expect((await client.post('/api/auth/mfa/totp/enrol', { password: PASSWORD })).json().error).toBe('reauthentication-failed');
    expect((await client.post('/api/auth/mfa/totp/enrol', { password: 'wrong-password-here', code: nextCode(clinician.totpSecret!) })).statusCode).toBe(403);
    const enrol = await client.post('/api/auth/mfa/totp/enrol', { password: PASSWORD, code: nextCode(clinician.totpSecret!) });
    expect(enrol.statusCode).toBe(200);
    const secret = enrol.json().secret as string;
    expect(secret).not.toBe(clinician.totpSecret);
    // Until confirmed, the old app still signs in and the new one does not.
    await node.ctx.store.db.updateTable('account').set({ totp_last_step: null }).where('id', '=', clinician.id).execute();
    expect((await new AuthTestClient(node).signIn({ email: clinician.email, password: PASSWORD, code: currentTotpCode(secret) })).statusCode).toBe(401);
    const confirmed = await client.post('/api/auth/mfa/totp/confirm', { code: currentTotpCode(secret) });
    expect(confirmed.statusCode).toBe(200);
    await node.ctx.store.db.updateTable('account').set({ totp_last_step: null }).where('id', '=', clinician.id).execute();
    expect((await new AuthTestClient(node).signIn({ email: clinician.email, password: PASSWORD, code: currentTotpCode(clinician.totpSecret!) })).statusCode).toBe(401);
    expect((await new AuthTestClient(node).signIn({ email: clinician.email, password: PASSWORD, code: currentTotpCode(secret) })).statusCode).toBe(200);
    clinician.totpSecret = secret;
  });

  it('regenerates recovery codes: the new ones work once, the old ones no more', async () => {
    const client = await signedIn(clinician.email, clinician.totpSecret);
    const first = await client.post('/api/auth/mfa/recovery-codes', { password: PASSWORD, code: nextCode(clinician.totpSecret!) });
    expect(first.statusCode).toBe(200);
    const old = first.json().recoveryCodes as string[];
    expect(old).toHaveLength(10);
    const second = await client.post('/api/auth/mfa/recovery-codes', { password: PASSWORD, code: nextCode(clinician.totpSecret!, -1) });
    expect(second.statusCode).toBe(403); // an older step than the last one used: replay guard
    await node.ctx.store.db.updateTable('account').set({ totp_last_step: null }).where('id', '=', clinician.id).execute();
    const fresh = (await client.post('/api/auth/mfa/recovery-codes', { password: PASSWORD, code: currentTotpCode(clinician.totpSecret!) })).json().recoveryCodes as string[];
    expect(fresh).toHaveLength(10);
    expect(fresh).not.toContain(old[0]);
    const stored = await node.ctx.store.db.selectFrom('recovery_code').select('hash').where('account_id', '=', clinician.id).execute();
    expect(stored.every((r) => !fresh.some((c) => r.hash.includes(c)))).toBe(true);
    expect((await new AuthTestClient(node).signIn({ email: clinician.email, password: PASSWORD, code: old[0]! })).statusCode).toBe(401);
    expect((await new AuthTestClient(node).signIn({ email: clinician.email, password: PASSWORD, code: fresh[0]! })).statusCode).toBe(200);
    expect((await new AuthTestClient(node).signIn({ email: clinician.email, password: PASSWORD, code: fresh[0]! })).statusCode).toBe(401);
  });

  it('lists accounts for admins only, without hashes or secrets', async () => {
    const res = await adminClient.get('/api/admin/accounts?role=clinician');
    expect(res.statusCode).toBe(200);
    expect(res.json().accounts.map((a: { email: string }) => a.email)).toEqual(['doctora@clinica.example.org']);
    expect(res.json().accounts[0].mfa).toMatchObject({ totp: true });
    expect(res.body).not.toMatch(/argon2|password_hash|totp_secret|\$rc1\$|v1\./);
    expect((await adminClient.get('/api/admin/accounts?q=ROMERO')).json().accounts.map((a: { email: string }) => a.email)).toEqual(['paciente@example.org']);
    const doctor = await signedIn(clinician.email, clinician.totpSecret);
    expect((await doctor.get('/api/admin/accounts')).statusCode).toBe(403);
    expect((await node.request({ method: 'GET', url: '/api/admin/accounts' })).statusCode).toBe(200);
  });

  it('unlocks, disables, enables and resets an account, each ending its sessions', async () => {
    const db = node.ctx.store.db;
    const action = (what: string, id = patientAccount.id, csrf = true) => adminClient.post(`/api/admin/accounts/${id}/${what}`, {}, { csrf });

    await node.ctx.sessions.endAll(patientAccount.id);
    let victim = await signedIn('paciente@example.org');
    await db.updateTable('account').set({ failed_sign_ins: 10, locked_until: new Date(Date.now() + 15 * 60_000) }).where('id', '=', patientAccount.id).execute();
    expect((await new AuthTestClient(node).signIn({ email: 'paciente@example.org', password: PASSWORD })).statusCode).toBe(401);
    expect((await action('unlock', patientAccount.id, false)).statusCode).toBe(403);
    const unlocked = await action('unlock');
    expect(unlocked.statusCode).toBe(200);
    expect(unlocked.json().sessionsEnded).toBe(1);
    expect((await victim.get('/api/auth/session')).statusCode).toBe(401);

    victim = await signedIn('paciente@example.org');
    expect((await action('disable')).statusCode).toBe(200);
    expect((await victim.get('/api/auth/session')).statusCode).toBe(401);
    const whileDisabled = await new AuthTestClient(node).signIn({ email: 'paciente@example.org', password: PASSWORD });
    const unknown = await new AuthTestClient(node).signIn({ email: 'nadie@example.org', password: PASSWORD });
    expect(whileDisabled.statusCode).toBe(401);
    expect(whileDisabled.body).toBe(unknown.body);
    expect((await action('enable')).statusCode).toBe(200);
    victim = await signedIn('paciente@example.org');
    expect((await action('end-sessions')).json().sessionsEnded).toBe(1);
    expect((await victim.get('/api/auth/session')).statusCode).toBe(401);

    // Reset MFA: the clinician's next sign-in enrols a new factor before anything else.
    const doctor = await signedIn(clinician.email, clinician.totpSecret);
    expect((await action('reset-mfa', clinician.id)).statusCode).toBe(200);
    expect((await doctor.get('/api/auth/session')).statusCode).toBe(401);
    const after = await new AuthTestClient(node).signIn({ email: clinician.email, password: PASSWORD });
    expect(after.statusCode).toBe(200);
    expect(after.json().mfaEnrolmentRequired).toBe(true);

    // An admin can't lock themselves out, and an unknown account is a 404.
    expect((await action('disable', admin.id)).statusCode).toBe(409);
    expect((await action('unlock', '00000000-0000-4000-8000-000000000000')).statusCode).toBe(404);
    const actions = await db.selectFrom('audit_event').select('action').where('actor', '=', `account:${admin.id}`).execute();
    expect(actions.map((a) => a.action)).toEqual(expect.arrayContaining(['account-unlocked', 'account-disabled', 'account-enabled', 'sessions-ended', 'mfa-reset']));
  });

  it('a session dies at its next request once the password changed, wherever it was changed', async () => {
    const victim = await signedIn('paciente@example.org');
    await node.ctx.store.db.updateTable('account').set({ password_changed_at: new Date(Date.now() + 1000) }).where('id', '=', patientAccount.id).execute();
    expect((await victim.get('/api/auth/session')).statusCode).toBe(401);
    await node.ctx.store.db.updateTable('account').set({ password_changed_at: new Date(Date.now() - 1000) }).where('id', '=', patientAccount.id).execute();
  });

  it('needs the CSRF token for every change of the account lifecycle', async () => {
    const id = patientAccount.id;
    const changes: [('POST' | 'PUT' | 'DELETE'), string, unknown][] = [
      ['POST', '/api/auth/password', { currentPassword: PASSWORD, newPassword: `${PASSWORD}-x` }],
      ['POST', '/api/auth/mfa/totp/enrol', { password: PASSWORD }],
      ['POST', '/api/auth/mfa/totp/confirm', { code: '123456' }],
      ['POST', '/api/auth/mfa/totp/disable', { password: PASSWORD }],
      ['POST', '/api/auth/mfa/recovery-codes', { password: PASSWORD }],
      ['POST', '/api/auth/passkeys/register/options', { password: PASSWORD }],
      ['POST', '/api/auth/passkeys/register/verify', { response: {} }],
      ['POST', '/api/invitations', { email: 'x@example.org', name: 'X' }],
      ['PUT', '/api/admin/policy', { mfaRequired: { patient: true } }],
      ...['unlock', 'disable', 'enable', 'reset-mfa', 'end-sessions'].map((a): ['POST', string, unknown] => ['POST', `/api/admin/accounts/${id}/${a}`, {}]),
      ['POST', '/api/auth/sign-out', {}],
    ];
    for (const [method, url, payload] of changes) {
      const res = await adminClient.send(method, url, payload, { csrf: false });
      expect([url, res.statusCode, res.json().message]).toEqual([url, 403, 'missing or wrong X-CSRF-Token header']);
    }
    expect((await adminClient.get('/api/admin/policy')).json().mfaRequired.patient).toBe(false);
    expect((await adminClient.get('/api/auth/session')).statusCode).toBe(200);
  });
});

