import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount, type NewAccount } from '../auth/accounts/account-service.js';
import { TEST_REDIS_URL } from '../cluster/throwaway-redis.js';
import { loadConfig } from '../config/config.js';
import { recordConsent } from '../privacy/telehealth-consent.js';
import { Repository } from '../records/repository.js';
import { buildApp } from '../server/app.js';
import type { AppContext } from '../server/app-context.js';
import { startNode } from '../server/node.js';
import { appointment } from '../test-support/fixtures.js';
import { adminQuery, databaseUrl } from '../test-support/global-setup.js';
import { pgTemplateDatabase } from '../test-support/paths.js';
import { testLogger } from '../test-support/test-node.js';
import type { ClientMessage } from './signaling-protocol.js';
import { SignalingTestClient } from './signaling-test-client.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const PUBLIC_URL = 'https://clinica.test';
const base = process.env.TELESALUD_TEST_DATABASE_URL;

interface FarmNode {
  ctx: AppContext & { stop(): Promise<void> };
  app: FastifyInstance;
  url: string;
}

/**
 * Relay usage in a farm: each participant reports to the node that holds its socket, so "now"
 * is the sum of the nodes' heartbeats in Redis and "today" the sum every node adds to the
 * database — any node's status page shows the farm's figures.
 */
describe.skipIf(!base)('relay usage across the nodes of a farm (PostgreSQL + Redis)', () => {
  const prefix = `telesalud-test:${randomBytes(6).toString('hex')}:`;
  const dbName = `telesalud_test_${randomBytes(6).toString('hex')}`;
  let dataDir: string;
  const nodes: FarmNode[] = [];
  const clients: SignalingTestClient[] = [];
  const accounts: Record<string, NewAccount & { cookie: string }> = {};
  let env: Record<string, string>;

  async function startFarmNode(): Promise<FarmNode> {
    const ctx = await startNode(loadConfig(env), testLogger());
    const app = await buildApp(ctx);
    const node = { ctx, app, url: await app.listen({ port: 0, host: '127.0.0.1' }) };
    nodes.push(node);
    return node;
  }

  beforeAll(async () => {
    await adminQuery(base!, `create database ${dbName} template ${pgTemplateDatabase()}`);
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-relay-farm-'));
    env = {
      TELESALUD_DATA_DIR: dataDir,
      TELESALUD_DATABASE_URL: databaseUrl(base!, dbName),
      TELESALUD_REDIS_URL: TEST_REDIS_URL,
      TELESALUD_REDIS_PREFIX: prefix,
      TELESALUD_MASTER_KEY: randomBytes(32).toString('base64'),
      TELESALUD_ADMIN_TOKEN: randomBytes(24).toString('base64url'),
      TELESALUD_PUBLIC_URL: PUBLIC_URL,
      TELESALUD_HOST: '127.0.0.1',
      TELESALUD_PORT: '0',
      TELESALUD_TURN_URLS: 'turn:127.0.0.1:3478?transport=udp',
      TELESALUD_TURN_SECRET: 'coturn-static-auth-secret-for-tests',
    };
    // One after the other: the first writes the shared audit key into the data dir.
    const a = await startFarmNode();
    await startFarmNode();
    const records = new Repository(a.ctx.store.db, a.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    for (const [key, role, name] of [
      ['host', 'clinician', 'Lucía Fernández'],
      ['patient', 'patient', 'Tomás Romero'],
    ] as const) {
      const account = await createAccount(a.ctx.store.db, records, a.ctx.keyRing, { email: `${key}.farm-relay@clinica.example.org`, role, name, password: PASSWORD });
      if (account.patientId) await recordConsent(a.ctx.store.db, { patientRef: `Patient/${account.patientId}`, accountId: account.id, source: 'test' });
      const session = await a.ctx.sessions.create({ id: account.id, role: account.role }, { source: '127.0.0.1' });
      accounts[key] = { ...account, cookie: session.token };
    }
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    for (const node of [...nodes].reverse()) {
      await node.app.close().catch(() => undefined);
      await node.ctx.stop().catch(() => undefined);
    }
    await adminQuery(base!, `drop database if exists ${dbName} with (force)`);
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function connect(node: FarmNode, who: string): Promise<SignalingTestClient> {
    const client = await SignalingTestClient.connect(node.url, { origin: PUBLIC_URL, cookie: accounts[who]!.cookie });
    clients.push(client);
    return client;
  }

  it('sums the participants and the relayed bytes each node received into what any node shows', async () => {
    const [a, b] = nodes as [FarmNode, FarmNode];
    const records = new Repository(a.ctx.store.db, a.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const start = new Date(Date.UTC(2027, 3, 1, 8)).toISOString();
    const id = ((await records.create(appointment(accounts.patient!.patientId!, accounts.host!.practitionerId!, start) as never)) as { id: string }).id;
    const join = (identityKey: string): ClientMessage => ({ type: 'join', appointmentId: id, e2ee: true, identityKey });
    const host = await connect(a, 'host');
    host.send(join('HostKey'));
    await host.next('welcome');
    await host.next('lobby');
    const patient = await connect(b, 'patient');
    patient.send(join('PatientKey'));
    const welcome = await patient.next('welcome');
    await host.next('lobby');
    host.send({ type: 'admit', participantId: welcome.participant.id });
    await patient.next('admitted');

    // The host's link (node a) runs over the relay at 4 Mbit/s; the patient's (node b) is direct
    // now, though a quarter of its last interval still went through the relay before the path changed.
    host.send({ type: 'stats', sentBytes: 500_000, receivedBytes: 500_000, intervalMs: 1000, links: 1, relayedLinks: 1, relayedSentBytes: 500_000, relayedReceivedBytes: 500_000 });
    patient.send({ type: 'stats', sentBytes: 1_000_000, receivedBytes: 500_000, intervalMs: 1000, links: 1, relayedLinks: 0, relayedSentBytes: 250_000, relayedReceivedBytes: 0 });

    const admin = (node: FarmNode) => node.app.inject({ method: 'GET', url: '/api/admin/status', headers: { authorization: `Bearer ${env.TELESALUD_ADMIN_TOKEN}` } }).then((r) => r.json());
    const deadline = Date.now() + 30_000;
    let seen: Record<string, any>[] = [];
    // Heartbeats every 5 s carry each node's "now"; each heartbeat also flushes its node's bytes to the database.
    const settled = (s: Record<string, any>) => s.nodes.length === 2 && s.turn.relayUsage.participantsWithMedia === 2 && s.turn.relayUsage.gbitToday >= 0.006 - 1e-12;
    do {
      await new Promise((r) => setTimeout(r, 500));
      seen = await Promise.all([admin(a), admin(b)]);
    } while (!seen.every(settled) && Date.now() < deadline);
    for (const status of seen) {
      expect(status.turn.relayUsage).toMatchObject({ source: 'browsers', participantsWithMedia: 2, participantsRelayed: 1 });
      // Mbit/s over relays in each one's last interval: 4 from the host, 2 from the patient.
      expect(status.turn.relayUsage.mbitPerSecondNow).toBeCloseTo(6, 6);
      // 500 kB from the host's node and 250 kB from the patient's: 6 Mbit relayed today.
      expect(status.turn.relayUsage.gbitToday).toBeCloseTo(0.006, 9);
      expect(status.traffic.days.at(-1).relayedSentGbit).toBeCloseTo(0.006, 9);
      // Each node's row says what its own participants reported.
      const byNode = Object.fromEntries(status.nodes.map((n: { id: string; relay: unknown }) => [n.id, n.relay]));
      expect(byNode[a.ctx.nodeId]).toMatchObject({ participantsWithMedia: 1, participantsRelayed: 1 });
      expect(byNode[b.ctx.nodeId]).toMatchObject({ participantsWithMedia: 1, participantsRelayed: 0, mbitPerSecondNow: 2 });
    }
    host.send({ type: 'end' });
  });
});
