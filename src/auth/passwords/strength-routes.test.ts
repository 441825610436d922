import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../actor.js';
import { createAccount } from '../accounts/account-service.js';
import { AuthTestClient } from '../auth-test-client.js';
import { Repository } from '../../records/repository.js';
import { startTestNode, type TestNode } from '../../test-support/test-node.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';

describe('live check of a new password for a signed-in user (POST /api/auth/password/check)', () => {
  let node: TestNode;
  let patient: AuthTestClient;
  beforeAll(async () => {
    node = await startTestNode('pglite');
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'ignacio.prieto@example.org', role: 'patient', name: 'Ignacio Prieto', password: PASSWORD });
    patient = new AuthTestClient(node);
    expect((await patient.signIn({ email: 'ignacio.prieto@example.org', password: PASSWORD })).statusCode).toBe(200);
  });
  afterAll(async () => node?.stop());

  it('gives the verdict the change would give, the user’s own name counted against them, and changes nothing', async () => {
    const personal = await patient.post('/api/auth/password/check', { password: 'ignacio-prieto-verano' });
    expect(personal.statusCode).toBe(200);
    expect(personal.headers['cache-control']).toBe('no-store');
    expect(personal.json().ok).toBe(false);
    expect(personal.json().problems.map((p: { code: string }) => p.code)).toContain('contains-personal-info');
    const strong = (await patient.post('/api/auth/password/check', { password: 'girasoles-bajo-la-tormenta-de-Salta-97' })).json();
    expect(strong).toMatchObject({ ok: true, problems: [], minLength: 12 });
    // The password in use is still the one that signs in.
    expect((await new AuthTestClient(node).signIn({ email: 'ignacio.prieto@example.org', password: PASSWORD })).statusCode).toBe(200);
    const audit = await node.ctx.store.db.selectFrom('audit_event').selectAll().execute();
    expect(JSON.stringify(audit)).not.toContain('girasoles');
  });

  it('needs a signed-in user and the CSRF token, and limits how often one account may check', async () => {
    expect((await node.app.inject({ method: 'POST', url: '/api/auth/password/check', payload: { password: 'x' } })).statusCode).toBe(401);
    expect((await node.request({ method: 'POST', url: '/api/auth/password/check', payload: { password: 'x' } })).statusCode).toBe(403);
    expect((await patient.post('/api/auth/password/check', { password: 'x' }, { csrf: false })).statusCode).toBe(403);
    const answers: number[] = [];
    // Two checks made above; short inputs are cheap to score.
    for (let i = 0; i < 39; i++) answers.push((await patient.post('/api/auth/password/check', { password: `clave${i}` })).statusCode);
    expect(answers.slice(0, 38).every((s) => s === 200)).toBe(true);
    expect(answers[38]).toBe(429);
  });
});
