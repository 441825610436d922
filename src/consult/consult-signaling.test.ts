import { createHash, createHmac } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount, type NewAccount } from '../auth/accounts/account-service.js';
import { recordConsent } from '../privacy/telehealth-consent.js';
import { Repository } from '../records/repository.js';
import { CONSULTATION_MODE_SYSTEM } from '../records/telesalud-codes.js';
import { appointment, create } from '../test-support/fixtures.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import { SESSION_COOKIE } from '../auth/sessions/session-store.js';
import { SignalingTestClient } from './signaling-test-client.js';
import { MAX_PARTICIPANTS, type ClientMessage } from './signaling-protocol.js';
import { turnCredential } from './ice-servers.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const PUBLIC_URL = 'https://clinica.test';
const TURN_SECRET = 'coturn-static-auth-secret-for-tests';
const KEY = 'BPublicIdentityKeyOfThisJoin_base64url';

describe.each(STORE_KINDS)('consultation signaling (%s)', (kind) => {
  let node: TestNode;
  let baseUrl: string;
  const accounts: Record<string, NewAccount & { cookie: string; csrf: string }> = {};
  const open: SignalingTestClient[] = [];
  let slot = 0;

  beforeAll(async () => {
    node = await startTestNode(kind, { TELESALUD_PUBLIC_URL: PUBLIC_URL, TELESALUD_TURN_URLS: 'turn:127.0.0.1:3478?transport=udp,turns:127.0.0.1:5349?transport=tcp', TELESALUD_TURN_SECRET: TURN_SECRET });
    baseUrl = await node.app.listen({ port: 0, host: '127.0.0.1' });
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const people: [string, string, string][] = [
      ['host', 'clinician', 'Lucía Fernández'],
      ['patient', 'patient', 'Tomás Romero'],
      ['otherPatient', 'patient', 'Otra Persona'],
      ['unconsenting', 'patient', 'Sin Consentimiento'],
      ['colleague', 'clinician', 'Pablo Ruiz'],
      ['stranger', 'clinician', 'Marta Gil'],
      ['admin', 'admin', 'Admin Clínica'],
    ];
    await Promise.all(
      people.map(async ([key, role, name]) => {
        const account = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: `${key.toLowerCase()}@clinica.example.org`, role, name, password: PASSWORD });
        if (account.patientId && key !== 'unconsenting') await recordConsent(node.ctx.store.db, { patientRef: `Patient/${account.patientId}`, accountId: account.id, source: 'test' });
        const session = await node.ctx.sessions.create({ id: account.id, role: account.role }, { source: '127.0.0.1' });
        accounts[key] = { ...account, cookie: session.token, csrf: session.csrfToken };
      }),
    );
  });

  afterAll(async () => {
    for (const c of open) c.close();
    await node?.stop();
  });

  /** A fresh booked telehealth appointment of the host and the patient (each at its own time: no double booking). */
  async function newAppointment(overrides: Record<string, unknown> = {}): Promise<string> {
    const start = new Date(Date.UTC(2027, 0, 4, 8) + slot++ * 30 * 60_000).toISOString();
    return (await create(node, { ...appointment(accounts.patient!.patientId!, accounts.host!.practitionerId!, start), ...overrides })).id;
  }

  async function connect(who?: string, origin: string | null = PUBLIC_URL): Promise<SignalingTestClient> {
    const client = await SignalingTestClient.connect(baseUrl, { origin: origin ?? undefined, cookie: who ? accounts[who]!.cookie : undefined });
    open.push(client);
    return client;
  }

  const join = (appointmentId: string, extra: Partial<Extract<ClientMessage, { type: 'join' }>> = {}): ClientMessage => ({ type: 'join', appointmentId, e2ee: true, identityKey: KEY, ...extra }) as ClientMessage;

  /** Host in, patient in and admitted: the call most tests start from. */
  async function callOf(appointmentId: string) {
    const host = await connect('host');
    host.send(join(appointmentId));
    const hostWelcome = await host.next('welcome');
    await host.next('lobby');
    const patient = await connect('patient');
    patient.send(join(appointmentId, { identityKey: 'PatientKey' }));
    const patientWelcome = await patient.next('welcome');
    await host.next('lobby');
    host.send({ type: 'admit', participantId: patientWelcome.participant.id });
    await patient.next('admitted');
    await host.next('peer-joined');
    return { host, patient, hostId: hostWelcome.participant.id, patientId: patientWelcome.participant.id, patientWelcome };
  }

  const post = (who: string, url: string, payload: unknown) =>
    node.app.inject({ method: 'POST', url, payload: payload as Record<string, unknown>, cookies: { [SESSION_COOKIE]: accounts[who]!.cookie }, headers: { 'x-csrf-token': accounts[who]!.csrf, origin: PUBLIC_URL } });

  async function guestLink(appointmentId: string, label = 'Intérprete'): Promise<string> {
    const res = await post('host', `/api/consult/appointments/${appointmentId}/guest-links`, { label });
    expect(res.statusCode).toBe(201);
    return new URL(res.json().url).hash.slice(1);
  }

  it('lets the patient wait until the clinician admits, then relays signals and wrapped keys both ways', async () => {
    const id = await newAppointment();
    const patient = await connect('patient');
    patient.send(join(id, { identityKey: 'PatientKey', e2ee: false }));
    const waiting = await patient.next('welcome');
    expect(waiting.state).toBe('waiting');
    expect(waiting.participant).toMatchObject({ kind: 'patient', host: false, e2ee: false, displayName: 'Tomás Romero' });
    expect(waiting.participant.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    // Waiting: can't signal, can't admit itself.
    patient.send({ type: 'signal', to: waiting.participant.id, candidate: null });
    expect((await patient.next('error')).code).toBe('not-allowed');

    const host = await connect('host');
    host.send(join(id));
    const hostWelcome = await host.next('welcome');
    expect(hostWelcome).toMatchObject({ state: 'admitted', participant: { kind: 'clinician', host: true, displayName: 'Lucía Fernández' } });
    expect((await host.next('admitted')).peers).toEqual([]);
    // The host arrives after the patient and still sees who waits, encryption state included.
    const lobby = await host.next('lobby');
    expect(lobby.waiting).toEqual([expect.objectContaining({ id: waiting.participant.id, e2ee: false })]);

    patient.send({ type: 'admit', participantId: waiting.participant.id });
    expect((await patient.next('error')).code).toBe('not-host');
    patient.send({ type: 'end' });
    expect((await patient.next('error')).code).toBe('not-host');

    host.send({ type: 'admit', participantId: waiting.participant.id });
    expect((await patient.next('admitted')).peers).toEqual([expect.objectContaining({ id: hostWelcome.participant.id, host: true, identityKey: KEY })]);
    expect((await host.next('peer-joined')).peer.id).toBe(waiting.participant.id);
    expect((await host.next('lobby')).waiting).toEqual([]);

    // The later arrival offers; answer and candidates come back.
    patient.send({ type: 'signal', to: hostWelcome.participant.id, description: { type: 'offer', sdp: 'v=0 offer' } });
    expect(await host.next('signal')).toEqual({ type: 'signal', from: waiting.participant.id, description: { type: 'offer', sdp: 'v=0 offer' } });
    host.send({ type: 'signal', to: waiting.participant.id, description: { type: 'answer', sdp: 'v=0 answer' } });
    expect((await patient.next('signal')).description).toEqual({ type: 'answer', sdp: 'v=0 answer' });
    host.send({ type: 'signal', to: waiting.participant.id, candidate: { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 } });
    expect((await patient.next('signal')).candidate).toMatchObject({ sdpMid: '0' });
    patient.send({ type: 'e2ee-key', to: hostWelcome.participant.id, keyId: 7, wrapped: 'd3JhcHBlZA', iv: 'aXY' });
    expect(await host.next('e2ee-key')).toEqual({ type: 'e2ee-key', from: waiting.participant.id, keyId: 7, wrapped: 'd3JhcHBlZA', iv: 'aXY' });
    // Signals go only to someone in the call.
    host.send({ type: 'signal', to: 'AAAAAAAAAAAAAAAAAAAAAA', candidate: null });
    expect((await host.next('error')).code).toBe('not-found');

    await node.ctx.audit.drain();
    const audited = await node.ctx.store.db.selectFrom('audit_event').select(['actor', 'action', 'outcome', 'patient']).where('resource_id', '=', id).where('action', 'like', 'consult-%').execute();
    expect(audited).toEqual(
      expect.arrayContaining([
        { actor: `Patient/${accounts.patient!.patientId}`, action: 'consult-join', outcome: 'success', patient: `Patient/${accounts.patient!.patientId}` },
        { actor: `Practitioner/${accounts.host!.practitionerId}`, action: 'consult-join', outcome: 'success', patient: `Patient/${accounts.patient!.patientId}` },
        { actor: `Practitioner/${accounts.host!.practitionerId}`, action: 'consult-admit', outcome: 'success', patient: `Patient/${accounts.patient!.patientId}` },
      ]),
    );
  });

  it('refuses anyone without the right to join, and audits the refusal', async () => {
    const id = await newAppointment();
    const inPerson = await newAppointment({ appointmentType: { coding: [{ system: CONSULTATION_MODE_SYSTEM, code: 'in-person' }] } });
    const cancelled = await newAppointment({ status: 'cancelled' });
    const cases: [string | undefined, string, string][] = [
      ['otherPatient', id, 'not-allowed'],
      ['stranger', id, 'not-allowed'],
      ['admin', id, 'not-allowed'],
      ['patient', '0f6a4c2e-9d7b-4a55-8b1e-3c2d1e0f9a8b', 'not-allowed'],
      ['patient', inPerson, 'not-allowed'],
      ['host', cancelled, 'not-allowed'],
      [undefined, id, 'unauthenticated'],
    ];
    for (const [who, appointmentId, code] of cases) {
      const client = await connect(who);
      client.send(join(appointmentId));
      const error = await client.next('error');
      expect([who, error.code]).toEqual([who, code]);
      expect(await client.closed()).toBe(1008);
      expect(client.received.some((m) => m.type === 'welcome')).toBe(false);
    }
    expect(node.ctx.consult.room(id)).toBeUndefined();
    await node.ctx.audit.drain();
    const denied = await node.ctx.store.db.selectFrom('audit_event').select(['actor']).where('action', '=', 'consult-join').where('outcome', '=', 'denied').execute();
    expect(denied.map((d) => d.actor)).toEqual(expect.arrayContaining([`Patient/${accounts.otherPatient!.patientId}`, `Practitioner/${accounts.stranger!.practitionerId}`, 'anonymous']));
  });

  it('refuses a patient who has not agreed to telehealth under the current privacy notice, and lets them in once they have', async () => {
    const start = new Date(Date.UTC(2027, 0, 4, 8) + slot++ * 30 * 60_000).toISOString();
    const id = (await create(node, appointment(accounts.unconsenting!.patientId!, accounts.host!.practitionerId!, start))).id;
    const refused = await connect('unconsenting');
    refused.send(join(id));
    const error = await refused.next('error');
    expect(error).toMatchObject({ code: 'not-allowed', message: expect.stringMatching(/privacy notice/) });
    expect(await refused.closed()).toBe(1008);
    await recordConsent(node.ctx.store.db, { patientRef: `Patient/${accounts.unconsenting!.patientId}`, accountId: accounts.unconsenting!.id, source: 'test' });
    const admitted = await connect('unconsenting');
    admitted.send(join(id));
    expect((await admitted.next('welcome')).state).toBe('waiting');
    admitted.send({ type: 'leave' });
  });

  it('refuses the upgrade from another origin or without one', async () => {
    await expect(connect('host', 'https://evil.example')).rejects.toThrow(/403/);
    await expect(connect('host', null)).rejects.toThrow(/403/);
    await expect(connect('host', 'http://clinica.test')).rejects.toThrow(/403/);
  });

  it('wants join first, and within the time allowed', async () => {
    const first = await connect('host');
    first.send({ type: 'end' });
    expect((await first.next('error')).code).toBe('unauthenticated');
    expect(await first.closed()).toBe(1008);
    node.ctx.consult.joinTimeoutMs = 200;
    try {
      const idle = await connect('host');
      expect((await idle.next('error')).code).toBe('unauthenticated');
      expect(await idle.closed()).toBe(1008);
    } finally {
      node.ctx.consult.joinTimeoutMs = 10_000;
    }
  });

  it('hands out guest links to the host only; a link lets one guest in once, never after it expires', async () => {
    const id = await newAppointment();
    const refused = await post('patient', `/api/consult/appointments/${id}/guest-links`, { label: 'Hija' });
    expect(refused.statusCode).toBe(403);
    expect((await post('host', `/api/consult/appointments/${id}/guest-links`, { label: 'x', extra: 1 })).statusCode).toBe(400);
    const res = await post('host', `/api/consult/appointments/${id}/guest-links`, { label: 'Intérprete' });
    expect(res.statusCode).toBe(201);
    const { url, expiresAt } = res.json();
    expect(url).toMatch(new RegExp(`^${PUBLIC_URL}/consult/guest#[A-Za-z0-9_-]{43}$`));
    expect(Date.parse(expiresAt) - Date.now()).toBeGreaterThan(23.9 * 3600_000);
    const token = new URL(url).hash.slice(1);
    // Stored hashed: the token itself is nowhere in the database.
    const rows = await node.ctx.store.db.selectFrom('consult_guest_link').selectAll().where('appointment_id', '=', id).execute();
    expect(Buffer.from(rows[0]!.token_hash).equals(createHash('sha256').update(token).digest())).toBe(true);
    expect(JSON.stringify(rows)).not.toContain(token);

    // A guest link grants no API access.
    const api = await node.app.inject({ method: 'GET', url: `/fhir/R4/Appointment/${id}`, headers: { authorization: `Bearer ${token}` } });
    expect(api.statusCode).toBe(401);

    const guest = await connect();
    guest.send({ type: 'join', guestToken: token, e2ee: true, identityKey: 'GuestKey', displayName: 'Someone Else' });
    const welcome = await guest.next('welcome');
    expect(welcome).toMatchObject({ state: 'waiting', participant: { kind: 'guest', host: false, displayName: 'Intérprete' } });

    const again = await connect();
    again.send({ type: 'join', guestToken: token, e2ee: true, identityKey: 'GuestKey' });
    const used = await again.next('error');
    expect(used.code).toBe('not-allowed');

    const unknown = await connect();
    unknown.send({ type: 'join', guestToken: 'A'.repeat(43), e2ee: true, identityKey: 'GuestKey' });
    const unknownError = await unknown.next('error');
    expect(unknownError).toEqual(used);

    const stale = await guestLink(id, 'Familiar');
    await node.ctx.store.db.updateTable('consult_guest_link').set({ expires: new Date(Date.now() - 1000) }).where('label', '=', 'Familiar').execute();
    const late = await connect();
    late.send({ type: 'join', guestToken: stale, e2ee: true, identityKey: 'GuestKey' });
    expect(await late.next('error')).toEqual(used);
  });

  it('admits a clinician the host invited directly, and nobody else may invite', async () => {
    const id = await newAppointment();
    expect((await post('colleague', `/api/consult/appointments/${id}/invitations`, { practitionerId: accounts.colleague!.practitionerId })).statusCode).toBe(403);
    const { host, patient, patientId } = await callOf(id);
    const before = await connect('colleague');
    before.send(join(id));
    expect((await before.next('error')).code).toBe('not-allowed');

    const res = await post('host', `/api/consult/appointments/${id}/invitations`, { practitionerId: accounts.colleague!.practitionerId });
    expect(res.statusCode).toBe(201);
    const colleague = await connect('colleague');
    colleague.send(join(id, { identityKey: 'ColleagueKey' }));
    const welcome = await colleague.next('welcome');
    expect(welcome).toMatchObject({ state: 'admitted', participant: { kind: 'clinician', host: false } });
    expect((await colleague.next('admitted')).peers.map((p) => p.id).sort()).toHaveLength(2);
    expect((await patient.next('peer-joined')).peer.id).toBe(welcome.participant.id);
    expect((await host.next('peer-joined')).peer.id).toBe(welcome.participant.id);
    // The second clinician is not the host.
    colleague.send({ type: 'remove', participantId: patientId });
    expect((await colleague.next('error')).code).toBe('not-host');
  });

  it(`refuses a participant beyond ${MAX_PARTICIPANTS} with a clear message`, async () => {
    const id = await newAppointment();
    const { host } = await callOf(id);
    for (const label of ['Intérprete', 'Hija']) {
      const guest = await connect();
      guest.send({ type: 'join', guestToken: await guestLink(id, label), e2ee: true, identityKey: 'GuestKey' });
      const welcome = await guest.next('welcome');
      await host.next('lobby');
      host.send({ type: 'admit', participantId: welcome.participant.id });
      await guest.next('admitted');
    }
    const token = await guestLink(id, 'Vecino');
    const fifth = await connect();
    fifth.send({ type: 'join', guestToken: token, e2ee: true, identityKey: 'GuestKey' });
    const error = await fifth.next('error');
    expect(error.code).toBe('room-full');
    expect(error.message).toMatch(/4 participants/);
    expect(await fifth.next('closed')).toEqual({ type: 'closed', reason: 'room-full' });
    expect(node.ctx.consult.room(id)!.participants.size).toBe(4);
    // The refused join did not spend the link.
    const link = await node.ctx.store.db.selectFrom('consult_guest_link').select('used_at').where('label', '=', 'Vecino').executeTakeFirstOrThrow();
    expect(link.used_at).toBeNull();
  });

  it('answers malformed messages, counts them, and the room carries on', async () => {
    const id = await newAppointment();
    const { host, patient, hostId, patientId } = await callOf(id);
    const before = node.ctx.consult.badMessages;
    const junk = ['not json', '[]', '{"type":"dance"}', JSON.stringify({ type: 'signal', to: hostId }), JSON.stringify({ type: 'admit', participantId: hostId, extra: true }), JSON.stringify({ type: 'stats', sentBytes: -1, receivedBytes: 0, intervalMs: 1000 })];
    for (const raw of junk) {
      patient.send(raw);
      expect((await patient.next('error')).code).toBe('bad-message');
      patient.send({ type: 'stats', sentBytes: 0, receivedBytes: 0, intervalMs: 1000 });
    }
    patient.socket.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await patient.next('error')).code).toBe('bad-message');
    patient.send({ type: 'stats', sentBytes: 0, receivedBytes: 0, intervalMs: 1000 });

    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ maxLength: 200 }), fc.json({ maxDepth: 3 }), fc.record({ type: fc.constantFrom('signal', 'e2ee-key', 'admit', 'join', 'stats'), to: fc.string(), participantId: fc.anything() }).map((o) => JSON.stringify(o))), async (raw) => {
        patient.send(raw);
        const answer = await patient.next('error');
        expect(['bad-message', 'already-joined', 'not-host', 'not-found']).toContain(answer.code);
        patient.send({ type: 'stats', sentBytes: 0, receivedBytes: 0, intervalMs: 1000 });
      }),
      { numRuns: 60 },
    );
    expect(node.ctx.consult.badMessages).toBeGreaterThan(before + junk.length);

    // The call still works.
    patient.send({ type: 'signal', to: hostId, description: { type: 'offer', sdp: 'v=0 still here' } });
    expect((await host.next('signal')).from).toBe(patientId);
    // Three bad messages in a row close the socket.
    for (let i = 0; i < 3; i++) patient.send('{{{');
    expect(await patient.closed()).toBe(1008);
  });

  it('lets the shield read free text in signaling: a script in a display name is refused and recorded', async () => {
    const client = await connect('patient');
    client.send(join(await newAppointment(), { displayName: '<script>alert(document.cookie)</script>' }));
    expect(await client.next('error')).toMatchObject({ code: 'bad-message', message: 'message refused by the shield' });
    expect(client.received.some((m) => m.type === 'welcome')).toBe(false);
    await node.ctx.audit.drain();
    const events = await node.ctx.store.db.selectFrom('audit_event').select(['detail']).where('action', '=', 'shield-block').execute();
    expect(JSON.stringify(events.map((e) => e.detail))).toContain('/consult/ws');
    expect(JSON.stringify(events.map((e) => e.detail))).not.toContain('alert');
  });

  it('rate-limits a socket that floods', async () => {
    const id = await newAppointment();
    const { patient } = await callOf(id);
    for (let i = 0; i < 260; i++) patient.send({ type: 'stats', sentBytes: 0, receivedBytes: 0, intervalMs: 1000 });
    expect((await patient.next('error')).code).toBe('rate-limited');
  });

  it('keeps a dropped participant its place for a resume, and a second socket replaces the first', async () => {
    const id = await newAppointment();
    const { host, patient, hostId, patientId, patientWelcome } = await callOf(id);
    patient.drop();
    await new Promise((r) => setTimeout(r, 100));
    const back = await connect('patient');
    back.send(join(id, { identityKey: 'PatientKey', resume: { participantId: patientId, secret: patientWelcome.resumeSecret } }));
    const welcome = await back.next('welcome');
    expect(welcome).toMatchObject({ state: 'admitted', participant: { id: patientId } });
    expect((await back.next('admitted')).peers.map((p) => p.id)).toEqual([hostId]);
    expect(host.pending().some((m) => m.type === 'peer-left')).toBe(false);
    back.send({ type: 'signal', to: hostId, description: { type: 'offer', sdp: 'v=0 restart' } });
    expect((await host.next('signal')).description?.sdp).toBe('v=0 restart');

    // Another account presenting the secret gets nothing.
    const thief = await connect('otherPatient');
    thief.send(join(id, { resume: { participantId: patientId, secret: 'x'.repeat(32) } }));
    expect((await thief.next('error')).code).toBe('not-allowed');

    const third = await connect('patient');
    third.send(join(id, { identityKey: 'PatientKey', resume: { participantId: patientId, secret: patientWelcome.resumeSecret } }));
    await third.next('welcome');
    expect(await back.next('closed')).toEqual({ type: 'closed', reason: 'replaced' });

    // Past the grace period the place is gone and the others hear it.
    node.ctx.consult.resumeGraceMs = 150;
    try {
      third.drop();
      expect(await host.next('peer-left')).toEqual({ type: 'peer-left', participantId: patientId, reason: 'disconnected' });
    } finally {
      node.ctx.consult.resumeGraceMs = 20_000;
    }
  });

  it('destroys the room when the last one leaves; the next room is new and admits afresh', async () => {
    const id = await newAppointment();
    const { host, patient } = await callOf(id);
    const firstRoom = node.ctx.consult.room(id)!.id;
    expect(firstRoom).toMatch(/^[A-Za-z0-9_-]{22}$/);
    patient.send({ type: 'leave' });
    expect((await host.next('peer-left')).reason).toBe('left');
    host.send({ type: 'leave' });
    await host.closed();
    expect(node.ctx.consult.room(id)).toBeUndefined();

    const again = await connect('patient');
    again.send(join(id, { identityKey: 'PatientKey' }));
    expect((await again.next('welcome')).state).toBe('waiting');
    expect(node.ctx.consult.room(id)!.id).not.toBe(firstRoom);
    again.send({ type: 'leave' });
    await again.closed();
  });

  it('ends the call for everyone when the host ends it', async () => {
    const id = await newAppointment();
    const { host, patient } = await callOf(id);
    const waiting = await connect();
    waiting.send({ type: 'join', guestToken: await guestLink(id), e2ee: true, identityKey: 'GuestKey' });
    await waiting.next('welcome');
    host.send({ type: 'end' });
    for (const c of [host, patient, waiting]) {
      expect(await c.next('closed')).toEqual({ type: 'closed', reason: 'ended' });
      expect(await c.closed()).toBe(1000);
    }
    expect(node.ctx.consult.room(id)).toBeUndefined();
  });

  it('hands out TURN credentials coturn verifies (HMAC-SHA1 of the expiring username)', async () => {
    const id = await newAppointment();
    const host = await connect('host');
    host.send(join(id));
    const welcome = await host.next('welcome');
    const turn = welcome.iceServers.find((s) => s.urls.some((u) => u.startsWith('turn:')))!;
    expect(turn.urls).toEqual(['turn:127.0.0.1:3478?transport=udp', 'turns:127.0.0.1:5349?transport=tcp']);
    const [expiry, participant] = turn.username!.split(':');
    expect(participant).toBe(welcome.participant.id);
    expect(Number(expiry) - Date.now() / 1000).toBeGreaterThan(3500);
    expect(Number(expiry) - Date.now() / 1000).toBeLessThanOrEqual(3600);
    expect(turn.credential).toBe(createHmac('sha1', TURN_SECRET).update(turn.username!).digest('base64'));
    expect(turnCredential('other-secret-0123456789', participant!).credential).not.toBe(turn.credential);
    host.send({ type: 'end' });
  });

  it('adds traffic reports up per room and per day for administrators only', async () => {
    const id = await newAppointment();
    const { patient, host } = await callOf(id);
    await new Promise((r) => setTimeout(r, 1100));
    // 1 s at 4 Mbit/s from each side.
    patient.send({ type: 'stats', sentBytes: 500_000, receivedBytes: 500_000, intervalMs: 1000 });
    host.send({ type: 'stats', sentBytes: 500_000, receivedBytes: 500_000, intervalMs: 1000 });
    // An inflated claim counts only for the time that really passed.
    patient.send({ type: 'stats', sentBytes: 8_000_000_000, receivedBytes: 0, intervalMs: 60_000 });
    await new Promise((r) => setTimeout(r, 100));
    const res = await node.request({ method: 'GET', url: '/api/consult/status' });
    expect(res.statusCode).toBe(200);
    const status = res.json();
    expect(status.rooms).toBeGreaterThanOrEqual(1);
    expect(status.participants).toBeGreaterThanOrEqual(2);
    expect(status.gbitToday).toBeGreaterThanOrEqual(0.008);
    expect(status.gbitToday).toBeLessThan(2);
    expect(status.mbitPerSecondNow).toBeGreaterThan(0);
    const forbidden = await node.app.inject({ method: 'GET', url: '/api/consult/status', cookies: { [SESSION_COOKIE]: accounts.host!.cookie } });
    expect(forbidden.statusCode).toBe(403);
    const admin = await node.app.inject({ method: 'GET', url: '/api/consult/status', cookies: { [SESSION_COOKIE]: accounts.admin!.cookie } });
    expect(admin.statusCode).toBe(200);
  });

  it('tells every socket to reconnect elsewhere when the node shuts down', async () => {
    const id = await newAppointment();
    const { host, patient } = await callOf(id);
    await node.app.close();
    for (const c of [host, patient]) {
      await c.next('reconnect');
      expect(await c.closed()).toBe(1012);
    }
  });
});
