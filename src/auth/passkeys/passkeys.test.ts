import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../actor.js';
import { createAccount, type NewAccount } from '../accounts/account-service.js';
import { AuthTestClient } from '../auth-test-client.js';
import { currentTotpCode } from '../mfa/totp.js';
import { Repository } from '../../records/repository.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';
import { SoftwareAuthenticator } from './software-authenticator.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';

describe.each(STORE_KINDS)('passkeys (%s)', (kind) => {
  let node: TestNode;
  let clinician: NewAccount;
  let rpId: string;
  let origin: string;
  beforeAll(async () => {
    node = await startTestNode(kind, { TELESALUD_PUBLIC_URL: 'https://telesalud.clinica.example:8443' });
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    clinician = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'doctora@clinica.example.org', role: 'clinician', name: 'Lucía Fernández', password: PASSWORD });
    await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'paciente@example.org', role: 'patient', name: 'Tomás Romero', password: PASSWORD });
    rpId = 'telesalud.clinica.example';
    origin = 'https://telesalud.clinica.example:8443';
  });
  afterAll(async () => {
    await node?.stop();
  });

  const resetReplayGuard = () => node.ctx.store.db.updateTable('account').set({ totp_last_step: null }).where('id', '=', clinician.id).execute();
  const verifyAssertion = (response: Record<string, unknown>, remoteAddress = '127.0.0.1') => node.app.inject({ method: 'POST', url: '/api/auth/passkeys/authenticate/verify', payload: { response }, remoteAddress });
  /** The password step of a sign-in: answers mfa-required with passkey options. */
  const passwordStep = async (email = clinician.email) => {
    const res = await new AuthTestClient(node).signIn({ email, password: PASSWORD });
    expect(res.statusCode).toBe(401);
    return res.json();
  };

  const authenticator = () => new SoftwareAuthenticator(rpId, origin);
  let key: SoftwareAuthenticator;

  it('registers a passkey after re-authentication, then signs in with it as the second factor', async () => {
    await resetReplayGuard();
    const client = new AuthTestClient(node);
    expect((await client.signIn({ email: clinician.email, password: PASSWORD, code: currentTotpCode(clinician.totpSecret!) })).statusCode).toBe(200);
    expect((await client.post('/api/auth/passkeys/register/options', { password: PASSWORD })).statusCode).toBe(403);
    await resetReplayGuard();
    const options = await client.post('/api/auth/passkeys/register/options', { password: PASSWORD, code: currentTotpCode(clinician.totpSecret!) });
    expect(options.statusCode).toBe(200);
    expect(options.json().rp).toEqual({ id: rpId, name: 'telesalud' });
    expect(options.json().attestation).toBe('none');

    key = authenticator();
    // A response for another origin is refused, and its challenge is spent.
    const phished = await client.post('/api/auth/passkeys/register/verify', { response: key.register(options.json(), { origin: 'https://telesalud.evil.example' }) });
    expect(phished.statusCode).toBe(400);
    const reused = await client.post('/api/auth/passkeys/register/verify', { response: key.register(options.json()) });
    expect(reused.statusCode).toBe(400);

    await resetReplayGuard();
    const again = await client.post('/api/auth/passkeys/register/options', { password: PASSWORD, code: currentTotpCode(clinician.totpSecret!) });
    const registered = await client.post('/api/auth/passkeys/register/verify', { response: key.register(again.json()), label: 'portátil' });
    expect(registered.statusCode).toBe(200);
    expect(registered.json().passkey).toEqual({ id: key.id, label: 'portátil' });
    expect((await client.get('/api/auth/passkeys')).json().passkeys).toHaveLength(1);

    // Sign-in: the right password earns the passkey options, the assertion the session.
    const step = await passwordStep();
    expect(step.error).toBe('mfa-required');
    expect(step.methods).toEqual(['totp', 'passkey']);
    expect(step.passkeyOptions.rpId).toBe(rpId);
    expect(step.passkeyOptions.allowCredentials).toEqual([{ id: key.id, type: 'public-key', transports: ['internal'] }]);
    const signedIn = await verifyAssertion(key.assert(step.passkeyOptions));
    expect(signedIn.statusCode).toBe(200);
    expect(signedIn.json().account.email).toBe(clinician.email);
    const session = new AuthTestClient(node);
    session.adopt(signedIn);
    expect((await session.get('/fhir/R4/Practitioner')).statusCode).toBe(200);
    const wrongPassword = await new AuthTestClient(node).signIn({ email: clinician.email, password: 'not-the-password-at-all' });
    expect(wrongPassword.json().passkeyOptions).toBeUndefined();
  });

  it('refuses a replayed assertion, a counter that goes back, a wrong origin and a forged signature', async () => {
    // The same assertion twice: its challenge is gone after the first.
    const step = await passwordStep();
    const assertion = key.assert(step.passkeyOptions);
    expect((await verifyAssertion(assertion)).statusCode).toBe(200);
    expect((await verifyAssertion(assertion)).statusCode).toBe(401);

    // A cloned authenticator: its counter is behind the one the server saw.
    const behind = await verifyAssertion(key.assert((await passwordStep()).passkeyOptions, { counter: key.counter - 1 }));
    expect(behind.statusCode).toBe(401);
    expect(behind.json().error).toBe('sign-in-failed');
    key.counter += 1;

    const elsewhere = await verifyAssertion(key.assert((await passwordStep()).passkeyOptions, { origin: 'https://telesalud.evil.example' }));
    expect(elsewhere.statusCode).toBe(401);

    // Another key claiming this credential's id: the signature does not verify.
    const impostor = authenticator();
    const forged = impostor.assert((await passwordStep()).passkeyOptions) as { id: string; rawId: string };
    forged.id = key.id;
    forged.rawId = key.id;
    expect((await verifyAssertion(forged)).statusCode).toBe(401);

    // A challenge nobody issued (no password was given for it).
    expect((await verifyAssertion(key.assert({ challenge: Buffer.alloc(32, 7).toString('base64url') }))).statusCode).toBe(401);

    // Each of those counted as a failed sign-in (the account now waits); after the wait the genuine key works, its counter moving forward.
    const failures = await node.ctx.store.db.selectFrom('audit_event').select('action').where('actor', '=', `account:${clinician.id}`).where('action', '=', 'sign-in-failed').execute();
    expect(failures.length).toBeGreaterThanOrEqual(4);
    await node.ctx.store.db.updateTable('account').set({ failed_sign_ins: 0, last_failed_at: null }).where('id', '=', clinician.id).execute();
    expect((await verifyAssertion(key.assert((await passwordStep()).passkeyOptions))).statusCode).toBe(200);
    const stored = await node.ctx.store.db.selectFrom('passkey_credential').select('counter').where('id', '=', key.id).executeTakeFirstOrThrow();
    expect(Number(stored.counter)).toBe(key.counter);
  });

  it('lets a patient without MFA add a passkey with the password alone; it is then asked for at sign-in', async () => {
    const client = new AuthTestClient(node);
    expect((await client.signIn({ email: 'paciente@example.org', password: PASSWORD })).statusCode).toBe(200);
    const options = await client.post('/api/auth/passkeys/register/options', { password: PASSWORD });
    expect(options.statusCode).toBe(200);
    const own = authenticator();
    expect((await client.post('/api/auth/passkeys/register/verify', { response: own.register(options.json()) })).statusCode).toBe(200);
    const step = await passwordStep('paciente@example.org');
    expect(step.methods).toEqual(['passkey']);
    // The clinician's key can't answer the patient's challenge.
    expect((await verifyAssertion(key.assert(step.passkeyOptions))).statusCode).toBe(401);
    expect((await verifyAssertion(own.assert((await passwordStep('paciente@example.org')).passkeyOptions))).json().account.email).toBe('paciente@example.org');
  });

  it('needs the session and its CSRF token to register', async () => {
    const client = new AuthTestClient(node);
    expect((await client.signIn({ email: 'paciente@example.org', password: PASSWORD })).statusCode).toBe(401); // now asks for the passkey
    expect((await node.app.inject({ method: 'POST', url: '/api/auth/passkeys/register/options', payload: { password: PASSWORD } })).statusCode).toBe(401);
    await resetReplayGuard();
    const doctor = new AuthTestClient(node);
    expect((await doctor.signIn({ email: clinician.email, password: PASSWORD, code: currentTotpCode(clinician.totpSecret!) })).statusCode).toBe(200);
    expect((await doctor.post('/api/auth/passkeys/register/options', { password: PASSWORD, code: '123456' }, { csrf: false })).statusCode).toBe(403);
  });
});
