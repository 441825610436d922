import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount } from '../auth/accounts/account-service.js';
import { SESSION_COOKIE } from '../auth/sessions/session-store.js';
import { Repository } from '../records/repository.js';
import { appointment, create, patient } from '../test-support/fixtures.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';

const PASSWORD = 'girasoles-bajo-la-tormenta-de-Salta-97';
const CLINIC_ZONE = 'America/Mexico_City';
const START = '2031-05-02T14:00:00.000Z';

describe.each(STORE_KINDS)("a guest link's public preview (%s)", (kind) => {
  let node: TestNode;
  let appointmentId: string;
  let hostRef: string;

  beforeAll(async () => {
    node = await startTestNode(kind, { TELESALUD_CLINIC_TIME_ZONE: CLINIC_ZONE });
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const host = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: `preview-host.${kind}@clinica.example.org`, role: 'clinician', name: 'Doctora Quispe', password: PASSWORD });
    hostRef = `Practitioner/${host.practitionerId}`;
    const person = await create(node, patient('Huamán', ['Rosa']));
    appointmentId = (await create(node, appointment(person.id, host.practitionerId!, START))).id;
  });
  afterAll(async () => node?.stop());

  const preview = (token: string) => node.app.inject({ method: 'POST', url: '/api/consult/guest-links/preview', payload: { token }, remoteAddress: '203.0.113.77' });
  const newLink = (minutes = 60, now = new Date()) => node.ctx.consult.store.createGuestLink({ appointmentId, label: 'Intérprete', createdBy: hostRef, minutes }, now);

  it('answers a valid link with the scheduled start and the clinic time zone, nothing about people, and audits the read', async () => {
    const link = await newLink();
    const res = await preview(link.token);
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json()).toEqual({ start: START, linkExpiresAt: link.expires.toISOString(), clinic: { timeZone: CLINIC_ZONE } });
    for (const word of ['Huamán', 'Rosa', 'Quispe', 'Doctora', 'Practitioner', 'Patient', appointmentId, 'Intérprete']) expect(res.body).not.toContain(word);
    const audited = await node.ctx.store.db.selectFrom('audit_event').select(['action']).where('resource_type', '=', 'Appointment').where('resource_id', '=', appointmentId).where('source', '=', '203.0.113.77').execute();
    expect(audited.length).toBeGreaterThan(0);
    // Previewing does not use the link up: the guest can still join with it.
    expect((await node.ctx.consult.store.findGuestLink(link.token))?.usedAt).toBeUndefined();
  });

  it('answers an expired, a used and a forged link exactly alike', async () => {
    const expired = await newLink(5, new Date(Date.now() - 3600_000));
    const used = await newLink();
    const found = await node.ctx.consult.store.findGuestLink(used.token);
    expect(await node.ctx.consult.store.consumeGuestLink(found!.id)).toBe(true);
    const forged = randomBytes(32).toString('base64url');

    const answers = await Promise.all([expired.token, used.token, forged].map(preview));
    for (const res of answers) {
      expect(res.statusCode).toBe(404);
      expect(res.body).not.toContain(START.slice(0, 10));
      expect(res.body).not.toContain(CLINIC_ZONE);
    }
    expect(new Set(answers.map((r) => r.body)).size).toBe(1);
    expect(answers[0]!.json().message).toMatch(/cannot be used/);
  });

  it('refuses a malformed token or extra fields with a 400, and a cancelled consultation like an expired link', async () => {
    expect((await preview('short')).statusCode).toBe(400);
    const extra = await node.app.inject({ method: 'POST', url: '/api/consult/guest-links/preview', payload: { token: randomBytes(32).toString('base64url'), appointmentId } });
    expect(extra.statusCode).toBe(400);

    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const person = await create(node, patient('Condori', ['Luz']));
    const practitionerId = hostRef.slice('Practitioner/'.length);
    const visit = await create(node, appointment(person.id, practitionerId, '2031-05-03T14:00:00.000Z'));
    const link = await node.ctx.consult.store.createGuestLink({ appointmentId: visit.id, label: 'Hija', createdBy: hostRef, minutes: 60 });
    expect((await preview(link.token)).statusCode).toBe(200);
    const stored = (await records.read('Appointment', visit.id)) as { meta: { versionId: string } };
    await records.update({ ...stored, status: 'cancelled' } as never, stored.meta.versionId);
    const cancelled = await preview(link.token);
    expect(cancelled.statusCode).toBe(404);
    expect(cancelled.body).toBe((await preview(randomBytes(32).toString('base64url'))).body);
  });

  it("tells the signed-in app that e-mail is off when no relay is set, and nothing else about it", async () => {
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const account = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: `preview-reader.${kind}@clinica.example.org`, role: 'clinician', name: 'Otra', password: PASSWORD });
    const session = await node.ctx.sessions.create({ id: account.id, role: account.role }, { source: '127.0.0.1' });
    const res = await node.app.inject({ method: 'GET', url: '/api/auth/session', cookies: { [SESSION_COOKIE]: session.token } });
    expect(res.statusCode).toBe(200);
    expect(res.json().emailEnabled).toBe(false);
    expect(res.body).not.toMatch(/smtp/i);
  });
});
