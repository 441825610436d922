import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../actor.js';
import { createAccount, type NewAccount } from '../accounts/account-service.js';
import { AuthTestClient } from '../auth-test-client.js';
import { resetAllFactors } from '../mfa/account-mfa.js';
import { currentTotpCode } from '../mfa/totp.js';
import { SoftwareAuthenticator } from '../passkeys/software-authenticator.js';
import { authPolicy } from '../policy/auth-policy.js';
import { Repository } from '../../records/repository.js';
import { create, patient } from '../../test-support/fixtures.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';

const PASSWORD = 'niebla-espesa-sobre-Cartagena-1997';
const REASON = 'Paciente inconsciente traído por ambulancia, sin acompañante';
const PUBLIC_URL = 'https://telesalud.clinica.example:8443';

/**
 * Re-authentication for sensitive actions, through break-the-glass (and an export): the password
 * plus one of the account's own second factors — TOTP, a recovery code or a passkey whose challenge
 * belongs to this session and this action — or the password alone where the admin's policy lets a
 * role go without a second factor.
 */
describe.each(STORE_KINDS)('re-authentication for sensitive actions (%s)', (kind) => {
  let node: TestNode;
  let doctor: NewAccount; // TOTP, then recovery codes and a passkey
  let plain: NewAccount; // a clinician whose second factors an admin reset
  let client: AuthTestClient;
  let key: SoftwareAuthenticator;
  let recoveryCodes: string[];

  beforeAll(async () => {
    node = await startTestNode(kind, { TELESALUD_PUBLIC_URL: PUBLIC_URL });
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    doctor = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'urgencias@clinica.example.org', role: 'clinician', name: 'Inés Calderón', password: PASSWORD });
    plain = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'guardia@clinica.example.org', role: 'clinician', name: 'Raúl Medina', password: PASSWORD });
    await resetAllFactors(node.ctx.store.db, plain.id);

    client = new AuthTestClient(node);
    expect((await client.signIn({ email: doctor.email, password: PASSWORD, code: await freshCode(doctor) })).statusCode).toBe(200);
    const codes = await client.post('/api/auth/mfa/recovery-codes', { password: PASSWORD, code: await freshCode(doctor) });
    expect(codes.statusCode).toBe(200);
    recoveryCodes = codes.json().recoveryCodes;
    key = new SoftwareAuthenticator('telesalud.clinica.example', PUBLIC_URL);
    const options = await client.post('/api/auth/passkeys/register/options', { password: PASSWORD, code: await freshCode(doctor) });
    expect(options.statusCode).toBe(200);
    // Registering ends every session and hands this client a new one.
    expect((await client.post('/api/auth/passkeys/register/verify', { response: key.register(options.json()), label: 'lector de huellas' })).statusCode).toBe(200);
  });
  afterAll(async () => {
    await node?.stop();
  });

  /**
   * A TOTP code the replay guard lets through: the guard is forgotten first (as if the last code
   * were a minute old) so tests need not wait for the next 30-second step. The replay test uses
   * one code twice without this.
   */
  async function freshCode(account: NewAccount): Promise<string> {
    await node.ctx.store.db.updateTable('account').set({ totp_last_step: null }).where('id', '=', account.id).execute();
    return currentTotpCode(account.totpSecret!);
  }
  /** Failures in one test must not slow the next one down (the waits have a test of their own). */
  const forgetFailures = (account: NewAccount) => node.ctx.store.db.updateTable('account').set({ failed_sign_ins: 0, last_failed_at: null, locked_until: null }).where('id', '=', account.id).execute();
  const failures = async (account: NewAccount) => (await node.ctx.store.db.selectFrom('account').select('failed_sign_ins').where('id', '=', account.id).executeTakeFirstOrThrow()).failed_sign_ins;
  /** A patient out of every clinician's care, so that only break-the-glass opens their record. */
  const strangerPatient = async () => (await create(node, patient('Quiroga', ['Elena']))).id as string;
  const breakGlass = (as: AuthTestClient, patientId: string, proof: Record<string, unknown>) => as.post('/api/access/break-glass', { patientId, reason: REASON, ...proof });
  const passkeyOptions = (as: AuthTestClient, purpose: string) => as.post('/api/auth/reauth/passkey/options', { purpose });
  async function grantAudit(grantPatient: string): Promise<Record<string, unknown>> {
    await node.ctx.audit.drain();
    const row = await node.ctx.store.db.selectFrom('audit_event').select('detail').where('action', '=', 'break-glass').where('outcome', '=', 'success').where('patient', '=', `Patient/${grantPatient}`).executeTakeFirstOrThrow();
    return (typeof row.detail === 'string' ? JSON.parse(row.detail) : row.detail) as Record<string, unknown>;
  }

  it('breaks the glass with the password and a TOTP code, and a replayed code opens nothing more', async () => {
    const patientId = await strangerPatient();
    const code = await freshCode(doctor);
    const opened = await breakGlass(client, patientId, { password: PASSWORD, code });
    expect(opened.statusCode).toBe(201);
    expect((await grantAudit(patientId)).reauthentication).toBe('totp');

    const replayed = await breakGlass(client, await strangerPatient(), { password: PASSWORD, code });
    expect(replayed.statusCode).toBe(403);
    expect(replayed.json().error).toBe('reauthentication-failed');
    expect(await failures(doctor)).toBe(1);
    // Without any second factor the password alone is not enough for an account that has one.
    expect((await breakGlass(client, await strangerPatient(), { password: PASSWORD })).statusCode).toBe(403);
    await forgetFailures(doctor);
  });

  it('breaks the glass with the password and a recovery code, which is then used up', async () => {
    const patientId = await strangerPatient();
    const recovery = recoveryCodes[0]!;
    const opened = await breakGlass(client, patientId, { password: PASSWORD, code: recovery });
    expect(opened.statusCode).toBe(201);
    expect((await grantAudit(patientId)).reauthentication).toBe('recovery-code');
    const left = await node.ctx.store.db.selectFrom('recovery_code').select((eb) => eb.fn.countAll<number>().as('n')).where('account_id', '=', doctor.id).where('used_at', 'is', null).executeTakeFirstOrThrow();
    expect(Number(left.n)).toBe(recoveryCodes.length - 1);

    expect((await breakGlass(client, await strangerPatient(), { password: PASSWORD, code: recovery })).statusCode).toBe(403);
    // A right recovery code with a wrong password: refused, and the code is not spent.
    expect((await breakGlass(client, await strangerPatient(), { password: 'no-es-mi-contraseña-de-verdad', code: recoveryCodes[1]! })).statusCode).toBe(403);
    const unspent = await node.ctx.store.db.selectFrom('recovery_code').select('used_at').where('account_id', '=', doctor.id).where('position', '=', 1).executeTakeFirstOrThrow();
    expect(unspent.used_at).toBeNull();
    await forgetFailures(doctor);
  });

  it('breaks the glass with the password and a passkey assertion made for it, once', async () => {
    const options = await passkeyOptions(client, 'break-glass');
    expect(options.statusCode).toBe(200);
    expect(options.json().allowCredentials).toEqual([{ id: key.id, type: 'public-key', transports: ['internal'] }]);
    const assertion = key.assert(options.json());
    const patientId = await strangerPatient();
    const opened = await breakGlass(client, patientId, { password: PASSWORD, passkey: assertion });
    expect(opened.statusCode).toBe(201);
    expect((await grantAudit(patientId)).reauthentication).toBe('passkey');
    // The challenge was claimed: the same assertion opens nothing else.
    expect((await breakGlass(client, await strangerPatient(), { password: PASSWORD, passkey: assertion })).statusCode).toBe(403);
    // Nor does a passkey with the wrong password; that counts as a failure like any other.
    const again = key.assert((await passkeyOptions(client, 'break-glass')).json());
    expect((await breakGlass(client, await strangerPatient(), { password: 'no-es-mi-contraseña-de-verdad', passkey: again })).statusCode).toBe(403);
    expect(await failures(doctor)).toBe(2);
    await forgetFailures(doctor);
  });

  it('refuses a passkey challenge of another session, of another action, or expired', async () => {
    const other = new AuthTestClient(node);
    expect((await other.signIn({ email: doctor.email, password: PASSWORD, code: await freshCode(doctor) })).statusCode).toBe(200);

    // Issued to the other session: refused here, and still there for the session it was issued to.
    const theirs = key.assert((await passkeyOptions(other, 'break-glass')).json());
    expect((await breakGlass(client, await strangerPatient(), { password: PASSWORD, passkey: theirs })).statusCode).toBe(403);
    expect((await breakGlass(other, await strangerPatient(), { password: PASSWORD, passkey: theirs })).statusCode).toBe(201);

    // Issued for an export: it opens no record.
    const forExport = key.assert((await passkeyOptions(client, 'export')).json());
    expect((await breakGlass(client, await strangerPatient(), { password: PASSWORD, passkey: forExport })).statusCode).toBe(403);

    // Past its few minutes.
    const late = key.assert((await passkeyOptions(client, 'break-glass')).json());
    await sql`update webauthn_challenge set expires = now() - interval '1 second' where purpose = 'reauth:break-glass'`.execute(node.ctx.store.db);
    expect((await breakGlass(client, await strangerPatient(), { password: PASSWORD, passkey: late })).statusCode).toBe(403);

    // A challenge for no known action is bad input.
    expect((await passkeyOptions(client, 'sign-in')).statusCode).toBe(400);
    await forgetFailures(doctor);
  });

  it('refuses a second factor the account does not have, and two at once', async () => {
    // `plain` has no second factor: a passkey or a code offered in its name is the wrong method.
    await authPolicy(node.ctx.store.db).update({ mfaRequired: { clinician: false } }, 'test');
    try {
      const session = new AuthTestClient(node);
      expect((await session.signIn({ email: plain.email, password: PASSWORD })).statusCode).toBe(200);
      expect((await passkeyOptions(session, 'break-glass')).statusCode).toBe(409);
      const stray = key.assert((await passkeyOptions(client, 'break-glass')).json());
      expect((await breakGlass(session, await strangerPatient(), { password: PASSWORD, passkey: stray })).statusCode).toBe(403);
      expect((await breakGlass(session, await strangerPatient(), { password: PASSWORD, code: '123456' })).statusCode).toBe(403);
      await forgetFailures(plain);
    } finally {
      await authPolicy(node.ctx.store.db).update({ mfaRequired: { clinician: true } }, 'test');
    }
    // The doctor has no passkey by that id: an assertion of another authenticator fails.
    const stranger = new SoftwareAuthenticator('telesalud.clinica.example', PUBLIC_URL);
    const forged = stranger.assert((await passkeyOptions(client, 'break-glass')).json());
    expect((await breakGlass(client, await strangerPatient(), { password: PASSWORD, passkey: forged })).statusCode).toBe(403);
    await forgetFailures(doctor);

    // Both a code and a passkey: bad input, nothing checked, nothing counted, the code not spent.
    const both = await breakGlass(client, await strangerPatient(), { password: PASSWORD, code: recoveryCodes[2]!, passkey: key.assert((await passkeyOptions(client, 'break-glass')).json()) });
    expect(both.statusCode).toBe(400);
    expect(await failures(doctor)).toBe(0);
    expect((await node.ctx.store.db.selectFrom('recovery_code').select('used_at').where('account_id', '=', doctor.id).where('position', '=', 2).executeTakeFirstOrThrow()).used_at).toBeNull();
  });

  it("follows the admin's policy for an account without a second factor", async () => {
    const policy = authPolicy(node.ctx.store.db);
    await policy.update({ mfaRequired: { clinician: false } }, 'test');
    const session = new AuthTestClient(node);
    try {
      expect((await session.signIn({ email: plain.email, password: PASSWORD })).statusCode).toBe(200);
      const patientId = await strangerPatient();
      const opened = await breakGlass(session, patientId, { password: PASSWORD });
      expect(opened.statusCode).toBe(201);
      expect((await grantAudit(patientId)).reauthentication).toBe('password');
      expect((await breakGlass(session, await strangerPatient(), { password: 'no-es-mi-contraseña-de-verdad' })).statusCode).toBe(403);
      expect(await failures(plain)).toBe(1);
      await forgetFailures(plain);
    } finally {
      await policy.update({ mfaRequired: { clinician: true } }, 'test');
    }
    // The policy now requires a second factor and this session's account has none: enrol one first.
    const refused = await breakGlass(session, await strangerPatient(), { password: PASSWORD });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toEqual({ error: 'enrol-second-factor', message: expect.stringContaining('enrol a second factor first') });
    expect(await failures(plain)).toBe(0);
    await node.ctx.audit.drain();
    const denied = await node.ctx.store.db.selectFrom('audit_event').select('detail').where('action', '=', 'break-glass').where('outcome', '=', 'denied').orderBy('seq', 'desc').executeTakeFirstOrThrow();
    expect(denied.detail).toMatchObject({ refused: 'enrol-second-factor' });
  });

  it('counts failures like sign-in: after a few the next attempt must wait, even with the right proof', async () => {
    for (let i = 0; i < 3; i++) expect((await breakGlass(client, await strangerPatient(), { password: `adivinanza-numero-${i}-de-muchas`, code: recoveryCodes[3]! })).statusCode).toBe(403);
    // From here each failure doubles the wait (1 s, 2 s, 4 s…): a few more make it long enough to see on a slow machine.
    for (let i = 3; i < 6; i++) expect([403, 429]).toContain((await breakGlass(client, await strangerPatient(), { password: `adivinanza-numero-${i}-de-muchas`, code: recoveryCodes[3]! })).statusCode);
    const wait = await breakGlass(client, await strangerPatient(), { password: PASSWORD, code: recoveryCodes[3]! });
    expect(wait.statusCode).toBe(429);
    expect(Number(wait.headers['retry-after'])).toBeGreaterThan(0);
    await node.ctx.audit.drain();
    // Each failure is audited with the kind of proof, never the code itself.
    const rows = await node.ctx.store.db.selectFrom('audit_event').select('detail').where('action', '=', 'sign-in-failed').where('actor', '=', `account:${doctor.id}`).execute();
    const details = rows.map((r) => (typeof r.detail === 'string' ? JSON.parse(r.detail) : r.detail) as Record<string, unknown>);
    expect(details).toEqual(expect.arrayContaining([expect.objectContaining({ reauthentication: true, purpose: 'break-glass', method: 'code', failures: 3 }), expect.objectContaining({ reason: 'paused', method: 'code' })]));
    expect(JSON.stringify(details)).not.toContain(recoveryCodes[3]!);
    expect(JSON.stringify(details)).not.toContain(recoveryCodes[0]!);
    await forgetFailures(doctor);
  });

  it('exports a record with a passkey made for the export, and adds a passkey with the password alone as the first factor', async () => {
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const owner = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'elena.quiroga@example.org', role: 'patient', name: 'Elena Quiroga', password: PASSWORD });
    const portal = new AuthTestClient(node);
    expect((await portal.signIn({ email: owner.email, password: PASSWORD })).statusCode).toBe(200);
    // No second factor yet: the password alone adds the first one.
    const own = new SoftwareAuthenticator('telesalud.clinica.example', PUBLIC_URL);
    const registration = await portal.post('/api/auth/passkeys/register/options', { password: PASSWORD });
    expect(registration.statusCode).toBe(200);
    expect((await portal.post('/api/auth/passkeys/register/verify', { response: own.register(registration.json()) })).statusCode).toBe(200);

    const exportUrl = `/api/patients/${owner.patientId}/export`;
    // With a passkey enrolled, the password alone no longer exports the record.
    expect((await portal.post(exportUrl, { password: PASSWORD })).statusCode).toBe(403);
    // A challenge for break-the-glass is not one for an export.
    expect((await portal.post(exportUrl, { password: PASSWORD, passkey: own.assert((await passkeyOptions(portal, 'break-glass')).json()) })).statusCode).toBe(403);
    await forgetFailures(owner);
    const exported = await portal.post(exportUrl, { password: PASSWORD, passkey: own.assert((await passkeyOptions(portal, 'export')).json()) });
    expect(exported.statusCode).toBe(200);
    expect(exported.json().resourceType).toBe('Bundle');
  });
});
