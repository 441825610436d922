import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { validateResource as validateR4 } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount, type NewAccount } from '../auth/accounts/account-service.js';
import { currentTotpCode } from '../auth/mfa/totp.js';
import { SESSION_COOKIE } from '../auth/sessions/session-store.js';
import { preloadValidation } from '../records/fhir/validation.js';
import { Repository } from '../records/repository.js';
import { appointment, create, heartRate, patient } from '../test-support/fixtures.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import { toAuditEvent, type AuditRow } from './audit-event-fhir.js';

const PASSWORD = 'pradera-luminosa-junto-al-Paraná-77';

describe.each(STORE_KINDS)('audit as FHIR AuditEvent, audit search and export, and the patient access log (%s)', (kind) => {
  let node: TestNode;
  let admin: NewAccount;
  let clinician: NewAccount;
  let patientA: NewAccount;
  let patientB: NewAccount;
  let cookies: { admin: string; clinician: string; a: string; b: string };
  let started: string;

  beforeAll(async () => {
    node = await startTestNode(kind);
    preloadValidation();
    const db = node.ctx.store.db;
    const records = new Repository(db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const account = (email: string, role: 'admin' | 'clinician' | 'patient', name: string) => createAccount(db, records, node.ctx.keyRing, { email, role, name, password: PASSWORD });
    admin = await account('seguridad@clinica.example.org', 'admin', 'Rosa Seguridad');
    clinician = await account('medico@clinica.example.org', 'clinician', 'Julián Herrera');
    patientA = await account('ana@example.org', 'patient', 'Ana Acceso');
    patientB = await account('bruno@example.org', 'patient', 'Bruno Ajeno');
    // A care relationship, so any access policy lets the clinician read these patients.
    for (const [p, hour] of [[patientA, 10], [patientB, 11]] as const) await create(node, appointment(p.patientId!, clinician.practitionerId!, `2030-05-06T${hour}:00:00Z`));
    await create(node, heartRate(patientA.patientId!, 72, '2025-05-01T09:00:00Z'));
    started = new Date(Date.now() - 1000).toISOString();
    const signIn = async (email: string, secret?: string) => {
      const res = await node.app.inject({ method: 'POST', url: '/api/auth/sign-in', payload: { email, password: PASSWORD, ...(secret ? { code: currentTotpCode(secret) } : {}) }, remoteAddress: '10.20.0.1' });
      expect(res.statusCode).toBe(200);
      return res.cookies.find((c) => c.name === SESSION_COOKIE)!.value;
    };
    cookies = { admin: await signIn(admin.email, admin.totpSecret), clinician: await signIn(clinician.email, clinician.totpSecret), a: await signIn(patientA.email), b: await signIn(patientB.email) };
    // Traffic: the clinician reads both patients; each patient reads their own record.
    for (const p of [patientA, patientB]) expect((await as('clinician', `/fhir/R4/Patient/${p.patientId}`)).statusCode).toBe(200);
    expect((await as('clinician', `/fhir/R4/Observation?patient=${patientA.patientId}`)).statusCode).toBe(200);
    expect((await as('a', `/fhir/R4/Patient/${patientA.patientId}`)).statusCode).toBe(200);
    expect((await as('b', `/fhir/R4/Patient/${patientB.patientId}`)).statusCode).toBe(200);
    await node.ctx.audit.drain();
  });
  afterAll(async () => {
    await node?.stop();
  });

  const as = (who: keyof typeof cookies, url: string) => node.app.inject({ method: 'GET', url, cookies: { [SESSION_COOKIE]: cookies[who] }, remoteAddress: '10.20.0.2' });
  const events = async (query: string, who?: keyof typeof cookies) => {
    const res = who ? await as(who, `/api/audit/events?${query}`) : await node.request({ method: 'GET', url: `/api/audit/events?${query}` });
    expect(res.statusCode).toBe(200);
    return res.json();
  };

  it('maps every kind of audit row to an AuditEvent that validates as FHIR R4', async () => {
    const rows = (await node.ctx.store.db.selectFrom('audit_event').selectAll().orderBy('seq').execute()) as unknown as AuditRow[];
    const synthetic: AuditRow[] = [
      { seq: 999_001, recorded: new Date(), actor: 'client:tsc-0123456789abcdef01234567', action: 'token-refused', resource_type: null, resource_id: null, patient: null, outcome: 'denied', source: '::1', request_id: 'r1', detail: { error: 'invalid_client' } },
      { seq: 999_002, recorded: new Date(), actor: 'admin-token', action: 'download', resource_type: 'DocumentReference', resource_id: patientA.patientId!, patient: `Patient/${patientA.patientId}`, outcome: 'success', source: '10.0.0.1', request_id: null, detail: null },
      { seq: 999_003, recorded: new Date(), actor: 'Practitioner/x1', action: 'break-the-glass', resource_type: null, resource_id: null, patient: `Patient/${patientA.patientId}`, outcome: 'success', source: null, request_id: null, detail: { reason: 'code' } },
    ];
    const kinds = new Set<string>();
    for (const row of [...rows, ...synthetic]) {
      const event = toAuditEvent(row);
      kinds.add(row.action);
      expect(() => validateR4(event as unknown as Resource), `${row.action}: ${JSON.stringify(event)}`).not.toThrow();
    }
    expect([...kinds]).toEqual(expect.arrayContaining(['create', 'read', 'search', 'sign-in', 'token-refused', 'download', 'break-the-glass']));

    const read = toAuditEvent(rows.find((r) => r.action === 'read' && r.actor === `Practitioner/${clinician.practitionerId}`)!);
    expect(read).toMatchObject({
      type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' },
      subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: 'read' }, { code: 'read' }],
      action: 'R',
      outcome: '0',
      agent: [{ who: { reference: `Practitioner/${clinician.practitionerId}` }, requestor: true, network: { address: '10.20.0.2', type: '2' } }],
      entity: [{ what: { reference: expect.stringMatching(/^Patient\//) }, role: { code: '1' } }],
    });
    expect(toAuditEvent(synthetic[0]!)).toMatchObject({ type: { code: '110114' }, outcome: '4', agent: [{ who: { identifier: { value: 'client:tsc-0123456789abcdef01234567' } } }] });
  });

  it('searches the audit by patient, user, kind, outcome and time, newest first and paged, as a FHIR Bundle', async () => {
    const byPatient = await events(`patient=${patientA.patientId}&kind=read&_count=100`, 'admin');
    expect(byPatient.resourceType).toBe('Bundle');
    const refs = byPatient.entry.map((e: any) => e.resource.entity.find((x: any) => x.role?.code === '1').what.reference);
    expect(new Set(refs)).toEqual(new Set([`Patient/${patientA.patientId}`]));
    const actors = byPatient.entry.map((e: any) => e.resource.agent[0].who.reference);
    expect(actors).toEqual(expect.arrayContaining([`Practitioner/${clinician.practitionerId}`, `Patient/${patientA.patientId}`]));
    const times = byPatient.entry.map((e: any) => Date.parse(e.resource.recorded));
    expect([...times].sort((x, y) => y - x)).toEqual(times);

    // An account id finds the account's entries and those of the Practitioner it stands for.
    const byUser = await events(`user=${clinician.id}&_count=100`);
    const kinds = new Set(byUser.entry.map((e: any) => e.resource.subtype.at(-1).code));
    expect(kinds).toEqual(new Set(['sign-in', 'read', 'search']));

    const failed = await node.app.inject({ method: 'POST', url: '/api/auth/sign-in', payload: { email: patientB.email, password: 'wrong-password-entirely' }, remoteAddress: '10.20.0.9' });
    expect(failed.statusCode).toBe(401);
    await node.ctx.audit.drain();
    const security = await events(`kind=sign-in-failed&outcome=failed&from=${encodeURIComponent(started)}`);
    expect(security.entry).toHaveLength(1);
    expect(security.entry[0].resource).toMatchObject({ outcome: '4', agent: [{ network: { address: '10.20.0.9' } }] });
    expect((await events('to=2000-01-01')).entry).toHaveLength(0);

    const page1 = await events(`patient=${patientA.patientId}&_count=2`);
    expect(page1.entry).toHaveLength(2);
    const next = page1.link.find((l: any) => l.relation === 'next').url as string;
    const page2 = await events(next.split('?')[1]!);
    expect(page2.entry[0].resource.id).not.toBe(page1.entry[1].resource.id);
    expect(Number(page2.entry[0].resource.id)).toBeLessThan(Number(page1.entry[1].resource.id));

    for (const bad of ['patient=Nadie', 'from=ayer', 'kind=DROP%20TABLE', '_count=0', 'color=red']) {
      const res = await node.request({ method: 'GET', url: `/api/audit/events?${bad}` });
      expect(res.statusCode, bad).toBe(400);
    }
  });

  it('lets only administrators read the audit, and records every reading and every refusal', async () => {
    const before = await sql<{ n: number }>`select count(*)::int as n from audit_event where action = 'audit-search'`.execute(node.ctx.store.db);
    expect((await as('clinician', '/api/audit/events')).statusCode).toBe(403);
    expect((await as('a', '/api/audit/events')).statusCode).toBe(403);
    expect((await as('a', '/api/audit/export')).statusCode).toBe(403);
    await events(`patient=${patientB.patientId}`, 'admin');
    await node.ctx.audit.drain();
    const rows = await sql<{ actor: string; outcome: string; patient: string | null }>`select actor, outcome, patient from audit_event where action in ('audit-search', 'audit-export') order by seq desc limit 4`.execute(node.ctx.store.db);
    expect(rows.rows).toEqual([
      { actor: `account:${admin.id}`, outcome: 'success', patient: `Patient/${patientB.patientId}` },
      { actor: `Patient/${patientA.patientId}`, outcome: 'denied', patient: null },
      { actor: `Patient/${patientA.patientId}`, outcome: 'denied', patient: null },
      { actor: `Practitioner/${clinician.practitionerId}`, outcome: 'denied', patient: null },
    ]);
    expect(before.rows[0]!.n).toBeGreaterThan(0);
  });

  it('exports a time window as NDJSON AuditEvents, and the export itself is audited', async () => {
    const res = await node.request({ method: 'GET', url: `/api/audit/export?from=${encodeURIComponent(started)}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/fhir+ndjson');
    const lines = res.body.trimEnd().split('\n').map((l) => JSON.parse(l));
    const inWindow = await sql<{ n: number }>`select count(*)::int as n from audit_event where recorded >= ${started}::timestamptz and not (action = 'audit-export' and outcome = 'success')`.execute(node.ctx.store.db);
    // The export's own entry is written before streaming starts, so it is in the window too.
    expect(lines.length).toBe(inWindow.rows[0]!.n + 1);
    expect(lines.every((e) => e.resourceType === 'AuditEvent')).toBe(true);
    expect(lines.map((e) => Number(e.id))).toEqual([...lines.map((e) => Number(e.id))].sort((x, y) => x - y));
    expect(lines.at(-1)).toMatchObject({ subtype: [{ code: '110106' }, { code: 'audit-export' }], agent: [{ who: { identifier: { value: 'admin-token' } } }] });
  });

  it('records a search that showed several patients as one entry, which each of them and the admins find', async () => {
    const [A, B] = [`Patient/${patientA.patientId}`, `Patient/${patientB.patientId}`];
    const found = await as('clinician', `/fhir/R4/Patient?_id=${patientA.patientId},${patientB.patientId}`);
    expect(found.json().entry.map((e: any) => e.resource.id).sort()).toEqual([patientA.patientId, patientB.patientId].sort());
    await node.ctx.audit.drain();

    const rows = await node.ctx.store.db.selectFrom('audit_event').selectAll().where('action', '=', 'search').where('resource_type', '=', 'Patient').orderBy('seq', 'desc').limit(2).execute();
    expect(rows[1]?.request_id).not.toBe(rows[0]!.request_id);
    expect(rows[0]).toMatchObject({ action: 'search', resource_type: 'Patient', patient: null, actor: `Practitioner/${clinician.practitionerId}` });
    expect((rows[0]!.detail as any).patients.sort()).toEqual([A, B].sort());
    expect((rows[0]!.detail as any).ids.sort()).toEqual([patientA.patientId, patientB.patientId].sort());

    // Each patient sees it in their access log; the other's id is not shown to them.
    for (const [who, other] of [['a', patientB.patientId], ['b', patientA.patientId]] as const) {
      const view = await as(who, '/api/me/record-access?_count=100');
      const searches = view.json().entries.filter((e: any) => e.action === 'search' && e.who.reference === `Practitioner/${clinician.practitionerId}`);
      expect(searches.length, who).toBeGreaterThan(0);
      expect(view.body).not.toContain(other);
    }

    // The admins' search by either patient finds it, as one AuditEvent naming both.
    for (const p of [patientA, patientB]) {
      const byPatient = await events(`patient=${p.patientId}&kind=search&_count=100`, 'admin');
      const event = byPatient.entry.map((e: any) => e.resource).find((r: any) => r.id === String(rows[0]!.seq));
      expect(event, p.patientId).toBeDefined();
      const persons = event.entity.filter((x: any) => x.role?.code === '1').map((x: any) => x.what.reference);
      expect(persons.sort()).toEqual([A, B].sort());
    }
  });

  it("shows a patient who accessed their record — staff by name — and nothing about anyone else's", async () => {
    const res = await as('a', '/api/me/record-access');
    expect(res.statusCode).toBe(200);
    const { entries } = res.json();
    const byClinician = entries.filter((e: any) => e.who.reference === `Practitioner/${clinician.practitionerId}`);
    expect(byClinician.map((e: any) => e.action)).toEqual(expect.arrayContaining(['read', 'search']));
    expect(byClinician[0].who).toEqual({ role: 'clinician', kind: 'staff', display: 'Julián Herrera', reference: `Practitioner/${clinician.practitionerId}` });
    // The admin's search of the audit about patient B is B's business, not A's; A's own reads are left out.
    const body = res.body;
    expect(body).not.toContain(patientB.patientId);
    expect(entries.some((e: any) => e.who.reference === `Patient/${patientA.patientId}`)).toBe(false);
    const times = entries.map((e: any) => Date.parse(e.when));
    expect([...times].sort((x, y) => y - x)).toEqual(times);
    expect(entries.some((e: any) => e.who.role === 'admin')).toBe(true); // the bootstrap token created A's heart rate

    const bView = (await as('b', '/api/me/record-access')).json().entries;
    expect(bView.some((e: any) => e.action === 'audit-search' && e.who.display === 'Rosa Seguridad')).toBe(true);
    expect(JSON.stringify(bView)).not.toContain(patientA.patientId);

    const paged = (await as('a', '/api/me/record-access?_count=1')).json();
    expect(paged.entries).toHaveLength(1);
    expect(paged.next).toEqual({ _count: 1, before: expect.any(Number) });
    const second = (await as('a', `/api/me/record-access?_count=1&before=${paged.next.before}`)).json();
    expect(Date.parse(second.entries[0].when)).toBeLessThanOrEqual(Date.parse(paged.entries[0].when));
    expect((await as('clinician', '/api/me/record-access')).statusCode).toBe(403);
    expect((await node.request({ method: 'GET', url: '/api/me/record-access' })).statusCode).toBe(403);
  });
});
