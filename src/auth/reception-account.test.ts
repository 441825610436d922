import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from './actor.js';
import { AccountError, createAccount, type NewAccount } from './accounts/account-service.js';
import { AuthTestClient } from './auth-test-client.js';
import { currentTotpCode } from './mfa/totp.js';
import { authPolicy } from './policy/auth-policy.js';
import { Repository } from '../records/repository.js';
import { appointment, create } from '../test-support/fixtures.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';

const PASSWORD = 'brisa-lenta-sobre-Cochabamba-2038';

/**
 * Reception (the front desk) as an account: made like other staff (no FHIR resource of its own,
 * a second factor from the start, the staff password expiry), invited by an admin only, and able
 * to invite patients and to see every waiting room of the day.
 */
describe.each(STORE_KINDS)('a reception account (%s)', (kind) => {
  let node: TestNode;
  let records: Repository;
  let desk: NewAccount;
  let doctor: NewAccount;
  let colleague: NewAccount;

  beforeAll(async () => {
    node = await startTestNode(kind);
    records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    desk = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'Recepcion@Clinica.example.org', role: 'reception', name: 'Rosa Ibarra', password: PASSWORD });
    doctor = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'medica@clinica.example.org', role: 'clinician', name: 'Lucía Paz', password: PASSWORD });
    colleague = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'medico@clinica.example.org', role: 'clinician', name: 'Pablo Ruiz', password: PASSWORD });
  });
  afterAll(async () => {
    await node?.stop();
  });

  const signIn = async (account: NewAccount) => {
    await node.ctx.store.db.updateTable('account').set({ totp_last_step: null }).where('id', '=', account.id).execute();
    const client = new AuthTestClient(node);
    expect((await client.signIn({ email: account.email, password: PASSWORD, code: currentTotpCode(account.totpSecret!) })).statusCode).toBe(200);
    return client;
  };

  it('is created with a second factor and no Patient or Practitioner, and signs in only with it', async () => {
    expect(desk).toMatchObject({ email: 'recepcion@clinica.example.org', role: 'reception' });
    expect(desk.totpSecret).toMatch(/^[A-Z2-7]+=*$/);
    expect(desk.patientId).toBeUndefined();
    expect(desk.practitionerId).toBeUndefined();
    const policy = await authPolicy(node.ctx.store.db).current();
    expect(policy.mfaRequired.reception).toBe(true);
    expect(policy.password.expiryDays.reception).toBe(180);
    expect(policy.session.idleMinutes.reception).toBe(15);

    const withoutCode = await new AuthTestClient(node).signIn({ email: desk.email, password: PASSWORD });
    expect(withoutCode.statusCode).toBe(401);
    expect(withoutCode.json().error).toBe('mfa-required');
    const client = await signIn(desk);
    const session = (await client.get('/api/auth/session')).json();
    expect(session.account).toEqual({ id: desk.id, email: desk.email, role: 'reception', fhirRef: null });
    await expect(createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'x@clinica.example.org', role: 'receptionist', password: PASSWORD })).rejects.toThrow(AccountError);
  });

  it('invites patients (registering new ones) but no staff, and manages only the invitations it sent', async () => {
    const client = await signIn(desk);
    const invited = await client.post('/api/invitations', { email: 'nueva.paciente@example.org', name: 'Nora Vidal' });
    expect(invited.statusCode).toBe(201);
    const staff = await client.post('/api/invitations', { email: 'otra@clinica.example.org', role: 'reception' });
    expect(staff.statusCode).toBe(403);
    expect((await client.post('/api/invitations', { email: 'otro@clinica.example.org', role: 'clinician' })).statusCode).toBe(403);

    const byDoctor = await (await signIn(doctor)).post('/api/invitations', { email: 'de.la.medica@example.org', name: 'Ana Ríos' });
    expect(byDoctor.statusCode).toBe(201);
    const pending = (await client.get('/api/invitations')).json().invitations.map((i: { id: string }) => i.id);
    expect(pending).toEqual([invited.json().id]);
    expect((await client.post(`/api/invitations/${byDoctor.json().id}/revoke`)).statusCode).toBe(404);
    expect((await client.post(`/api/invitations/${invited.json().id}/revoke`)).statusCode).toBe(200);

    // An admin's staff invitation for reception is accepted into a reception account that must enrol a second factor.
    const admin = await node.request({ method: 'POST', url: '/api/invitations', payload: { email: 'turno.tarde@clinica.example.org', role: 'reception', name: 'Eva Lara' } });
    expect(admin.statusCode).toBe(201);
    const token = new URL(admin.json().url).hash.slice(1);
    const newcomer = new AuthTestClient(node);
    const accepted = await newcomer.post('/api/invitations/accept', { token, password: PASSWORD });
    expect(accepted.statusCode).toBe(200);
    expect((await newcomer.get('/api/auth/session')).json()).toMatchObject({ account: { role: 'reception' }, mfaEnrolmentRequired: true });
  });

  it('sees the waiting room of every consultation asked for, where a clinician sees only those they host', async () => {
    const someone = (await create(node, { resourceType: 'Patient', active: true, name: [{ family: 'Toro', given: ['Inés'] }] })).id as string;
    const start = new Date(Date.now() + 3600_000).toISOString();
    const mine = (await create(node, appointment(someone, doctor.practitionerId!, start))).id as string;
    const later = new Date(Date.now() + 2 * 3600_000).toISOString();
    const theirs = (await create(node, appointment(someone, colleague.practitionerId!, later))).id as string;
    const url = `/api/consult/waiting-rooms?appointments=${mine},${theirs},5f2b3c4d-1e6f-4a7b-8c9d-0e1f2a3b4c5d`;
    const atDesk = await (await signIn(desk)).get(url);
    expect(atDesk.statusCode).toBe(200);
    expect(atDesk.json().rooms.map((r: { appointmentId: string }) => r.appointmentId)).toEqual([mine, theirs]);
    const atDoctor = await (await signIn(doctor)).get(url);
    expect(atDoctor.json().rooms.map((r: { appointmentId: string }) => r.appointmentId)).toEqual([mine]);
  });
});
