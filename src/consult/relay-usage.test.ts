import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount, type NewAccount } from '../auth/accounts/account-service.js';
import { recordConsent } from '../privacy/telehealth-consent.js';
import { Repository } from '../records/repository.js';
import { appointment, create } from '../test-support/fixtures.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import type { Participant } from './consult-room.js';
import { parseClientMessage, type ClientMessage } from './signaling-protocol.js';
import { SignalingTestClient } from './signaling-test-client.js';

/**
 * TURN relay usage as the browsers report it: the `stats` message's path figures (how many of a
 * participant's peer links run over a relay, and the bytes over those) are validated by the
 * shared protocol, bounded by the node's clock, summed per UTC day in the database, and shown to
 * administrators on /api/admin/status and /metrics.
 */

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const PUBLIC_URL = 'https://clinica.test';
const base = { type: 'stats', sentBytes: 1_000_000, receivedBytes: 800_000, intervalMs: 10_000 };
const path = { links: 2, relayedLinks: 1, relayedSentBytes: 400_000, relayedReceivedBytes: 300_000 };

describe('the stats message with the media path', () => {
  const parse = (message: Record<string, unknown>) => parseClientMessage(JSON.stringify(message));

  it('takes a report with all four path figures, and one without any (a browser of an older version)', () => {
    expect(parse({ ...base, ...path })).toEqual({ ok: true, message: { ...base, ...path } });
    expect(parse(base)).toEqual({ ok: true, message: base });
    // All relayed, the whole interval: the parts may equal their wholes.
    const all = { links: 3, relayedLinks: 3, relayedSentBytes: base.sentBytes, relayedReceivedBytes: base.receivedBytes };
    expect(parse({ ...base, ...all })).toMatchObject({ ok: true, message: all });
  });

  it.each([
    ['only some of the path figures', { ...base, links: 1, relayedLinks: 1 }, /come together/],
    ['more relayed links than links', { ...base, ...path, links: 1, relayedLinks: 2 }, /relayedLinks/],
    ['more peer links than a consultation can have', { ...base, ...path, links: 4 }, /links/],
    ['more bytes relayed than sent', { ...base, ...path, relayedSentBytes: base.sentBytes + 1 }, /relayedSentBytes/],
    ['more bytes relayed than received', { ...base, ...path, relayedReceivedBytes: base.receivedBytes + 1 }, /relayedReceivedBytes/],
    ['a negative figure', { ...base, ...path, relayedSentBytes: -1 }, /relayedSentBytes/],
    ['a fraction', { ...base, ...path, relayedLinks: 0.5 }, /relayedLinks/],
    ['a number as text', { ...base, ...path, links: '2' }, /links/],
    ['an unknown field', { ...base, ...path, candidateType: 'relay' }, /unknown field/],
    ['more than the protocol bound', { ...base, ...path, sentBytes: 8e9 + 1, relayedSentBytes: 8e9 + 1 }, /sentBytes/],
  ])('refuses %s', (_what, message, reason) => {
    const parsed = parse(message);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toMatch(reason);
  });
});

describe.each(STORE_KINDS)('relay usage from the browsers reports (%s)', (kind) => {
  let node: TestNode;
  let baseUrl: string;
  const accounts: Record<string, NewAccount & { cookie: string }> = {};
  const open: SignalingTestClient[] = [];

  beforeAll(async () => {
    node = await startTestNode(kind, { TELESALUD_PUBLIC_URL: PUBLIC_URL, TELESALUD_TURN_URLS: 'turn:127.0.0.1:3478?transport=udp', TELESALUD_TURN_SECRET: 'coturn-static-auth-secret-for-tests' });
    baseUrl = await node.app.listen({ port: 0, host: '127.0.0.1' });
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    for (const [key, role, name] of [
      ['host', 'clinician', 'Lucía Fernández'],
      ['patient', 'patient', 'Tomás Romero'],
    ] as const) {
      const account = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: `${key}.relay@clinica.example.org`, role, name, password: PASSWORD });
      if (account.patientId) await recordConsent(node.ctx.store.db, { patientRef: `Patient/${account.patientId}`, accountId: account.id, source: 'test' });
      const session = await node.ctx.sessions.create({ id: account.id, role: account.role }, { source: '127.0.0.1' });
      accounts[key] = { ...account, cookie: session.token };
    }
  });

  afterAll(async () => {
    for (const c of open) c.close();
    await node?.stop();
  });

  async function connect(who: string): Promise<SignalingTestClient> {
    const client = await SignalingTestClient.connect(baseUrl, { origin: PUBLIC_URL, cookie: accounts[who]!.cookie });
    open.push(client);
    return client;
  }

  /** The host and the patient in one call, the patient admitted. */
  async function call(): Promise<{ host: SignalingTestClient; patient: SignalingTestClient }> {
    const start = new Date(Date.UTC(2027, 1, 1, 9)).toISOString();
    const id = (await create(node, appointment(accounts.patient!.patientId!, accounts.host!.practitionerId!, start))).id;
    const join = (identityKey: string): ClientMessage => ({ type: 'join', appointmentId: id, e2ee: true, identityKey });
    const host = await connect('host');
    host.send(join('HostKey'));
    await host.next('welcome');
    const patient = await connect('patient');
    patient.send(join('PatientKey'));
    const welcome = await patient.next('welcome');
    await host.next('lobby');
    host.send({ type: 'admit', participantId: welcome.participant.id });
    await patient.next('admitted');
    return { host, patient };
  }

  const participantAt = (lastReportAt: number): Participant => ({ traffic: { sentBps: 0, receivedBps: 0, at: 0, lastReportAt } }) as unknown as Participant;

  it('sums relayed bytes per UTC day, held to the time that passed and never above what was sent', async () => {
    const rooms = node.ctx.consult;
    const day1 = Date.UTC(2026, 2, 10, 23, 59, 50);
    const day2 = Date.UTC(2026, 2, 11, 0, 0, 5);
    const p = participantAt(day1 - 10_000);
    // 10 s: 1 MB sent, 0.4 MB of it relayed; the next day 10 s more, then an inflated claim right after.
    rooms.reportTraffic(p, { sentBytes: 1_000_000, receivedBytes: 800_000, intervalMs: 10_000, ...path }, day1);
    rooms.reportTraffic(p, { sentBytes: 1_000_000, receivedBytes: 800_000, intervalMs: 10_000, ...path }, day1 + 10_000);
    expect(p.traffic).toMatchObject({ links: 2, relayedLinks: 1 });
    expect(p.traffic.relayedSentBps).toBeCloseTo((400_000 * 8) / 10, 6);
    // A minute's worth claimed 1 ms after the previous report counts for about a second, and at most 1 Gbit/s.
    rooms.reportTraffic(p, { sentBytes: 8e9, receivedBytes: 8e9, intervalMs: 60_000, links: 1, relayedLinks: 1, relayedSentBytes: 8e9, relayedReceivedBytes: 8e9 }, day1 + 10_001);
    // A report without the path figures adds to the totals only.
    rooms.reportTraffic(p, { sentBytes: 500_000, receivedBytes: 0, intervalMs: 10_000 }, day1 + 20_001);
    expect(p.traffic.links).toBeUndefined();
    await rooms.flushTraffic();
    const first = await rooms.store.trafficOn('2026-03-10');
    const second = await rooms.store.trafficOn('2026-03-11');
    expect(first).toEqual({ sentBytes: 1_000_000, receivedBytes: 800_000, relayedSentBytes: 400_000, relayedReceivedBytes: 300_000 });
    // The inflated report: 1001 ms of the claimed 60 s, capped at 125 000 bytes per ms.
    const inflated = Math.min(Math.round(8e9 * (1001 / 60_000)), 1001 * 125_000);
    expect(second).toEqual({ sentBytes: 1_000_000 + inflated + 500_000, receivedBytes: 800_000 + inflated, relayedSentBytes: 400_000 + inflated, relayedReceivedBytes: 300_000 + inflated });
    expect(second.relayedSentBytes).toBeLessThanOrEqual(second.sentBytes);
  });

  it('counts a burst of reports for no more time than really passed', async () => {
    const rooms = node.ctx.consult;
    const at = Date.UTC(2026, 2, 12, 12);
    const p = participantAt(at - 2000);
    // 2 s after joining, 50 reports each claiming a full second all relayed, within 50 ms: 3 s at most (a second's slack).
    for (let i = 0; i < 50; i++) rooms.reportTraffic(p, { sentBytes: 1_000_000, receivedBytes: 1_000_000, intervalMs: 1000, links: 1, relayedLinks: 1, relayedSentBytes: 1_000_000, relayedReceivedBytes: 1_000_000 }, at + i);
    await rooms.flushTraffic();
    const day = await rooms.store.trafficOn('2026-03-12');
    expect(day.relayedSentBytes).toBeLessThanOrEqual(3_050_000);
    expect(day.relayedSentBytes).toBeGreaterThanOrEqual(2_000_000);
    expect(day.sentBytes).toBe(day.relayedSentBytes);
  });

  it('refuses a bad report over the socket, changing nothing, and shows relayed and direct participants to administrators', async () => {
    const { host, patient } = await call();
    const before = await node.ctx.consult.status();
    // The parts above their wholes: refused, counted as a bad message, and nothing is added.
    patient.send(JSON.stringify({ ...base, ...path, relayedSentBytes: 2_000_000 }));
    expect((await patient.next('error')).code).toBe('bad-message');
    const refused = await node.ctx.consult.status();
    expect(refused.relay.participantsWithMedia).toBe(before.relay.participantsWithMedia);
    expect(refused.relay.gbitToday).toBe(before.relay.gbitToday);
    expect(refused.badMessages).toBe(before.badMessages + 1);

    // 1 s at 8 Mbit/s, half of it over a relay, from the patient; the host's link goes direct.
    patient.send({ type: 'stats', sentBytes: 1_000_000, receivedBytes: 1_000_000, intervalMs: 1000, links: 1, relayedLinks: 1, relayedSentBytes: 500_000, relayedReceivedBytes: 1_000_000 });
    host.send({ type: 'stats', sentBytes: 1_000_000, receivedBytes: 1_000_000, intervalMs: 1000, links: 1, relayedLinks: 0, relayedSentBytes: 0, relayedReceivedBytes: 0 });
    let status: Record<string, any> | undefined;
    const deadline = Date.now() + 10_000;
    do {
      await new Promise((r) => setTimeout(r, 100));
      status = (await node.request({ method: 'GET', url: '/api/admin/status' })).json();
    } while (status!.turn.relayUsage.participantsWithMedia < 2 && Date.now() < deadline);
    expect(status!.turn).toMatchObject({ configured: true, relayUsage: { source: 'browsers', participantsWithMedia: 2, participantsRelayed: 1 } });
    expect(status!.turn.relayUsage.mbitPerSecondNow).toBeCloseTo(4, 6);
    // 500 kB relayed today is 0.004 Gbit; the day's row and the heartbeat say the same.
    expect(status!.turn.relayUsage.gbitToday).toBeCloseTo(0.004, 9);
    expect(status!.traffic.days.at(-1)).toMatchObject({ day: new Date().toISOString().slice(0, 10) });
    expect(status!.traffic.days.at(-1).relayedSentGbit).toBeCloseTo(0.004, 9);
    expect(status!.traffic.days.at(-1).relayedReceivedGbit).toBeCloseTo(0.008, 9);
    expect(status!.nodes[0].relay).toMatchObject({ participantsWithMedia: 2, participantsRelayed: 1 });

    const metrics = (await node.request({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^telesalud_consult_media_participants\{path="relay"\} 1$/m);
    expect(metrics).toMatch(/^telesalud_consult_media_participants\{path="direct"\} 1$/m);
    expect(metrics).toMatch(/^telesalud_consult_relayed_mbit_per_second 4$/m);
    expect(metrics).toMatch(/^telesalud_consult_relayed_bytes_total\{direction="sent"\} (\d+)$/m);
    // The first test's direct calls to reportTraffic count too: this node accepted them.
    const sent = Number(/^telesalud_consult_relayed_bytes_total\{direction="sent"\} (\d+)$/m.exec(metrics)![1]);
    expect(sent).toBeGreaterThanOrEqual(500_000);
    // A counter: a second scrape with nothing new reports the same total, not twice it.
    const again = (await node.request({ method: 'GET', url: '/metrics' })).body;
    expect(Number(/^telesalud_consult_relayed_bytes_total\{direction="sent"\} (\d+)$/m.exec(again)![1])).toBe(sent);
    host.send({ type: 'end' });
  });
});
