import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount } from '../auth/accounts/account-service.js';
import { currentTotpCode } from '../auth/mfa/totp.js';
import { SESSION_COOKIE } from '../auth/sessions/session-store.js';
import { Repository } from '../records/repository.js';
import { create, patient } from '../test-support/fixtures.js';
import { HEALTH_DATA_MARKERS } from '../test-support/health-data-markers.js';
import { startTestNode, type TestNode } from '../test-support/test-node.js';

const PASSWORD = 'nubes-altas-sobre-el-puerto-de-Vigo-7';

describe('GET /metrics', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startTestNode('pglite');
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('counts requests by route pattern and status, times them, and reports consultations and readiness', async () => {
    const p = await create(node, patient('Métrica', ['Sin', 'Nombre']));
    await node.request({ method: 'GET', url: `/fhir/R4/Patient/${p.id}` });
    await node.request({ method: 'GET', url: '/fhir/R4/Patient?name=M%C3%A9trica' });
    const res = await node.request({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = res.body;
    expect(text).toMatch(/telesalud_http_requests_total\{method="GET",route="\/fhir\/R4\/:type\/:id",status="200"\} 1/);
    expect(text).toMatch(/telesalud_http_request_duration_seconds_count\{method="GET",route="\/fhir\/R4\/:type"\} 1/);
    expect(text).toMatch(/telesalud_ready 1/);
    expect(text).toMatch(/telesalud_consult_rooms 0/);
    expect(text).toMatch(/telesalud_process_resident_memory_bytes \d+/);
    expect(text).toMatch(/telesalud_sessions_active 0/);
    expect(text).toMatch(/telesalud_accounts_locked 0/);
    // Route patterns only: no id, no query, no name.
    expect(text).not.toContain(p.id);
    for (const marker of [...HEALTH_DATA_MARKERS, 'Métrica', 'M%C3%A9trica']) expect(text).not.toContain(marker);
  });

  it('is for administrators only', async () => {
    expect((await node.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const clinician = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'metricas@clinica.example.org', role: 'clinician', name: 'Ana Métricas', password: PASSWORD });
    const signIn = await node.app.inject({ method: 'POST', url: '/api/auth/sign-in', payload: { email: clinician.email, password: PASSWORD, code: currentTotpCode(clinician.totpSecret!) } });
    const cookie = signIn.cookies.find((c) => c.name === SESSION_COOKIE)!.value;
    expect((await node.app.inject({ method: 'GET', url: '/metrics', cookies: { [SESSION_COOKIE]: cookie } })).statusCode).toBe(403);
    await node.app.inject({ method: 'POST', url: '/api/auth/sign-in', payload: { email: clinician.email, password: 'not-the-password-at-all' } });
    await node.ctx.audit.drain();
    const text = (await node.request({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(/telesalud_sessions_active 1/);
    expect(text).toMatch(/telesalud_sign_in_failures_last_hour 1/);
  });
});
