import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../actor.js';
import { createAccount, type NewAccount } from '../accounts/account-service.js';
import { AuthTestClient } from '../auth-test-client.js';
import { currentTotpCode } from '../mfa/totp.js';
import { Repository } from '../../records/repository.js';
import { create, patient } from '../../test-support/fixtures.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';

const STAFF_PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const NEW_PASSWORD = 'girasoles-bajo-la-tormenta-de-Salta-97';

describe.each(STORE_KINDS)('invitations (%s)', (kind) => {
  let node: TestNode;
  let clinician: NewAccount;
  let admin: NewAccount;
  let doctor: AuthTestClient;
  let adminClient: AuthTestClient;
  beforeAll(async () => {
    node = await startTestNode(kind);
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    clinician = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'doctora@clinica.example.org', role: 'clinician', name: 'Lucía Fernández', password: STAFF_PASSWORD });
    admin = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'admin@clinica.example.org', role: 'admin', name: 'Marta Ruiz', password: STAFF_PASSWORD });
    doctor = new AuthTestClient(node);
    expect((await doctor.signIn({ email: 'doctora@clinica.example.org', password: STAFF_PASSWORD, code: currentTotpCode(clinician.totpSecret!) })).statusCode).toBe(200);
    adminClient = new AuthTestClient(node);
    expect((await adminClient.signIn({ email: 'admin@clinica.example.org', password: STAFF_PASSWORD, code: currentTotpCode(admin.totpSecret!) })).statusCode).toBe(200);
  });
  afterAll(async () => {
    await node?.stop();
  });

  const tokenOf = (url: string) => url.slice(url.indexOf('#') + 1);
  const preview = (token: string, remoteAddress = '127.0.0.1') => node.app.inject({ method: 'GET', url: `/api/invitations/${token}/preview`, remoteAddress });
  const accept = (client: AuthTestClient, token: string, password: string) => client.post('/api/invitations/accept', { token, password });

  it('lets a clinician invite a new patient, who sets a password, gets a session and can sign in later', async () => {
    const res = await doctor.post('/api/invitations', { email: 'Nueva.Paciente@example.org', name: 'Valentina Sosa' });
    expect(res.statusCode).toBe(201);
    const { url, expiresAt } = res.json();
    expect(url).toMatch(new RegExp(`^${node.config.publicUrl}/invite#[A-Za-z0-9_-]{43}$`));
    expect(Date.parse(expiresAt) - Date.now()).toBeGreaterThan(6.9 * 86_400_000);
    const token = tokenOf(url);
    // Only the token's digest is stored.
    const stored = await node.ctx.store.db.selectFrom('invitation').select('token_hash').execute();
    expect(stored.every((r) => !Buffer.from(r.token_hash).toString('base64url').includes(token))).toBe(true);

    const shown = await preview(token);
    expect(shown.statusCode).toBe(200);
    // Who invites (so the patient can trust the link) and the rules in force; nothing about the invitee.
    expect(shown.json()).toEqual({ valid: true, role: 'patient', mfaRequired: false, expiresAt: expect.any(String), invitedBy: { name: 'Lucía Fernández', role: 'clinician' }, passwordPolicy: { minLength: 12, maxLength: 128, minScore: 3 } });
    expect(shown.body).not.toContain('Valentina');
    expect(shown.body).not.toContain('example.org');

    const invitee = new AuthTestClient(node);
    const weak = await accept(invitee, token, 'valentina-sosa-2024');
    expect(weak.statusCode).toBe(400);
    expect(weak.json().problems.map((p: { code: string }) => p.code)).toContain('contains-personal-info');
    const ok = await accept(invitee, token, NEW_PASSWORD);
    expect(ok.statusCode).toBe(200);
    const answer = ok.json();
    expect(answer.account).toMatchObject({ email: 'nueva.paciente@example.org', role: 'patient', fhirRef: expect.stringMatching(/^Patient\//) });
    expect(answer.mfaEnrolment).toBeUndefined();
    // The patient sees their own record, the one the clinician registered (and is in care of).
    const own = await invitee.get(`/fhir/R4/${answer.account.fhirRef}`);
    expect(own.statusCode).toBe(200);
    expect(own.json().name[0].text).toBe('Valentina Sosa');
    expect((await doctor.get(`/fhir/R4/${answer.account.fhirRef}`)).statusCode).toBe(200);

    // Single use: the same link again is refused exactly like an unknown one.
    const again = await accept(new AuthTestClient(node), token, NEW_PASSWORD);
    const unknown = await accept(new AuthTestClient(node), 'A'.repeat(43), NEW_PASSWORD);
    expect(again.statusCode).toBe(404);
    expect(again.body).toBe(unknown.body);
    expect((await preview(token)).body).toBe((await preview('A'.repeat(43))).body);

    const later = await new AuthTestClient(node).signIn({ email: 'nueva.paciente@example.org', password: NEW_PASSWORD });
    expect(later.statusCode).toBe(200);
    const events = await node.ctx.store.db.selectFrom('audit_event').select(['action', 'patient']).where('action', 'in', ['invitation-created', 'invitation-accepted']).execute();
    expect(events).toEqual(expect.arrayContaining([{ action: 'invitation-created', patient: answer.account.fhirRef }, { action: 'invitation-accepted', patient: answer.account.fhirRef }]));
  });

  it('links an existing Patient the inviter may see, and refuses one they may not', async () => {
    const mine = await doctor.post('/fhir/R4/Patient', patient('Quiroga', ['Elena']));
    expect(mine.statusCode).toBe(201);
    const other = await create(node, patient('Ajena', ['Persona']));
    const refused = await doctor.post('/api/invitations', { email: 'ajena@example.org', patientId: other.id });
    expect(refused.statusCode).toBe(404);
    const res = await doctor.post('/api/invitations', { email: 'elena@example.org', patientId: mine.json().id });
    expect(res.statusCode).toBe(201);
    const accepted = await accept(new AuthTestClient(node), tokenOf(res.json().url), NEW_PASSWORD);
    expect(accepted.statusCode).toBe(200);
    expect(accepted.json().account.fhirRef).toBe(`Patient/${mine.json().id}`);
    // One account per Patient.
    expect((await doctor.post('/api/invitations', { email: 'otra@example.org', patientId: mine.json().id })).statusCode).toBe(409);
  });

  it('refuses an expired invitation like an unknown one', async () => {
    const res = await doctor.post('/api/invitations', { email: 'tarde@example.org', name: 'Pedro Luna', expiresInDays: 1 });
    const token = tokenOf(res.json().url);
    await node.ctx.store.db.updateTable('invitation').set({ expires: new Date(Date.now() - 1000) }).where('id', '=', res.json().id).execute();
    const expired = await accept(new AuthTestClient(node), token, NEW_PASSWORD);
    expect(expired.statusCode).toBe(404);
    expect(expired.body).toBe((await accept(new AuthTestClient(node), 'B'.repeat(43), NEW_PASSWORD)).body);
    expect(await node.ctx.store.db.selectFrom('account').select('id').where('email', '=', 'tarde@example.org').executeTakeFirst()).toBeUndefined();
  });

  it('answers the same whether or not the invited email already has an account', async () => {
    const existing = await doctor.post('/api/invitations', { email: 'doctora@clinica.example.org', name: 'Alguien Más' });
    const fresh = await doctor.post('/api/invitations', { email: 'nadie@example.org', name: 'Alguien Más' });
    expect(existing.statusCode).toBe(fresh.statusCode);
    expect(Object.keys(existing.json()).sort()).toEqual(Object.keys(fresh.json()).sort());
  });

  it('has an admin invite staff, whose session can do nothing until the authenticator app is confirmed', async () => {
    expect((await doctor.post('/api/invitations', { email: 'colega@clinica.example.org', role: 'clinician' })).statusCode).toBe(403);
    const res = await adminClient.post('/api/invitations', { email: 'colega@clinica.example.org', role: 'clinician', name: 'Jorge Benítez' });
    expect(res.statusCode).toBe(201);
    const token = tokenOf(res.json().url);
    expect((await preview(token)).json().mfaRequired).toBe(true);
    const staff = new AuthTestClient(node);
    const accepted = await accept(staff, token, NEW_PASSWORD);
    expect(accepted.statusCode).toBe(200);
    const body = accepted.json();
    expect(body.mfaEnrolmentRequired).toBe(true);
    expect(body.account.fhirRef).toMatch(/^Practitioner\//);
    expect(body.mfaEnrolment.secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(body.mfaEnrolment.uri).toMatch(/^otpauth:\/\/totp\/telesalud:colega%40clinica\.example\.org\?/);
    expect(body.mfaEnrolment.qrDataUrl).toMatch(/^data:image\/svg\+xml;base64,/);
    expect(body.mfaEnrolment.qrSvg).toContain('<svg');

    const blocked = await staff.get('/fhir/R4/Patient');
    expect(blocked.statusCode).toBe(403);
    expect(blocked.json().issue[0].code).toBe('mfa-enrolment-required');
    expect((await staff.get('/api/auth/session')).json().mfaEnrolmentRequired).toBe(true);
    expect((await staff.post('/api/auth/mfa/totp/confirm', { code: '000000' })).statusCode).toBe(400);
    const confirmed = await staff.post('/api/auth/mfa/totp/confirm', { code: currentTotpCode(body.mfaEnrolment.secret) });
    expect(confirmed.statusCode).toBe(200);
    expect(confirmed.json().recoveryCodes).toHaveLength(10);
    expect(confirmed.json().mfaEnrolmentRequired).toBeUndefined();
    expect((await staff.get('/fhir/R4/Patient')).statusCode).toBe(200);

    // From now on the app's code is asked for at sign-in.
    const next = await new AuthTestClient(node).signIn({ email: 'colega@clinica.example.org', password: NEW_PASSWORD });
    expect(next.statusCode).toBe(401);
    expect(next.json().error).toBe('mfa-required');
    expect(next.json().methods).toEqual(['totp', 'recovery-code']);
  });

  it('needs the session and its CSRF token to invite, and patients may not invite', async () => {
    expect((await node.app.inject({ method: 'POST', url: '/api/invitations', payload: { email: 'x@example.org' } })).statusCode).toBe(401);
    expect((await doctor.post('/api/invitations', { email: 'x@example.org', name: 'Equis' }, { csrf: false })).statusCode).toBe(403);
    const res = await doctor.post('/api/invitations', { email: 'pac2@example.org', name: 'Rosa Díaz' });
    const p = new AuthTestClient(node);
    await accept(p, tokenOf(res.json().url), NEW_PASSWORD);
    expect((await p.post('/api/invitations', { email: 'amigo@example.org', name: 'Amigo' })).statusCode).toBe(403);
    expect((await doctor.post('/api/invitations', { email: 'not-an-email', name: 'X' })).statusCode).toBe(400);
  });

  it('throttles guessing of invitation tokens per source', async () => {
    const guesser = new AuthTestClient(node, '198.51.100.9');
    const answers: number[] = [];
    for (let i = 0; i < 31; i++) answers.push((await guesser.post('/api/invitations/accept', { token: randomToken(i), password: NEW_PASSWORD })).statusCode);
    expect(answers.slice(0, 30).every((s) => s === 404)).toBe(true);
    expect(answers[30]).toBe(429);
    expect((await preview(randomToken(99), '198.51.100.9')).statusCode).toBe(429);
    expect((await preview(randomToken(99), '198.51.100.10')).statusCode).toBe(404);
    const refused = await node.ctx.store.db.selectFrom('audit_event').select('id').where('action', '=', 'invitation-accepted').where('outcome', '=', 'denied').where('source', '=', '198.51.100.9').execute();
    expect(refused).toHaveLength(30);
  });
});

const randomToken = (i: number) => Buffer.alloc(32, i).toString('base64url');

