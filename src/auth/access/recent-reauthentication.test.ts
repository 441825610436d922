import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../actor.js';
import { createAccount, type NewAccount } from '../accounts/account-service.js';
import { AuthTestClient } from '../auth-test-client.js';
import { resetAllFactors } from '../mfa/account-mfa.js';
import { currentTotpCode } from '../mfa/totp.js';
import { SoftwareAuthenticator } from '../passkeys/software-authenticator.js';
import { Repository } from '../../records/repository.js';
import { create, patient } from '../../test-support/fixtures.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';
import { RECENT_REAUTH_SECONDS } from './reauthenticate.js';

const PASSWORD = 'viento-sereno-sobre-Arequipa-2044';
const PUBLIC_URL = 'https://telesalud.clinica.example:8443';
const RP_ID = 'telesalud.clinica.example';

/**
 * A clinician going through their security page re-authenticates once and then makes the next
 * changes (another passkey, new recovery codes, removing an old passkey) without being asked again
 * for a few minutes, in that session only; a new session, a stale proof, and anything that
 * discloses health data (break-the-glass, an export) ask again.
 */
describe.each(STORE_KINDS)('recent re-authentication and the staff security settings (%s)', (kind) => {
  let node: TestNode;
  let doctor: NewAccount;
  let desk: NewAccount;
  let records: Repository;

  beforeAll(async () => {
    node = await startTestNode(kind, { TELESALUD_PUBLIC_URL: PUBLIC_URL });
    records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    doctor = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'cardiologia@clinica.example.org', role: 'clinician', name: 'Marta Salinas', password: PASSWORD });
    desk = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'recepcion@clinica.example.org', role: 'reception', name: 'Rosa Ibarra', password: PASSWORD });
  });
  afterAll(async () => {
    await node?.stop();
  });

  /** A TOTP code the replay guard lets through (the guard is forgotten first, so tests need not wait 30 s). */
  async function freshCode(account: NewAccount): Promise<string> {
    await node.ctx.store.db.updateTable('account').set({ totp_last_step: null }).where('id', '=', account.id).execute();
    return currentTotpCode(account.totpSecret!);
  }
  async function signedIn(account: NewAccount): Promise<AuthTestClient> {
    const client = new AuthTestClient(node);
    const res = await client.signIn({ email: account.email, password: PASSWORD, code: await freshCode(account) });
    expect(res.statusCode).toBe(200);
    return client;
  }
  const audited = async (accountId: string, action: string) => {
    await node.ctx.audit.drain();
    return node.ctx.store.db.selectFrom('audit_event').select(['outcome', 'detail']).where('actor', '=', `account:${accountId}`).where('action', '=', action).orderBy('seq').execute();
  };

  it('asks on a fresh session: signing in is not a re-authentication, and a code without the password proves nothing', async () => {
    const client = await signedIn(doctor);
    expect((await client.get('/api/auth/session')).json().reauthenticatedUntil).toBeUndefined();
    const bare = await client.post('/api/auth/mfa/recovery-codes', {});
    expect(bare.statusCode).toBe(403);
    expect(bare.json().error).toBe('reauthentication-required');
    expect((await client.post('/api/auth/mfa/recovery-codes', { code: await freshCode(doctor) })).statusCode).toBe(403);
    expect((await client.post('/api/auth/passkeys/register/options', {})).statusCode).toBe(403);
  });

  it('lets one re-authentication cover the next changes of the security settings for five minutes, across the session that replaces this one', async () => {
    const client = await signedIn(doctor);
    const first = await client.post('/api/auth/mfa/recovery-codes', { password: PASSWORD, code: await freshCode(doctor) });
    expect(first.statusCode).toBe(200);
    const until = Date.parse((await client.get('/api/auth/session')).json().reauthenticatedUntil);
    expect(until - Date.now()).toBeGreaterThan((RECENT_REAUTH_SECONDS - 30) * 1000);
    expect(until - Date.now()).toBeLessThanOrEqual(RECENT_REAUTH_SECONDS * 1000);

    // New codes again, then a passkey: no password asked.
    const second = await client.post('/api/auth/mfa/recovery-codes', {});
    expect(second.statusCode).toBe(200);
    expect(second.json().recoveryCodes).not.toEqual(first.json().recoveryCodes);
    const key = new SoftwareAuthenticator(RP_ID, PUBLIC_URL);
    const options = await client.post('/api/auth/passkeys/register/options', {});
    expect(options.statusCode).toBe(200);
    const before = client.cookie;
    expect((await client.post('/api/auth/passkeys/register/verify', { response: key.register(options.json()), label: 'portátil' })).statusCode).toBe(200);
    // Registering replaced every session; the re-authentication came along to the new one.
    expect(client.cookie).not.toBe(before);
    const listed = await client.get('/api/auth/passkeys');
    expect(listed.json().passkeys).toHaveLength(1);
    const removed = await client.post('/api/auth/passkeys/remove', { id: key.id });
    expect(removed.statusCode).toBe(200);
    expect((await client.get('/api/auth/passkeys')).json().passkeys).toEqual([]);

    // Another session of the same person was not re-authenticated: it is asked.
    const elsewhere = await signedIn(doctor);
    expect((await elsewhere.post('/api/auth/mfa/recovery-codes', {})).json().error).toBe('reauthentication-required');

    // Past the window, the session that re-authenticated is asked again.
    await sql`update session set reauthenticated_at = now() - make_interval(secs => ${RECENT_REAUTH_SECONDS + 1}) where account_id = ${doctor.id}`.execute(node.ctx.store.db);
    const stale = await client.post('/api/auth/mfa/recovery-codes', {});
    expect(stale.statusCode).toBe(403);
    expect(stale.json().error).toBe('reauthentication-required');
    expect((await client.get('/api/auth/session')).json().reauthenticatedUntil).toBeUndefined();

    const events = await audited(doctor.id, 'recovery-codes-generated');
    expect(events.filter((e) => e.outcome === 'success')).toHaveLength(2);
    expect((await audited(doctor.id, 'passkey-removed')).map((e) => e.outcome)).toEqual(['success']);
  });

  it('still asks before break-the-glass: a recent re-authentication discloses no record', async () => {
    const client = await signedIn(doctor);
    expect((await client.post('/api/auth/mfa/recovery-codes', { password: PASSWORD, code: await freshCode(doctor) })).statusCode).toBe(200);
    const stranger = (await create(node, patient('Quintero', ['Aurelio']))).id as string;
    const reason = 'Paciente inconsciente en urgencias, sin acompañante';
    // The route's schema requires the password; with it alone (no second factor) the clinician is refused.
    expect((await client.post('/api/access/break-glass', { patientId: stranger, reason })).statusCode).toBe(400);
    expect((await client.post('/api/access/break-glass', { patientId: stranger, reason, password: PASSWORD })).statusCode).toBe(403);
    await node.ctx.store.db.updateTable('account').set({ failed_sign_ins: 0, last_failed_at: null, locked_until: null }).where('id', '=', doctor.id).execute();
  });

  it('a wrong password is refused even inside the window, and counted', async () => {
    const client = await signedIn(doctor);
    expect((await client.post('/api/auth/mfa/recovery-codes', { password: PASSWORD, code: await freshCode(doctor) })).statusCode).toBe(200);
    const wrong = await client.post('/api/auth/mfa/recovery-codes', { password: 'no-es-mi-contraseña-de-verdad', code: await freshCode(doctor) });
    expect(wrong.statusCode).toBe(403);
    expect(wrong.json().error).toBe('reauthentication-failed');
    const row = await node.ctx.store.db.selectFrom('account').select('failed_sign_ins').where('id', '=', doctor.id).executeTakeFirstOrThrow();
    expect(row.failed_sign_ins).toBe(1);
    await node.ctx.store.db.updateTable('account').set({ failed_sign_ins: 0, last_failed_at: null, locked_until: null }).where('id', '=', doctor.id).execute();
  });

  it('keeps the last second factor of a role that must have one, and takes the recovery codes with the last factor of one that need not', async () => {
    // Reception, by default required to use a second factor: its only factor is a passkey.
    const client = await signedIn(desk);
    const key = new SoftwareAuthenticator(RP_ID, PUBLIC_URL);
    const options = await client.post('/api/auth/passkeys/register/options', { password: PASSWORD, code: await freshCode(desk) });
    expect((await client.post('/api/auth/passkeys/register/verify', { response: key.register(options.json()), label: 'llave del mostrador' })).statusCode).toBe(200);
    expect((await client.post('/api/auth/mfa/recovery-codes', {})).statusCode).toBe(200);
    await node.ctx.store.db.updateTable('account').set({ totp_secret_sealed: null }).where('id', '=', desk.id).execute();
    const last = await client.post('/api/auth/passkeys/remove', { id: key.id });
    expect(last.statusCode).toBe(409);
    expect(last.json().error).toBe('last-second-factor');
    expect((await client.get('/api/auth/passkeys')).json().passkeys).toHaveLength(1);
    // Someone else's passkey, or none at all, is simply not there.
    expect((await client.post('/api/auth/passkeys/remove', { id: 'bm90LW15LWtleQ' })).statusCode).toBe(404);
    expect((await client.post('/api/auth/passkeys/remove', { id: 'not base64url!' })).statusCode).toBe(400);
    const refused = await audited(desk.id, 'passkey-removed');
    expect(refused.map((e) => e.outcome)).toEqual(['denied']);

    // A patient, whom the policy only offers a second factor: the last one goes, and the recovery codes with it.
    const person = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'paciente@example.org', role: 'patient', name: 'Iván Soto', password: PASSWORD });
    await resetAllFactors(node.ctx.store.db, person.id);
    const own = new AuthTestClient(node);
    expect((await own.signIn({ email: person.email, password: PASSWORD })).statusCode).toBe(200);
    const ownKey = new SoftwareAuthenticator(RP_ID, PUBLIC_URL);
    const ownOptions = await own.post('/api/auth/passkeys/register/options', { password: PASSWORD });
    expect((await own.post('/api/auth/passkeys/register/verify', { response: ownKey.register(ownOptions.json()) })).statusCode).toBe(200);
    expect((await own.post('/api/auth/mfa/recovery-codes', {})).statusCode).toBe(200);
    expect((await own.post('/api/auth/passkeys/remove', { id: ownKey.id })).statusCode).toBe(200);
    const codes = await node.ctx.store.db.selectFrom('recovery_code').select('position').where('account_id', '=', person.id).execute();
    expect(codes).toEqual([]);
  });
});
