import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../actor.js';
import { createAccount, type NewAccount } from '../accounts/account-service.js';
import { currentTotpCode } from '../mfa/totp.js';
import { Repository } from '../../records/repository.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';
import { create, patient } from '../../test-support/fixtures.js';
import { SESSION_COOKIE } from '../sessions/session-store.js';
import { SIGN_IN_LIMITS } from './sign-in-service.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';

describe.each(STORE_KINDS)('sign-in and sessions (%s)', (kind) => {
  let node: TestNode;
  let clinician: NewAccount;
  let patientAccount: NewAccount;
  let otherPatientId: string;
  beforeAll(async () => {
    node = await startTestNode(kind);
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    clinician = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'Doctora@Clinica.example.org', role: 'clinician', name: 'Lucía Fernández', password: PASSWORD });
    patientAccount = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'paciente@example.org', role: 'patient', name: 'Tomás Romero', password: PASSWORD });
    otherPatientId = (await create(node, patient('Otra', ['Persona']))).id;
  });
  afterAll(async () => {
    await node?.stop();
  });

  const signIn = (body: Record<string, string>, remoteAddress = '127.0.0.1') => node.app.inject({ method: 'POST', url: '/api/auth/sign-in', payload: body, remoteAddress });
  const cookieOf = (res: { cookies: { name: string; value: string }[] }) => res.cookies.find((c) => c.name === SESSION_COOKIE)?.value;

  it('creates the linked FHIR resource and a TOTP secret for staff only', () => {
    expect(clinician.practitionerId).toMatch(/^[0-9a-f-]{36}$/);
    expect(clinician.totpSecret).toMatch(/^[A-Z2-7]{32}$/);
    expect(clinician.email).toBe('doctora@clinica.example.org');
    expect(patientAccount.patientId).toMatch(/^[0-9a-f-]{36}$/);
    expect(patientAccount.totpSecret).toBeUndefined();
  });

  it('asks staff for the second factor only after a correct password, and refuses a replayed code', async () => {
    const noCode = await signIn({ email: 'doctora@clinica.example.org', password: PASSWORD });
    expect(noCode.statusCode).toBe(401);
    expect(noCode.json().error).toBe('mfa-required');
    const code = currentTotpCode(clinician.totpSecret!);
    const ok = await signIn({ email: 'DOCTORA@clinica.example.org', password: PASSWORD, code });
    expect(ok.statusCode).toBe(200);
    const cookie = ok.cookies.find((c) => c.name === SESSION_COOKIE)!;
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict', path: '/' });
    expect(cookie.domain).toBeUndefined();
    const replay = await signIn({ email: 'doctora@clinica.example.org', password: PASSWORD, code });
    expect(replay.statusCode).toBe(401);
    expect(replay.json().error).toBe('sign-in-failed');
  });

  it('answers a wrong password and an unknown account identically', async () => {
    const wrong = await signIn({ email: 'paciente@example.org', password: 'not-the-password-at-all' }, '10.0.0.1');
    const unknown = await signIn({ email: 'nobody@example.org', password: 'not-the-password-at-all' }, '10.0.0.1');
    expect(wrong.statusCode).toBe(401);
    expect(unknown.statusCode).toBe(401);
    expect(unknown.body).toBe(wrong.body);
    await node.ctx.store.db.updateTable('account').set({ failed_sign_ins: 0, last_failed_at: null }).execute();
  });

  it('lets a patient see only their own record', async () => {
    const res = await signIn({ email: 'paciente@example.org', password: PASSWORD });
    expect(res.statusCode).toBe(200);
    const cookies = { [SESSION_COOKIE]: cookieOf(res)! };
    const own = await node.app.inject({ method: 'GET', url: `/fhir/R4/Patient/${patientAccount.patientId}`, cookies });
    expect(own.statusCode).toBe(200);
    const other = await node.app.inject({ method: 'GET', url: `/fhir/R4/Patient/${otherPatientId}`, cookies });
    expect(other.statusCode).toBe(404);
    const search = await node.app.inject({ method: 'GET', url: '/fhir/R4/Patient?_count=100&_total=accurate', cookies });
    expect(search.json().total).toBe(1);
    expect(search.json().entry.map((e: any) => e.resource.id)).toEqual([patientAccount.patientId]);
    const write = await node.app.inject({ method: 'POST', url: '/fhir/R4/Patient', payload: patient('Intruso', ['X']), cookies, headers: { 'x-csrf-token': res.json().csrfToken } });
    expect(write.statusCode).toBe(403);
  });

  it('needs the CSRF token and the own origin for changes made with a session cookie', async () => {
    const res = await signIn({ email: 'paciente@example.org', password: PASSWORD });
    const cookies = { [SESSION_COOKIE]: cookieOf(res)! };
    const csrf = res.json().csrfToken as string;
    expect((await node.app.inject({ method: 'POST', url: '/api/auth/sign-out', cookies })).statusCode).toBe(403);
    expect((await node.app.inject({ method: 'POST', url: '/api/auth/sign-out', cookies, headers: { 'x-csrf-token': csrf, origin: 'https://evil.example' } })).statusCode).toBe(403);
    expect((await node.app.inject({ method: 'POST', url: '/api/auth/sign-out', cookies, headers: { 'x-csrf-token': csrf, origin: node.config.publicUrl } })).statusCode).toBe(204);
    expect((await node.app.inject({ method: 'GET', url: '/api/auth/session', cookies })).statusCode).toBe(401);
  });

  it('lists the user\'s sessions and ends one of them everywhere', async () => {
    const first = cookieOf(await signIn({ email: 'paciente@example.org', password: PASSWORD }))!;
    const second = cookieOf(await signIn({ email: 'paciente@example.org', password: PASSWORD }))!;
    const me = (await node.app.inject({ method: 'GET', url: '/api/auth/session', cookies: { [SESSION_COOKIE]: first } })).json();
    const list = (await node.app.inject({ method: 'GET', url: '/api/auth/sessions', cookies: { [SESSION_COOKIE]: second } })).json();
    expect(list.sessions.length).toBeGreaterThanOrEqual(2);
    const ended = await node.app.inject({ method: 'DELETE', url: `/api/auth/sessions/${me.sessionId}`, cookies: { [SESSION_COOKIE]: second }, headers: { 'x-csrf-token': (await node.app.inject({ method: 'GET', url: '/api/auth/session', cookies: { [SESSION_COOKIE]: second } })).json().csrfToken } });
    expect(ended.statusCode).toBe(204);
    expect((await node.app.inject({ method: 'GET', url: '/api/auth/session', cookies: { [SESSION_COOKIE]: first } })).statusCode).toBe(401);
  });

  it('refuses forged and expired session cookies', async () => {
    expect((await node.app.inject({ method: 'GET', url: '/api/auth/session', cookies: { [SESSION_COOKIE]: 'forged-token-value' } })).statusCode).toBe(401);
    const token = cookieOf(await signIn({ email: 'paciente@example.org', password: PASSWORD }))!;
    const later = new Date(Date.now() + 31 * 60_000); // patients: 30 idle minutes
    expect(await node.ctx.sessions.resolve(token, later)).toBeUndefined();
    expect((await node.app.inject({ method: 'GET', url: '/api/auth/session', cookies: { [SESSION_COOKIE]: token } })).statusCode).toBe(401);
  });

  it('slows and then pauses guessing, and lets the user in after the pause', async () => {
    const origin = { source: '192.0.2.7', requestId: 'guess' };
    const t0 = new Date();
    let now = t0;
    for (let i = 0; i < SIGN_IN_LIMITS.lockAfter; i++) {
      now = new Date(now.getTime() + 61_000); // past any progressive delay
      expect((await node.ctx.signIn.signIn({ email: 'paciente@example.org', password: `guess-${i}` }, origin, now)).kind).toBe('refused');
    }
    // Paused: even the right password is refused, with the same answer.
    const paused = await node.ctx.signIn.signIn({ email: 'paciente@example.org', password: PASSWORD }, origin, new Date(now.getTime() + 1000));
    expect(paused.kind).toBe('refused');
    const after = await node.ctx.signIn.signIn({ email: 'paciente@example.org', password: PASSWORD }, { source: '192.0.2.8', requestId: 'legit' }, new Date(now.getTime() + (SIGN_IN_LIMITS.lockMinutes * 60 + 1) * 1000));
    expect(after.kind).toBe('signed-in');
    const events = await node.ctx.store.db.selectFrom('audit_event').select('action').where('actor', '=', `account:${patientAccount.id}`).execute();
    expect(events.map((e) => e.action)).toEqual(expect.arrayContaining(['sign-in-failed', 'account-locked', 'sign-in']));
  });
});
