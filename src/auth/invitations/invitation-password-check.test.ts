import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../actor.js';
import { createAccount } from '../accounts/account-service.js';
import { AuthTestClient } from '../auth-test-client.js';
import { currentTotpCode } from '../mfa/totp.js';
import { Repository } from '../../records/repository.js';
import { startTestNode, type TestNode } from '../../test-support/test-node.js';
import { StrengthCheckBudget } from '../passwords/strength-check-budget.js';
import { InMemoryRateLimiter } from '../../edge/rate-limiter.js';

const STAFF_PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const STRONG = 'girasoles-bajo-la-tormenta-de-Salta-97';

describe('live password check of an invitation (the portal asks it while the invitee types)', () => {
  let node: TestNode;
  let doctor: AuthTestClient;
  const tokenOf = (url: string) => url.slice(url.indexOf('#') + 1);
  const check = (token: string, password: string, remoteAddress = '127.0.0.1') =>
    node.app.inject({ method: 'POST', url: '/api/invitations/password-check', payload: { token, password }, remoteAddress });

  beforeAll(async () => {
    node = await startTestNode('pglite');
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const clinician = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'medica@clinica.example.org', role: 'clinician', name: 'Inés Paredes', password: STAFF_PASSWORD });
    doctor = new AuthTestClient(node);
    expect((await doctor.signIn({ email: 'medica@clinica.example.org', password: STAFF_PASSWORD, code: currentTotpCode(clinician.totpSecret!) })).statusCode).toBe(200);
  });
  afterAll(async () => node?.stop());

  it('answers the same verdict accept would give, with the invitee’s own name counted against them, and keeps the invitation usable', async () => {
    const invited = await doctor.post('/api/invitations', { email: 'rocio.vega@example.org', name: 'Rocío Vega' });
    const token = tokenOf(invited.json().url);

    const personal = await check(token, 'rocio-vega-primavera-2031');
    expect(personal.statusCode).toBe(200);
    expect(personal.headers['cache-control']).toBe('no-store');
    expect(personal.json().ok).toBe(false);
    expect(personal.json().problems.map((p: { code: string }) => p.code)).toContain('contains-personal-info');

    const short = (await check(token, 'abc')).json();
    expect(short.ok).toBe(false);
    expect(short.problems).toContainEqual({ code: 'too-short', minLength: 12 });
    expect(short.score).toBeLessThan(3);

    const strong = (await check(token, STRONG)).json();
    expect(strong).toMatchObject({ ok: true, problems: [] });
    expect(strong.score).toBeGreaterThanOrEqual(3);

    // Checking takes nothing: the invitation is still there to accept, and the password never reaches the audit trail.
    const row = await node.ctx.store.db.selectFrom('invitation').select(['used_at']).where('email', '=', 'rocio.vega@example.org').executeTakeFirstOrThrow();
    expect(row.used_at).toBeNull();
    const audit = await node.ctx.store.db.selectFrom('audit_event').selectAll().execute();
    expect(JSON.stringify(audit)).not.toContain(STRONG);
    expect((await new AuthTestClient(node).post('/api/invitations/accept', { token, password: STRONG })).statusCode).toBe(200);
    // Once used, the token no longer opens the check either.
    expect((await check(token, STRONG)).statusCode).toBe(404);
  });

  it('refuses unknown tokens like accept does, counting them towards the per-source throttle', async () => {
    const source = '198.51.100.77';
    const answers: number[] = [];
    for (let i = 0; i < 31; i++) answers.push((await check(Buffer.alloc(32, i).toString('base64url'), STRONG, source)).statusCode);
    expect(answers.slice(0, 30).every((s) => s === 404)).toBe(true);
    expect(answers[30]).toBe(429);
    // Another source is not held back.
    expect((await check(Buffer.alloc(32, 1).toString('base64url'), STRONG, '198.51.100.78')).statusCode).toBe(404);
  });

  it('limits how often one invitation may be checked', async () => {
    const invited = await doctor.post('/api/invitations', { email: 'hugo.lima@example.org', name: 'Hugo Lima' });
    const token = tokenOf(invited.json().url);
    const answers: number[] = [];
    for (let i = 0; i < 41; i++) answers.push((await check(token, `clave${i}`, '203.0.113.5')).statusCode); // short inputs: cheap to score
    expect(answers.slice(0, 40).every((s) => s === 200)).toBe(true);
    expect(answers[40]).toBe(429);
    // The budget itself, on the node-local limiter (farm-wide: src/edge/rate-limit-farm.test.ts).
    const budget = new StrengthCheckBudget(new InMemoryRateLimiter(), 'invitation', 2, 60_000);
    expect([await budget.take('a', 0), await budget.take('a', 1), await budget.take('a', 2), await budget.take('b', 2)]).toEqual([0, 0, 60, 0]);
    // A sliding window: half a window after the first one ends, half its checks still weigh.
    expect(await budget.take('a', 60_000)).toBeGreaterThan(0);
    expect(await budget.take('a', 90_001)).toBe(0);
  });

  it('lists the new account’s second factors for its security page, counts only, and changes as the patient enrols one', async () => {
    const invited = await doctor.post('/api/invitations', { email: 'nora.gil@example.org', name: 'Nora Gil' });
    const patient = new AuthTestClient(node);
    expect((await patient.post('/api/invitations/accept', { token: tokenOf(invited.json().url), password: STRONG })).statusCode).toBe(200);
    const before = await patient.get('/api/auth/mfa');
    expect(before.statusCode).toBe(200);
    expect(before.headers['cache-control']).toBe('no-store');
    expect(before.json()).toEqual({ totp: false, passkeys: 0, recoveryCodesLeft: 0, required: false });

    const enrolment = await patient.post('/api/auth/mfa/totp/enrol', { password: STRONG });
    expect(enrolment.statusCode).toBe(200);
    // A pending secret is not a factor yet.
    expect((await patient.get('/api/auth/mfa')).json().totp).toBe(false);
    const confirmed = await patient.post('/api/auth/mfa/totp/confirm', { code: currentTotpCode(enrolment.json().secret) });
    expect(confirmed.statusCode).toBe(200);
    const after = await patient.get('/api/auth/mfa');
    expect(after.json()).toEqual({ totp: true, passkeys: 0, recoveryCodesLeft: 10, required: false });
    expect(after.body).not.toContain(enrolment.json().secret);

    // Only a signed-in user's own factors: no session, no answer.
    expect((await node.app.inject({ method: 'GET', url: '/api/auth/mfa' })).statusCode).toBe(401);
    expect((await node.request({ method: 'GET', url: '/api/auth/mfa' })).statusCode).toBe(403);
  });

  it('shows an invitation from the installation token as coming from the clinic, with no name', async () => {
    const res = await node.app.inject({
      method: 'POST',
      url: '/api/invitations',
      headers: { authorization: `Bearer ${node.token}` },
      payload: { email: 'staff.nuevo@clinica.example.org', role: 'clinician', name: 'Nuevo' },
    });
    expect(res.statusCode).toBe(201);
    const shown = await node.app.inject({ method: 'GET', url: `/api/invitations/${tokenOf(res.json().url)}/preview` });
    expect(shown.json().invitedBy).toEqual({ name: null, role: 'installation' });
    expect(shown.json().role).toBe('clinician');
    expect(shown.json().mfaRequired).toBe(true);
  });
});
