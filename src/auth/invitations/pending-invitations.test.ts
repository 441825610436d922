import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../actor.js';
import { createAccount, type NewAccount } from '../accounts/account-service.js';
import { AuthTestClient } from '../auth-test-client.js';
import { currentTotpCode } from '../mfa/totp.js';
import { SESSION_COOKIE } from '../sessions/session-store.js';
import { Repository } from '../../records/repository.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';
import { claimInvitation, revokeInvitation, usableInvitation } from './invitations.js';

const STAFF_PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const NEW_PASSWORD = 'girasoles-bajo-la-tormenta-de-Salta-97';

interface Listed {
  id: string;
  email: string;
  name: string | null;
  role: string;
  patientRef: string | null;
  invitedBy: { ref: string; name: string | null; role: string };
  created: string;
  expiresAt: string;
}

describe.each(STORE_KINDS)('pending invitations: list and revoke (%s)', (kind) => {
  let node: TestNode;
  let clinician: NewAccount;
  let colleague: NewAccount;
  let doctor: AuthTestClient;
  let otherDoctor: AuthTestClient;
  let adminClient: AuthTestClient;
  let patientClient: AuthTestClient;
  beforeAll(async () => {
    node = await startTestNode(kind);
    const db = node.ctx.store.db;
    const records = new Repository(db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    clinician = await createAccount(db, records, node.ctx.keyRing, { email: 'doctora@clinica.example.org', role: 'clinician', name: 'Lucía Fernández', password: STAFF_PASSWORD });
    colleague = await createAccount(db, records, node.ctx.keyRing, { email: 'colega@clinica.example.org', role: 'clinician', name: 'Jorge Benítez', password: STAFF_PASSWORD });
    const admin = await createAccount(db, records, node.ctx.keyRing, { email: 'admin@clinica.example.org', role: 'admin', name: 'Marta Ruiz', password: STAFF_PASSWORD });
    await createAccount(db, records, node.ctx.keyRing, { email: 'paciente@example.org', role: 'patient', name: 'Tomás Romero', password: STAFF_PASSWORD });
    const signIn = async (email: string, secret?: string) => {
      const client = new AuthTestClient(node);
      expect((await client.signIn({ email, password: STAFF_PASSWORD, ...(secret ? { code: currentTotpCode(secret) } : {}) })).statusCode).toBe(200);
      return client;
    };
    doctor = await signIn(clinician.email, clinician.totpSecret);
    otherDoctor = await signIn(colleague.email, colleague.totpSecret);
    adminClient = await signIn(admin.email, admin.totpSecret);
    patientClient = await signIn('paciente@example.org');
  });
  afterAll(async () => {
    await node?.stop();
  });

  const tokenOf = (url: string) => url.slice(url.indexOf('#') + 1);
  const list = async (client: AuthTestClient): Promise<Listed[]> => {
    const res = await client.get('/api/invitations');
    expect(res.statusCode).toBe(200);
    return res.json().invitations;
  };
  const invite = async (client: AuthTestClient, body: Record<string, unknown>) => {
    const res = await client.post('/api/invitations', body);
    expect(res.statusCode).toBe(201);
    return res.json() as { id: string; url: string; expiresAt: string };
  };
  const accept = (token: string) => new AuthTestClient(node).post('/api/invitations/accept', { token, password: NEW_PASSWORD });

  it('shows an admin every pending invitation and a clinician only their own, without tokens; patients none', async () => {
    const mine = await invite(doctor, { email: 'valentina@example.org', name: 'Valentina Sosa' });
    const theirs = await invite(otherDoctor, { email: 'ramiro@example.org', name: 'Ramiro Paz' });
    const staff = await invite(adminClient, { email: 'enfermero@clinica.example.org', role: 'clinician', name: 'Pablo Ortiz' });
    // Not pending: accepted, and expired.
    const accepted = await invite(doctor, { email: 'aceptada@example.org', name: 'Ana Gil' });
    expect((await accept(tokenOf(accepted.url))).statusCode).toBe(200);
    const expired = await invite(doctor, { email: 'vencida@example.org', name: 'Eva Ríos', expiresInDays: 1 });
    await node.ctx.store.db.updateTable('invitation').set({ expires: new Date(Date.now() - 1000) }).where('id', '=', expired.id).execute();

    const forAdmin = await list(adminClient);
    expect(forAdmin.map((i) => i.id)).toEqual([staff.id, theirs.id, mine.id]);
    const listedMine = forAdmin.find((i) => i.id === mine.id)!;
    expect(listedMine).toEqual({
      id: mine.id,
      email: 'valentina@example.org',
      name: 'Valentina Sosa',
      role: 'patient',
      patientRef: expect.stringMatching(/^Patient\/[0-9a-f-]{36}$/),
      invitedBy: { ref: `Practitioner/${clinician.practitionerId}`, name: 'Lucía Fernández', role: 'clinician' },
      created: expect.any(String),
      expiresAt: mine.expiresAt,
    });
    expect(forAdmin.find((i) => i.id === staff.id)).toMatchObject({ role: 'clinician', patientRef: null, invitedBy: { name: 'Marta Ruiz', role: 'admin' } });

    expect((await list(doctor)).map((i) => i.id)).toEqual([mine.id]);
    expect((await list(otherDoctor)).map((i) => i.id)).toEqual([theirs.id]);
    const forPatient = await patientClient.get('/api/invitations');
    expect(forPatient.statusCode).toBe(403);

    // The answer never carries the link's secret, nor its digest.
    const raw = (await adminClient.get('/api/invitations')).body;
    for (const made of [mine, theirs, staff]) expect(raw).not.toContain(tokenOf(made.url));
    expect(raw).not.toMatch(/token/i);
    // Without a session: refused.
    expect((await node.app.inject({ method: 'GET', url: '/api/invitations' })).statusCode).toBe(401);

    // Showing a patient's invitation is a look at who they are: one entry naming every patient the list showed.
    const adminRef = `account:${await accountIdOf('admin@clinica.example.org')}`;
    const looks = await node.ctx.store.db.selectFrom('audit_event').select(['patient', 'detail']).where('action', '=', 'search').where('resource_type', '=', 'Invitation').where('actor', '=', adminRef).orderBy('seq').execute();
    const theirsRef = forAdmin.find((i) => i.id === theirs.id)!.patientRef;
    expect(looks[0]!.detail).toMatchObject({ list: 'pending-invitations', results: 3, patients: expect.arrayContaining([listedMine.patientRef, theirsRef]) });
    // The clinician's own list showed one patient: named in the entry's patient column, so that patient sees it.
    const doctorLook = await node.ctx.store.db.selectFrom('audit_event').select('patient').where('action', '=', 'search').where('resource_type', '=', 'Invitation').where('actor', '=', `Practitioner/${clinician.practitionerId}`).executeTakeFirstOrThrow();
    expect(doctorLook.patient).toBe(listedMine.patientRef);
  });

  const accountIdOf = async (email: string) => (await node.ctx.store.db.selectFrom('account').select('id').where('email', '=', email).executeTakeFirstOrThrow()).id;

  it('revokes a pending invitation: audited, its link then answers exactly like an expired one, and nothing is created', async () => {
    const made = await invite(doctor, { email: 'revocada@example.org', name: 'Julia Vera' });
    const expired = await invite(doctor, { email: 'caducada@example.org', name: 'Irene Sanz' });
    await node.ctx.store.db.updateTable('invitation').set({ expires: new Date(Date.now() - 1000) }).where('id', '=', expired.id).execute();

    const res = await doctor.post(`/api/invitations/${made.id}/revoke`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ id: made.id, revokedAt: expect.any(String) });
    expect((await list(doctor)).map((i) => i.id)).not.toContain(made.id);

    const preview = (token: string) => node.app.inject({ method: 'GET', url: `/api/invitations/${token}/preview`, remoteAddress: '192.0.2.44' });
    const revokedPreview = await preview(tokenOf(made.url));
    const expiredPreview = await preview(tokenOf(expired.url));
    expect(revokedPreview.statusCode).toBe(404);
    expect(revokedPreview.body).toBe(expiredPreview.body);
    const revokedAccept = await accept(tokenOf(made.url));
    const expiredAccept = await accept(tokenOf(expired.url));
    expect(revokedAccept.statusCode).toBe(404);
    expect(revokedAccept.body).toBe(expiredAccept.body);
    const check = await new AuthTestClient(node).post('/api/invitations/password-check', { token: tokenOf(made.url), password: NEW_PASSWORD });
    expect(check.statusCode).toBe(404);
    expect(await node.ctx.store.db.selectFrom('account').select('id').where('email', '=', 'revocada@example.org').executeTakeFirst()).toBeUndefined();

    const entry = await node.ctx.store.db.selectFrom('audit_event').select(['actor', 'outcome', 'resource_type', 'resource_id', 'patient', 'detail']).where('action', '=', 'invitation-revoked').where('resource_id', '=', made.id).executeTakeFirstOrThrow();
    expect(entry).toMatchObject({ actor: `Practitioner/${clinician.practitionerId}`, outcome: 'success', resource_type: 'Invitation', resource_id: made.id, patient: expect.stringMatching(/^Patient\//) });
    expect(entry.detail).toMatchObject({ invitation: made.id, role: 'patient' });

    // Twice: no longer pending, said plainly, audited as failed, nothing changed.
    const again = await doctor.post(`/api/invitations/${made.id}/revoke`);
    expect(again.statusCode).toBe(409);
    expect(again.json().error).toBe('invitation-not-pending');
    expect((await doctor.post(`/api/invitations/${expired.id}/revoke`)).statusCode).toBe(409);
    const failed = await node.ctx.store.db.selectFrom('audit_event').select('outcome').where('action', '=', 'invitation-revoked').where('resource_id', '=', made.id).where('outcome', '=', 'failed').execute();
    expect(failed).toHaveLength(1);
  });

  it('lets a clinician revoke only their own, an admin any; patients none; needs the CSRF token', async () => {
    const theirs = await invite(otherDoctor, { email: 'ajeno@example.org', name: 'Óscar Mena' });
    // Another clinician's invitation is, to this one, no invitation at all.
    const refused = await doctor.post(`/api/invitations/${theirs.id}/revoke`);
    expect(refused.statusCode).toBe(404);
    expect(refused.body).toBe((await doctor.post('/api/invitations/00000000-0000-4000-8000-000000000000/revoke')).body);
    expect((await patientClient.post(`/api/invitations/${theirs.id}/revoke`)).statusCode).toBe(403);
    // Cookie sessions change nothing without the session's CSRF token, nor from another origin.
    expect((await otherDoctor.post(`/api/invitations/${theirs.id}/revoke`, {}, { csrf: false })).statusCode).toBe(403);
    const crossSite = await node.app.inject({ method: 'POST', url: `/api/invitations/${theirs.id}/revoke`, headers: { origin: 'https://evil.example', 'x-csrf-token': otherDoctor.csrf! }, cookies: { [SESSION_COOKIE]: otherDoctor.cookie! } });
    expect(crossSite.statusCode).toBe(403);
    expect(await usableInvitation(node.ctx.store.db, tokenOf(theirs.url))).toBeDefined();
    expect((await doctor.post('/api/invitations/not-a-uuid/revoke')).statusCode).toBe(400);
    expect(await node.ctx.store.db.selectFrom('audit_event').select('id').where('action', '=', 'invitation-revoked').where('resource_id', '=', theirs.id).execute()).toHaveLength(0);

    const byAdmin = await adminClient.post(`/api/invitations/${theirs.id}/revoke`);
    expect(byAdmin.statusCode).toBe(200);
    expect(await usableInvitation(node.ctx.store.db, tokenOf(theirs.url))).toBeUndefined();
    const row = await node.ctx.store.db.selectFrom('invitation').select(['revoked_by', 'used_at']).where('id', '=', theirs.id).executeTakeFirstOrThrow();
    expect(row).toEqual({ revoked_by: `account:${await accountIdOf('admin@clinica.example.org')}`, used_at: null });
  });

  it('settles a revocation racing an acceptance: exactly one of them takes the invitation', async () => {
    const db = node.ctx.store.db;
    for (let round = 0; round < 5; round++) {
      const made = await invite(doctor, { email: `carrera${round}@example.org`, name: `Carrera ${round}` });
      const [claimed, revoked] = await Promise.all([claimInvitation(db, made.id), revokeInvitation(db, made.id, 'test:race')]);
      expect(Number(claimed) + Number(revoked.kind === 'revoked')).toBe(1);
    }
  });
});
