import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount, type NewAccount } from '../auth/accounts/account-service.js';
import { AuthTestClient } from '../auth/auth-test-client.js';
import { currentTotpCode } from '../auth/mfa/totp.js';
import { TEST_REDIS_URL } from '../cluster/throwaway-redis.js';
import { Repository } from '../records/repository.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function adminOf(node: TestNode, email: string): Promise<{ admin: AuthTestClient; clinician: NewAccount }> {
  const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
  const admin = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email, role: 'admin', name: 'Marta Ruiz', password: PASSWORD });
  const clinician = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: `doctora.${email}`, role: 'clinician', name: 'Lucía Fernández', password: PASSWORD });
  const client = new AuthTestClient(node);
  expect((await client.signIn({ email, password: PASSWORD, code: currentTotpCode(admin.totpSecret!) })).statusCode).toBe(200);
  return { admin: client, clinician };
}

describe.each(STORE_KINDS)('service status for the admin console (%s)', (kind) => {
  let node: TestNode;
  let admin: AuthTestClient;
  let clinician: NewAccount;

  beforeAll(async () => {
    node = await startTestNode(kind);
    ({ admin, clinician } = await adminOf(node, 'estado@clinica.example.org'));
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('reports the node, its readiness, consultations and traffic per day', async () => {
    const today = new Date().toISOString().slice(0, 10);
    const yesterday = new Date(Date.now() - 86400_000).toISOString().slice(0, 10);
    // 1.25 GB sent today is 10 Gbit; yesterday 250 MB, 2 Gbit.
    await node.ctx.store.db.insertInto('consult_traffic_daily').values([{ day: today, sent_bytes: 1.25e9, received_bytes: 1.25e9 }, { day: yesterday, sent_bytes: 2.5e8, received_bytes: 0 }]).execute();

    const res = await admin.get('/api/admin/status');
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const status = res.json();
    expect(status.mode).toBe('single-node');
    expect(status.ready).toMatchObject({ status: 'ready', database: { kind: node.ctx.store.kind, reachable: true }, redis: 'none', signaling: 'single-node' });
    expect(status.nodes).toHaveLength(1);
    expect(status.nodes[0]).toMatchObject({ id: node.ctx.nodeId, self: true, version: node.ctx.version, draining: false, rooms: 0, participants: 0 });
    expect(status.consult).toMatchObject({ rooms: 0, participants: 0, waiting: 0, mbitPerSecondNow: 0 });
    expect(status.consult.gbitToday).toBeCloseTo(10, 6);
    expect(status.traffic.days).toHaveLength(14);
    expect(status.traffic.days.at(-1)).toMatchObject({ day: today, sentGbit: 10, receivedGbit: 10 });
    expect(status.traffic.days.at(-2)).toMatchObject({ day: yesterday, sentGbit: 2, receivedGbit: 0 });
    expect(status.traffic.days[0].sentGbit).toBe(0);
    expect(status.traffic.recent.length).toBeGreaterThanOrEqual(1);
    // Nobody in a call: the browsers' reports of their path say nothing is relayed.
    expect(status.turn).toEqual({ configured: false, urls: [], relayUsage: { source: 'browsers', participantsWithMedia: 0, participantsRelayed: 0, mbitPerSecondNow: 0, gbitToday: 0 } });
    expect(status.traffic.days.at(-1)).toMatchObject({ relayedSentGbit: 0, relayedReceivedGbit: 0 });
    expect(status.traffic.recent.at(-1)).toMatchObject({ relayedMbit: 0 });
  });

  it('says draining while the node drains', async () => {
    node.ctx.lifecycle.draining = true;
    try {
      const status = (await admin.get('/api/admin/status')).json();
      expect(status.ready.status).toBe('draining');
      expect(status.nodes[0].draining).toBe(true);
    } finally {
      node.ctx.lifecycle.draining = false;
    }
  });

  it('is for administrators only: a clinician gets 403', async () => {
    const doctor = new AuthTestClient(node);
    expect((await doctor.signIn({ email: clinician.email, password: PASSWORD, code: currentTotpCode(clinician.totpSecret!) })).statusCode).toBe(200);
    expect((await doctor.get('/api/admin/status')).statusCode).toBe(403);
    expect((await node.app.inject({ method: 'GET', url: '/api/admin/status' })).statusCode).toBe(401);
  });
});

describe.runIf(process.env.TELESALUD_TEST_REDIS_URL)('service status of a farm', () => {
  const env = { TELESALUD_REDIS_URL: TEST_REDIS_URL, TELESALUD_REDIS_PREFIX: `status-test-${randomBytes(4).toString('hex')}:` };
  let a: TestNode;
  let b: TestNode | undefined;
  beforeAll(async () => {
    a = await startTestNode('pglite', env);
    b = await startTestNode('pglite', env);
  });
  afterAll(async () => {
    await b?.stop();
    await a?.stop();
  });

  it("lists every node by its heartbeat, and drops a node that leaves", async () => {
    const { admin } = await adminOf(a, 'granja@clinica.example.org');
    const both = await until('both nodes listed', async () => {
      const status = (await admin.get('/api/admin/status')).json();
      return status.nodes.length === 2 ? status : undefined;
    });
    expect(both.mode).toBe('farm');
    expect(both.ready).toMatchObject({ redis: 'up', signaling: 'farm' });
    expect(both.nodes.map((n: { id: string }) => n.id).sort()).toEqual([a.ctx.nodeId, b!.ctx.nodeId].sort());
    expect(both.nodes.find((n: { self: boolean }) => n.self).id).toBe(a.ctx.nodeId);
    expect(both.nodes.every((n: { secondsSinceHeartbeat: number }) => n.secondsSinceHeartbeat < 30)).toBe(true);

    await b!.stop();
    b = undefined;
    const alone = (await admin.get('/api/admin/status')).json();
    expect(alone.nodes.map((n: { id: string }) => n.id)).toEqual([a.ctx.nodeId]);
  });
});
