import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repository } from '../../records/repository.js';
import { startTestNode, type TestNode } from '../../test-support/test-node.js';
import { SYSTEM_ACTOR } from '../actor.js';
import { createAccount } from '../accounts/account-service.js';
import { AuthTestClient } from '../auth-test-client.js';
import { currentTotpCode } from '../mfa/totp.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';

/** The pages before sign-in (an invitation, a guest's link) show times on the clinic's clock: they ask GET /api/clinic. */
describe('the clinic time zone for pages before sign-in', () => {
  let node: TestNode;
  let admin: AuthTestClient;
  const anonymous = () => node.app.inject({ method: 'GET', url: '/api/clinic', remoteAddress: '203.0.113.40' });

  beforeAll(async () => {
    node = await startTestNode('pglite', { TELESALUD_CLINIC_TIME_ZONE: 'Europe/Madrid' });
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const made = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'admin@clinica.example.org', role: 'admin', name: 'Marta Ruiz', password: PASSWORD });
    admin = new AuthTestClient(node);
    expect((await admin.signIn({ email: made.email, password: PASSWORD, code: currentTotpCode(made.totpSecret!) })).statusCode).toBe(200);
  });
  afterAll(async () => node?.stop());

  it('names the installation default to anyone, without a session, and only that', async () => {
    const res = await anonymous();
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ timeZone: 'Europe/Madrid' });
    // Asked again on each page load: an admin may change it.
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.headers['set-cookie']).toBeUndefined();
  });

  it('follows the zone an admin sets, the same one a signed-in session is told', async () => {
    expect((await admin.send('PUT', '/api/admin/policy', { clinic: { timeZone: 'America/Mexico_City' } })).statusCode).toBe(200);
    expect((await anonymous()).json()).toEqual({ timeZone: 'America/Mexico_City' });
    expect((await admin.get('/api/auth/session')).json().clinic).toEqual({ timeZone: 'America/Mexico_City' });
    expect((await admin.send('PUT', '/api/admin/policy', { clinic: { timeZone: null } })).statusCode).toBe(200);
    expect((await anonymous()).json()).toEqual({ timeZone: 'Europe/Madrid' });
  });

  it('is read-only: a change is refused and nothing changes', async () => {
    const put = await node.app.inject({ method: 'PUT', url: '/api/clinic', payload: { timeZone: 'UTC' }, remoteAddress: '203.0.113.40' });
    expect(put.statusCode).toBeGreaterThanOrEqual(400);
    expect(put.statusCode).toBeLessThan(500);
    expect((await anonymous()).json()).toEqual({ timeZone: 'Europe/Madrid' });
  });
});
