import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount, type NewAccount } from '../auth/accounts/account-service.js';
import { recordConsent } from '../privacy/telehealth-consent.js';
import { SESSION_COOKIE } from '../auth/sessions/session-store.js';
import { startThrowawayRedis, TEST_REDIS_URL, type ThrowawayRedis } from '../cluster/throwaway-redis.js';
import { loadConfig } from '../config/config.js';
import { Repository } from '../records/repository.js';
import { buildApp } from '../server/app.js';
import type { AppContext } from '../server/app-context.js';
import { startNode } from '../server/node.js';
import { appointment } from '../test-support/fixtures.js';
import { adminQuery, databaseUrl } from '../test-support/global-setup.js';
import { pgTemplateDatabase } from '../test-support/paths.js';
import { testLogger } from '../test-support/test-node.js';
import { SignalingTestClient } from './signaling-test-client.js';
import type { ClientMessage } from './signaling-protocol.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const PUBLIC_URL = 'https://clinica.test';
const base = process.env.TELESALUD_TEST_DATABASE_URL;

interface FarmNode {
  ctx: AppContext & { stop(): Promise<void> };
  app: FastifyInstance;
  url: string;
}

/**
 * Nodes of one farm inside this test process: one PostgreSQL database, one data dir for the
 * shared keys, one Redis prefix. Each node has its own HTTP listener, bus and node id.
 */
describe.skipIf(!base)('consultation signaling across nodes (PostgreSQL + Redis)', () => {
  const prefix = `telesalud-test:${randomBytes(6).toString('hex')}:`;
  const dbName = `telesalud_test_${randomBytes(6).toString('hex')}`;
  let dataDir: string;
  let env: Record<string, string>;
  const nodes: FarmNode[] = [];
  const clients: SignalingTestClient[] = [];
  const accounts: Record<string, NewAccount & { cookie: string }> = {};
  let a: FarmNode;
  let b: FarmNode;
  let slot = 0;

  async function startFarmNode(extra: Record<string, string> = {}): Promise<FarmNode> {
    const config = loadConfig({ ...env, ...extra });
    const ctx = await startNode(config, testLogger());
    const app = await buildApp(ctx);
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const node = { ctx, app, url };
    nodes.push(node);
    return node;
  }

  async function stopNode(node: FarmNode): Promise<void> {
    nodes.splice(nodes.indexOf(node), 1);
    await node.app.close();
    await node.ctx.stop();
  }

  beforeAll(async () => {
    await adminQuery(base!, `create database ${dbName} template ${pgTemplateDatabase()}`);
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-farm-'));
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
    };
    // One after the other: the first writes the shared audit key into the data dir.
    a = await startFarmNode();
    b = await startFarmNode();
    const records = new Repository(a.ctx.store.db, a.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    for (const [key, role, name] of [
      ['host', 'clinician', 'Lucía Fernández'],
      ['patient', 'patient', 'Tomás Romero'],
    ] as const) {
      const account = await createAccount(a.ctx.store.db, records, a.ctx.keyRing, { email: `${key}@clinica.example.org`, role, name, password: PASSWORD });
      if (account.patientId) await recordConsent(a.ctx.store.db, { patientRef: `Patient/${account.patientId}`, accountId: account.id, source: 'test' });
      const session = await a.ctx.sessions.create({ id: account.id, role: account.role }, { source: '127.0.0.1' });
      accounts[key] = { ...account, cookie: session.token };
    }
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    for (const node of [...nodes].reverse()) await stopNode(node).catch(() => undefined);
    await adminQuery(base!, `drop database if exists ${dbName} with (force)`);
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function newAppointment(node: FarmNode): Promise<string> {
    const start = new Date(Date.UTC(2027, 2, 1, 8) + slot++ * 30 * 60_000).toISOString();
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const created = await records.create(appointment(accounts.patient!.patientId!, accounts.host!.practitionerId!, start) as never);
    return (created as { id: string }).id;
  }

  async function connect(node: FarmNode, who: string): Promise<SignalingTestClient> {
    const client = await SignalingTestClient.connect(node.url, { origin: PUBLIC_URL, cookie: accounts[who]!.cookie });
    clients.push(client);
    return client;
  }

  const join = (appointmentId: string, extra: Partial<Extract<ClientMessage, { type: 'join' }>> = {}): ClientMessage => ({ type: 'join', appointmentId, e2ee: true, identityKey: 'HostKey', ...extra }) as ClientMessage;
  const roomKey = (appointmentId: string) => `${prefix}consult:room:${appointmentId}`;
  const redis = () => (a.ctx.bus as import('../cluster/redis-bus.js').RedisBus).redis;

  /** Host on `hostNode`, patient on `patientNode`, admitted: the call the tests start from. */
  async function callAcross(hostNode: FarmNode, patientNode: FarmNode) {
    const id = await newAppointment(hostNode);
    const host = await connect(hostNode, 'host');
    host.send(join(id));
    const hostWelcome = await host.next('welcome');
    await host.next('lobby');
    const patient = await connect(patientNode, 'patient');
    patient.send(join(id, { identityKey: 'PatientKey' }));
    const patientWelcome = await patient.next('welcome');
    expect(patientWelcome.state).toBe('waiting');
    // The host on the other node hears of the patient waiting.
    expect((await host.next('lobby')).waiting.map((p) => p.id)).toEqual([patientWelcome.participant.id]);
    host.send({ type: 'admit', participantId: patientWelcome.participant.id });
    expect((await patient.next('admitted')).peers.map((p) => p.id)).toEqual([hostWelcome.participant.id]);
    expect((await host.next('peer-joined')).peer.id).toBe(patientWelcome.participant.id);
    return { id, host, patient, hostId: hostWelcome.participant.id, patientId: patientWelcome.participant.id, secret: patientWelcome.resumeSecret };
  }

  it('meets a clinician on one node and a patient on another in one room, relaying signals and wrapped keys', async () => {
    const { id, host, patient, hostId, patientId } = await callAcross(a, b);
    patient.send({ type: 'signal', to: hostId, description: { type: 'offer', sdp: 'v=0 offer' } });
    expect(await host.next('signal')).toEqual({ type: 'signal', from: patientId, description: { type: 'offer', sdp: 'v=0 offer' } });
    host.send({ type: 'signal', to: patientId, description: { type: 'answer', sdp: 'v=0 answer' } });
    expect((await patient.next('signal')).description).toEqual({ type: 'answer', sdp: 'v=0 answer' });
    host.send({ type: 'e2ee-key', to: patientId, keyId: 3, wrapped: 'd3JhcHBlZA', iv: 'aXY' });
    expect(await patient.next('e2ee-key')).toEqual({ type: 'e2ee-key', from: hostId, keyId: 3, wrapped: 'd3JhcHBlZA', iv: 'aXY' });
    // A burst of candidates arrives complete and in order.
    for (let i = 0; i < 30; i++) patient.send({ type: 'signal', to: hostId, candidate: { candidate: `candidate:${i} 1 udp 1 127.0.0.1 ${50000 + i} typ host`, sdpMid: '0' } });
    const got: string[] = [];
    for (let i = 0; i < 30; i++) got.push((await host.next('signal')).candidate!.candidate);
    expect(got).toEqual([...Array(30).keys()].map((i) => `candidate:${i} 1 udp 1 127.0.0.1 ${50000 + i} typ host`));

    // Neither node holds the room in memory: it is in Redis, without any resume secret in clear.
    expect(a.ctx.consult.room(id)).toBeUndefined();
    expect(b.ctx.consult.room(id)).toBeUndefined();
    const stored = JSON.parse((await redis().get(roomKey(id)))!);
    expect(stored.participants.map((p: { state: string }) => p.state)).toEqual(['admitted', 'admitted']);
    expect(JSON.stringify(stored)).not.toMatch(/resumeSecret/);
    expect(await redis().pttl(roomKey(id))).toBeGreaterThan(0);
    host.send({ type: 'end' });
    expect(await patient.next('closed')).toEqual({ type: 'closed', reason: 'ended' });
    expect(await patient.closed()).toBe(1000);
  });

  it('counts each participant once across the farm: every node sees the room, each lists as its own only the sockets it holds', async () => {
    const [beforeA, beforeB] = await Promise.all([a.ctx.consult.status(), b.ctx.consult.status()]);
    const { host, patient } = await callAcross(a, b);
    const [onA, onB] = await Promise.all([a.ctx.consult.status(), b.ctx.consult.status()]);
    // The farm's figures, the same from either node.
    expect(onA.participants - beforeA.participants).toBe(2);
    expect(onB.participants - beforeB.participants).toBe(2);
    // Each node's own share: the host's socket is on a, the patient's on b.
    expect(onA.onThisNode.participants - beforeA.onThisNode.participants).toBe(1);
    expect(onB.onThisNode.participants - beforeB.onThisNode.participants).toBe(1);
    expect(onA.onThisNode.rooms - beforeA.onThisNode.rooms).toBe(1);
    expect(onB.onThisNode.rooms - beforeB.onThisNode.rooms).toBe(1);
    // The admin console lists each node with its heartbeat: its own share, beside the farm's total.
    const res = await a.app.inject({ method: 'GET', url: '/api/admin/status', headers: { authorization: `Bearer ${env.TELESALUD_ADMIN_TOKEN}` } });
    expect(res.statusCode).toBe(200);
    const status = res.json() as { nodes: { self: boolean; participants: number; rooms: number }[]; consult: { participants: number } };
    expect(status.nodes.find((n) => n.self)).toMatchObject({ participants: onA.onThisNode.participants, rooms: onA.onThisNode.rooms });
    expect(status.consult.participants).toBe(onA.participants);
    // A place waiting for a resume is the farm's, on no node.
    patient.close();
    for (let waited = 0; (await b.ctx.consult.status()).onThisNode.participants > beforeB.onThisNode.participants && waited < 5000; waited += 50) await new Promise((r) => setTimeout(r, 50));
    const [afterA, afterB] = await Promise.all([a.ctx.consult.status(), b.ctx.consult.status()]);
    expect(afterB.onThisNode.participants - beforeB.onThisNode.participants).toBe(0);
    expect(afterA.participants - beforeA.participants).toBe(2);
    host.send({ type: 'end' });
    expect(await host.next('closed')).toEqual({ type: 'closed', reason: 'ended' });
  });

  it('resumes the patient on the host\'s node after its socket on the other node drops, and destroys the room when the last leaves', async () => {
    const { id, host, patient, hostId, patientId, secret } = await callAcross(a, b);
    patient.drop();
    await new Promise((r) => setTimeout(r, 100));
    const back = await connect(a, 'patient');
    back.send(join(id, { identityKey: 'PatientKey', resume: { participantId: patientId, secret } }));
    expect(await back.next('welcome')).toMatchObject({ state: 'admitted', participant: { id: patientId }, resumeSecret: secret });
    expect((await back.next('admitted')).peers.map((p) => p.id)).toEqual([hostId]);
    back.send({ type: 'signal', to: hostId, description: { type: 'offer', sdp: 'v=0 restart' } });
    expect((await host.next('signal')).description?.sdp).toBe('v=0 restart');
    expect(host.pending().some((m) => m.type === 'peer-left')).toBe(false);

    // The wrong secret resumes nothing, whatever node it reaches.
    const thief = await connect(b, 'patient');
    thief.send(join(id, { identityKey: 'PatientKey', resume: { participantId: patientId, secret: 'x'.repeat(32) } }));
    expect((await thief.next('welcome')).state).toBe('waiting');
    expect(await back.next('closed')).toEqual({ type: 'closed', reason: 'replaced' });
    expect((await host.next('peer-left')).participantId).toBe(patientId);
    thief.send({ type: 'leave' });
    await thief.closed();

    host.send({ type: 'leave' });
    await host.closed();
    const end = Date.now() + 2000;
    while ((await redis().exists(roomKey(id))) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(await redis().exists(roomKey(id))).toBe(0);
    expect(await redis().sismember(`${prefix}consult:rooms`, id)).toBe(0);
  });

  it('keeps a dead node\'s participant its place for the grace period, then tells the others', async () => {
    const c = await startFarmNode();
    for (const node of [a, b, c]) node.ctx.consult.resumeGraceMs = 1500;
    try {
      const { host, patientId } = await callAcross(a, c);
      const stopped = Date.now();
      // A node that goes away: its key goes with it (a killed node's expires within NODE_TTL_MS).
      await stopNode(c);
      const left = await host.next('peer-left', 10_000);
      expect(left).toEqual({ type: 'peer-left', participantId: patientId, reason: 'disconnected' });
      expect(Date.now() - stopped).toBeGreaterThanOrEqual(1400);
      host.send({ type: 'leave' });
    } finally {
      for (const node of [a, b]) node.ctx.consult.resumeGraceMs = 20_000;
    }
  });

  it('moves a consultation off a draining node: both sockets hear reconnect, resume on the other node, and the room carries on', async () => {
    const c = await startFarmNode();
    const { id, host, patient, hostId, patientId, secret } = await callAcross(c, c);
    const hostSecret = host.received.find((m) => m.type === 'welcome')!;
    await c.app.close();
    for (const client of [host, patient]) {
      await client.next('reconnect');
      expect(await client.closed()).toBe(1012);
    }
    await c.ctx.stop();
    nodes.splice(nodes.indexOf(c), 1);
    const host2 = await connect(a, 'host');
    host2.send(join(id, { resume: { participantId: hostId, secret: (hostSecret as { resumeSecret: string }).resumeSecret } }));
    expect((await host2.next('welcome')).participant.id).toBe(hostId);
    const patient2 = await connect(b, 'patient');
    patient2.send(join(id, { identityKey: 'PatientKey', resume: { participantId: patientId, secret } }));
    expect(await patient2.next('welcome')).toMatchObject({ state: 'admitted' });
    patient2.send({ type: 'signal', to: hostId, candidate: null });
    expect((await host2.next('signal')).from).toBe(patientId);
    host2.send({ type: 'end' });
    await patient2.next('closed');
  });

  it('bans an attacker on every node once its attacks on one node add up', async () => {
    const attacker = `203.0.113.${10 + Math.floor(Math.random() * 200)}`;
    const token = { authorization: `Bearer ${env.TELESALUD_ADMIN_TOKEN}` };
    for (let i = 0; i < 5; i++) await a.app.inject({ method: 'GET', url: `/fhir/R4/Patient?name=%27%20or%20${i}=${i}--`, remoteAddress: attacker, headers: token });
    // The shield counts offences after answering; the ban lands in Redis a moment later.
    const statusOn = async (node: FarmNode) => {
      const end = Date.now() + 2000;
      let status = 0;
      while (Date.now() < end && (status = (await node.app.inject({ method: 'GET', url: '/fhir/R4/metadata', remoteAddress: attacker })).statusCode) !== 403) await new Promise((r) => setTimeout(r, 20));
      return status;
    };
    expect(await statusOn(a)).toBe(403);
    // The other node heard of the ban through Redis: the attacker's clean request is refused there too.
    expect(await statusOn(b)).toBe(403);
    expect(await redis().hexists(`${prefix}bans`, attacker)).toBe(1);
    expect((await b.app.inject({ method: 'GET', url: '/fhir/R4/metadata', remoteAddress: '198.51.100.77' })).statusCode).toBe(200);
  });

  describe('when Redis goes away', () => {
    let server: ThrowawayRedis;
    let lone: FarmNode;
    let other: FarmNode;
    beforeAll(async () => {
      server = await startThrowawayRedis();
      lone = await startFarmNode({ TELESALUD_REDIS_URL: server.url });
      other = await startFarmNode({ TELESALUD_REDIS_URL: server.url });
    });
    afterAll(async () => {
      await server?.stop();
    });

    const readyz = async () => (await lone.app.inject({ method: 'GET', url: '/readyz' })).json();

    it('keeps signing in and serving the record, says signaling is degraded, runs rooms on the node, and recovers when it returns', async () => {
      expect(await readyz()).toMatchObject({ status: 'ready', redis: 'up', signaling: 'farm' });
      await server.stop();
      const end = Date.now() + 5000;
      while ((await readyz()).redis !== 'down' && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      const degraded = await lone.app.inject({ method: 'GET', url: '/readyz' });
      expect(degraded.statusCode).toBe(200);
      expect(degraded.json()).toMatchObject({ status: 'ready', database: 'postgres', redis: 'down', signaling: 'degraded' });
      expect(Date.parse(degraded.json().redisDownSince)).toBeLessThanOrEqual(Date.now());

      const signIn = await lone.app.inject({ method: 'POST', url: '/api/auth/sign-in', payload: { email: 'patient@clinica.example.org', password: PASSWORD } });
      expect(signIn.statusCode).toBe(200);
      const cookie = signIn.cookies.find((k) => k.name === SESSION_COOKIE)!.value;
      const own = await lone.app.inject({ method: 'GET', url: `/fhir/R4/Patient/${accounts.patient!.patientId}`, cookies: { [SESSION_COOKIE]: cookie } });
      expect(own.statusCode).toBe(200);

      // A consultation whose two sockets are on this node works, in its memory.
      const id = await newAppointment(lone);
      const host = await connect(lone, 'host');
      host.send(join(id));
      await host.next('welcome');
      const patient = await connect(lone, 'patient');
      patient.send(join(id, { identityKey: 'PatientKey' }));
      const waiting = await patient.next('welcome');
      host.send({ type: 'admit', participantId: waiting.participant.id });
      await patient.next('admitted');
      expect(lone.ctx.consult.room(id)?.participants.size).toBe(2);

      await server.start();
      const back = Date.now() + 10_000;
      while ((await readyz()).redis !== 'up' && Date.now() < back) await new Promise((r) => setTimeout(r, 50));
      expect(await readyz()).toMatchObject({ status: 'ready', redis: 'up', signaling: 'farm' });
      // The room opened meanwhile stays where it is until it ends; new rooms go to Redis again.
      patient.send({ type: 'signal', to: (await host.next('peer-joined')).peer.id, candidate: null });
      host.send({ type: 'end' });
      await patient.next('closed');
      expect(lone.ctx.consult.room(id)).toBeUndefined();
      const next = await newAppointment(lone);
      const again = await connect(lone, 'host');
      again.send(join(next));
      await again.next('welcome');
      expect(lone.ctx.consult.room(next)).toBeUndefined();
      again.send({ type: 'end' });
    });

    it('writes a consultation back when Redis restarts empty, and its two nodes carry on', { timeout: 90_000 }, async () => {
      const { id, host, patient, hostId, patientId } = await callAcross(lone, other);
      await server.stop();
      await server.start();
      const ready = async (node: FarmNode) => (await node.app.inject({ method: 'GET', url: '/readyz' })).json().redis === 'up';
      // Generous bounds: a busy 2-core CI machine reconnects, resubscribes and writes rooms back slowly.
      const end = Date.now() + 20_000;
      while (!((await ready(lone)) && (await ready(other))) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      // Both nodes wrote their participant back; signals flow again across the nodes.
      const deadline = Date.now() + 20_000;
      let received = false;
      while (!received && Date.now() < deadline) {
        patient.send({ type: 'signal', to: hostId, candidate: null });
        received = await host.next('signal', 300).then(
          () => true,
          () => false,
        );
      }
      expect(received).toBe(true);
      host.send({ type: 'signal', to: patientId, candidate: null });
      expect((await patient.next('signal')).from).toBe(hostId);
      expect(host.pending().some((m) => m.type === 'peer-left')).toBe(false);
      host.send({ type: 'end' });
      expect(await patient.next('closed')).toEqual({ type: 'closed', reason: 'ended' });
      expect(lone.ctx.consult.room(id)).toBeUndefined();
    });

    it('starts the grace of a socket that closed while Redis was down, once Redis is back', { timeout: 90_000 }, async () => {
      const { host, patient, patientId } = await callAcross(lone, other);
      for (const node of [lone, other]) node.ctx.consult.resumeGraceMs = 1000;
      try {
        await server.stop();
        patient.drop();
        await new Promise((r) => setTimeout(r, 300));
        await server.start();
        // After a Redis restart the sweep first gives every node a node TTL (10 s) to say it lives.
        expect(await host.next('peer-left', 45_000)).toEqual({ type: 'peer-left', participantId: patientId, reason: 'disconnected' });
        host.send({ type: 'end' });
      } finally {
        for (const node of [lone, other]) node.ctx.consult.resumeGraceMs = 20_000;
      }
    });

    it('ends the place of a socket that closed while Redis was down even when a fresher copy from another node says it is still there', { timeout: 120_000 }, async () => {
      const { id, host, patient, patientId } = await callAcross(lone, other);
      // The host's node's own connection to this Redis: it reconnects by itself after the restart.
      const direct = (lone.ctx.bus as import('../cluster/redis-bus.js').RedisBus).redis;
      for (const node of [lone, other]) node.ctx.consult.resumeGraceMs = 1000;
      try {
        // The host's node admitted the patient: its copy (both connected) is the freshest there is.
        const freshest = (await direct.get(roomKey(id)))!;
        await server.stop();
        patient.drop();
        await new Promise((r) => setTimeout(r, 300));
        await server.start();
        // Both nodes are back and have written back their copies (in whichever order)…
        const ready = async (node: FarmNode) => (await node.app.inject({ method: 'GET', url: '/readyz' })).json().redis === 'up';
        const deadline = Date.now() + 30_000;
        while (!((await ready(lone)) && (await ready(other)) && (await direct.exists(roomKey(id)).catch(() => 0))) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        // …and then, as when the host's node writes back last, the fresher copy says the patient's socket
        // is still there (written again until no write-back comes after it).
        const patientStored = async () => (JSON.parse((await direct.get(roomKey(id)))!) as { participants: { id: string; conn?: string }[] }).participants.find((p) => p.id === patientId);
        let stale = false;
        while (!stale && Date.now() < deadline) {
          await direct.set(roomKey(id), freshest, 'PX', 120_000);
          await new Promise((r) => setTimeout(r, 300));
          stale = (await patientStored())?.conn !== undefined;
        }
        expect(stale).toBe(true);
        // The patient's node, the authority on its sockets, puts that right; the sweep then ends the place.
        expect(await host.next('peer-left', 60_000)).toEqual({ type: 'peer-left', participantId: patientId, reason: 'disconnected' });
        host.send({ type: 'end' });
      } finally {
        for (const node of [lone, other]) node.ctx.consult.resumeGraceMs = 20_000;
      }
    });
  });
});
