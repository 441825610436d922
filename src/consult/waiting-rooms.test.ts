import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount, type NewAccount } from '../auth/accounts/account-service.js';
import { SESSION_COOKIE } from '../auth/sessions/session-store.js';
import { recordConsent } from '../privacy/telehealth-consent.js';
import { Repository } from '../records/repository.js';
import { appointment, create } from '../test-support/fixtures.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import { SignalingTestClient } from './signaling-test-client.js';
import type { ClientMessage } from './signaling-protocol.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const PUBLIC_URL = 'https://clinica.test';

/** The schedule's view of the waiting rooms: only the host's own consultations, who waits, encryption shown. */
describe.each(STORE_KINDS)('waiting rooms of a clinician (%s)', (kind) => {
  let node: TestNode;
  let baseUrl: string;
  const accounts: Record<string, NewAccount & { cookie: string }> = {};
  const open: SignalingTestClient[] = [];
  let slot = 0;

  beforeAll(async () => {
    node = await startTestNode(kind, { TELESALUD_PUBLIC_URL: PUBLIC_URL });
    baseUrl = await node.app.listen({ port: 0, host: '127.0.0.1' });
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const people: [string, string, string][] = [
      ['host', 'clinician', 'Lucía Fernández'],
      ['colleague', 'clinician', 'Pablo Ruiz'],
      ['patient', 'patient', 'Tomás Romero'],
      ['admin', 'admin', 'Admin Clínica'],
    ];
    await Promise.all(
      people.map(async ([key, role, name]) => {
        const account = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: `${key}@clinica.example.org`, role, name, password: PASSWORD });
        if (account.patientId) await recordConsent(node.ctx.store.db, { patientRef: `Patient/${account.patientId}`, accountId: account.id, source: 'test' });
        const session = await node.ctx.sessions.create({ id: account.id, role: account.role }, { source: '127.0.0.1' });
        accounts[key] = { ...account, cookie: session.token };
      }),
    );
  });

  afterAll(async () => {
    for (const c of open) c.close();
    await node?.stop();
  });

  async function newAppointment(practitioner = 'host'): Promise<string> {
    const start = new Date(Date.now() + slot++ * 30 * 60_000).toISOString();
    return (await create(node, appointment(accounts.patient!.patientId!, accounts[practitioner]!.practitionerId!, start))).id;
  }

  const waitingRooms = (who: string, appointments: string) =>
    node.app.inject({ method: 'GET', url: `/api/consult/waiting-rooms?appointments=${encodeURIComponent(appointments)}`, cookies: { [SESSION_COOKIE]: accounts[who]!.cookie } });

  async function patientWaits(appointmentId: string, e2ee: boolean): Promise<string> {
    const client = await SignalingTestClient.connect(baseUrl, { origin: PUBLIC_URL, cookie: accounts.patient!.cookie });
    open.push(client);
    client.send({ type: 'join', appointmentId, e2ee, identityKey: 'PatientKey' } as ClientMessage);
    const welcome = await client.next('welcome');
    expect(welcome.state).toBe('waiting');
    return welcome.participant.id;
  }

  it('shows the host who waits in which of their consultations, and which rooms are still empty', async () => {
    const empty = await newAppointment();
    const busy = await newAppointment();
    const participantId = await patientWaits(busy, false);
    const res = await waitingRooms('host', `${empty},${busy}`);
    expect(res.statusCode).toBe(200);
    expect(res.json().rooms).toEqual([
      { appointmentId: empty, open: false, hostPresent: false, waiting: [], admitted: 0 },
      { appointmentId: busy, open: true, hostPresent: false, waiting: [{ id: participantId, kind: 'patient', displayName: 'Tomás Romero', e2ee: false }], admitted: 0 },
    ]);
    // Telling the clinician who waits for which patient is a read of that appointment: audited, with the patient.
    await node.ctx.audit.drain();
    const audited = await node.ctx.store.db.selectFrom('audit_event').select(['actor', 'action', 'patient']).where('resource_id', '=', busy).where('action', '=', 'read').execute();
    expect(audited).toContainEqual({ actor: `Practitioner/${accounts.host!.practitionerId}`, action: 'read', patient: `Patient/${accounts.patient!.patientId}` });
  });

  it('leaves out consultations the caller does not host, and unknown ids, without saying which', async () => {
    const theirs = await newAppointment('colleague');
    await patientWaits(theirs, true);
    const mine = await newAppointment();
    const res = await waitingRooms('host', `${theirs},${mine},b9b0f7de-0000-4000-8000-000000000000,not-a-uuid`);
    expect(res.statusCode).toBe(200);
    expect(res.json().rooms.map((r: { appointmentId: string }) => r.appointmentId)).toEqual([mine]);
    const colleague = await waitingRooms('colleague', theirs);
    expect(colleague.json().rooms[0]).toMatchObject({ appointmentId: theirs, open: true, waiting: [expect.objectContaining({ e2ee: true })] });
  });

  it('is for clinicians only, and refuses a malformed list', async () => {
    const id = await newAppointment();
    expect((await waitingRooms('patient', id)).statusCode).toBe(403);
    expect((await waitingRooms('admin', id)).statusCode).toBe(403);
    expect((await node.app.inject({ method: 'GET', url: `/api/consult/waiting-rooms?appointments=${id}` })).statusCode).toBe(401);
    expect((await waitingRooms('host', `${id},,x`)).statusCode).toBe(400);
    expect((await node.app.inject({ method: 'GET', url: '/api/consult/waiting-rooms', cookies: { [SESSION_COOKIE]: accounts.host!.cookie } })).statusCode).toBe(400);
  });
});
