import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount, type NewAccount } from '../auth/accounts/account-service.js';
import { AuthTestClient } from '../auth/auth-test-client.js';
import { currentTotpCode } from '../auth/mfa/totp.js';
import { Repository } from '../records/repository.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const ATTACKER = '203.0.113.77';
const GUESSER = '198.51.100.14';
/** A marker that only the refused request carried: the console must never show it. */
const PAYLOAD_MARKER = 'zq_marker_tbl';

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.each(STORE_KINDS)('security events for the admin console (%s)', (kind) => {
  let node: TestNode;
  let admin: NewAccount;
  let clinician: NewAccount;
  let adminClient: AuthTestClient;

  beforeAll(async () => {
    node = await startTestNode(kind);
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    admin = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'seguridad@clinica.example.org', role: 'admin', name: 'Marta Ruiz', password: PASSWORD });
    clinician = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'doctora@clinica.example.org', role: 'clinician', name: 'Lucía Fernández', password: PASSWORD });
    adminClient = new AuthTestClient(node);
    expect((await adminClient.signIn({ email: admin.email, password: PASSWORD, code: currentTotpCode(admin.totpSecret!) })).statusCode).toBe(200);
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('shows shield blocks, bans and failed sign-ins: what, where from, when, counted over time', async () => {
    // An attacker probes until banned; someone guesses the clinician's password once.
    for (let i = 0; i < 8; i++) {
      const res = await node.app.inject({ method: 'GET', url: `/fhir/R4/Patient?name=x'%20UNION%20SELECT%20secret%20FROM%20${PAYLOAD_MARKER}--`, remoteAddress: ATTACKER });
      expect(res.statusCode).toBe(403);
    }
    const guess = new AuthTestClient(node, GUESSER);
    expect((await guess.signIn({ email: clinician.email, password: 'not-the-password-at-all' })).statusCode).toBe(401);

    // The shield records in the background: wait until the ban is on the trail.
    const view = await until('the ban to show', async () => {
      const res = await adminClient.get('/api/admin/security/events');
      expect(res.statusCode).toBe(200);
      const body = res.json();
      return body.activeBans.some((b: { source: string }) => b.source === ATTACKER) ? body : undefined;
    });

    expect(view.totals['shield-block']).toBeGreaterThanOrEqual(1);
    expect(view.totals['shield-ban']).toBe(1);
    expect(view.totals['sign-in-failed']).toBe(1);
    // The chart's buckets add up to the totals and cover the window in order.
    for (const kind of view.kinds as string[]) {
      expect(view.buckets.reduce((sum: number, b: { counts: Record<string, number> }) => sum + b.counts[kind]!, 0)).toBe(view.totals[kind]);
    }
    const starts = view.buckets.map((b: { start: string }) => Date.parse(b.start));
    expect(starts).toEqual([...starts].sort((a: number, b: number) => a - b));
    expect(starts[0]).toBeLessThanOrEqual(Date.parse(view.window.from));

    const block = view.events.find((e: { kind: string }) => e.kind === 'shield-block');
    expect(block).toMatchObject({ source: ATTACKER, actor: 'shield', outcome: 'denied', detail: { route: '/fhir/R4/:type', method: 'GET' } });
    expect(block.detail.families).toContain('sqli');
    const failed = view.events.find((e: { kind: string }) => e.kind === 'sign-in-failed');
    expect(failed).toMatchObject({ source: GUESSER, actor: clinician.email, detail: { failures: 1 } });
    expect(view.topSources[0]).toEqual({ source: ATTACKER, events: expect.any(Number) });
    expect(view.shield.enabled).toBe(true);
    expect(view.shield.blocksByFamily.sqli).toBeGreaterThanOrEqual(1);
    expect(view.shield.blocksByFamily.banned).toBeGreaterThanOrEqual(1);
    expect(view.shield.activeBans).toBe(1);
    // What was refused is named by rule and family, never repeated.
    expect(JSON.stringify(view)).not.toContain(PAYLOAD_MARKER);

    const onlyFailures = (await adminClient.get('/api/admin/security/events?kind=sign-in-failed')).json();
    expect(onlyFailures.kinds).toEqual(['sign-in-failed']);
    expect(onlyFailures.events.map((e: { kind: string }) => e.kind)).toEqual(['sign-in-failed']);

    // A window before any of it: nothing.
    const past = (await adminClient.get('/api/admin/security/events?from=2020-01-01&to=2020-01-02')).json();
    expect(past.events).toEqual([]);
    expect(Object.values(past.totals)).toEqual([0, 0, 0, 0, 0]);
    expect(past.window.bucketSeconds).toBe(3600);

    // Each reading is on the trail.
    const readings = await node.ctx.store.db.selectFrom('audit_event').select(['actor', 'outcome', 'detail']).where('action', '=', 'audit-search').execute();
    expect(readings.filter((r) => r.actor === `account:${admin.id}` && r.outcome === 'success' && (r.detail as { view?: string }).view === 'security-events').length).toBeGreaterThanOrEqual(3);
  });

  it('refuses bad filters with a clear error', async () => {
    const bad = await adminClient.get('/api/admin/security/events?kind=read');
    expect(bad.statusCode).toBe(400);
    expect(JSON.stringify(bad.json())).toContain('kind must be');
    expect((await adminClient.get('/api/admin/security/events?from=yesterday')).statusCode).toBe(400);
    expect((await adminClient.get('/api/admin/security/events?_count=0')).statusCode).toBe(400);
    expect((await adminClient.get('/api/admin/security/events?from=2026-01-02&to=2026-01-01')).statusCode).toBe(400);
  });

  it('is for administrators only: a clinician gets 403, and the attempt is audited', async () => {
    const doctor = new AuthTestClient(node);
    expect((await doctor.signIn({ email: clinician.email, password: PASSWORD, code: currentTotpCode(clinician.totpSecret!) })).statusCode).toBe(200);
    expect((await doctor.get('/api/admin/security/events')).statusCode).toBe(403);
    expect((await node.app.inject({ method: 'GET', url: '/api/admin/security/events' })).statusCode).toBe(401);
    const denied = await node.ctx.store.db.selectFrom('audit_event').select('detail').where('action', '=', 'audit-search').where('outcome', '=', 'denied').where('actor', 'in', [`account:${clinician.id}`, `Practitioner/${clinician.practitionerId}`]).execute();
    expect(denied.map((d) => (d.detail as { view?: string }).view)).toContain('security-events');
  });
});
