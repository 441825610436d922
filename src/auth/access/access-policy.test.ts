import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../actor.js';
import { createAccount } from '../accounts/account-service.js';
import { currentTotpCode, TOTP_PERIOD_SECONDS } from '../mfa/totp.js';
import { Repository } from '../../records/repository.js';
import { RESOURCE_TYPES } from '../../records/resource-types.js';
import { CONSULTATION_MODE_SYSTEM } from '../../records/telesalud-codes.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';
import { signInSession } from '../../test-support/fixtures.js';

const PASSWORD = 'marea-lenta-sobre-Valparaiso-2031';
type Who = 'patient' | 'clinician' | 'stranger' | 'reception' | 'admin' | 'token';
const WHO: Who[] = ['patient', 'clinician', 'stranger', 'reception', 'admin', 'token'];
const INTERACTIONS = ['read', 'search', 'create', 'update', 'delete'] as const;
type Interaction = (typeof INTERACTIONS)[number];

/**
 * The access policy as a table, checked cell by cell through the HTTP API with real sessions.
 *
 *   patient    the patient account of "own" (patient A)
 *   clinician  a clinician in care of A (an appointment names them), not of B
 *   stranger   a clinician with no care relationship at all
 *   reception  a front-desk account: every patient's demographics and appointments, no clinical content
 *   admin      an admin account;  token: the bootstrap admin token
 *
 * Each row: read search create update delete for the own / in-care patient A | the same for the
 * other patient B (directory types name no patient: both halves alike).
 *   y  allowed (200 / 201 / 204; for search: listed)
 *   4  out of reach: 404, as if it did not exist (for search: not listed)
 *   x  refused: 403
 *   k  the policy allows it, the type keeps its records: 405
 * "update" of an Appointment is a cancellation (what a patient may do); "create" is a booking in a free slot.
 */
const MATRIX: Record<string, Record<Who, string>> = {
  Patient: {
    patient: /*    */ 'y y x x x | 4 4 x 4 4',
    clinician: /*  */ 'y y y y k | 4 4 y 4 4',
    stranger: /*   */ '4 4 y 4 4 | 4 4 y 4 4',
    reception: /*  */ 'y y y y k | y y y y k',
    admin: /*      */ 'y y x x x | y y x x x',
    token: /*      */ 'y y y y k | y y y y k',
  },
  Practitioner: directory('k'),
  Organization: directory('k'),
  Location: directory('k'),
  Schedule: directory('y'),
  Slot: directory('y'),
  Appointment: {
    patient: /*    */ 'y y y y x | 4 4 x 4 4',
    clinician: /*  */ 'y y y y k | 4 4 x 4 4',
    stranger: /*   */ '4 4 x 4 4 | 4 4 x 4 4',
    reception: /*  */ 'y y y y k | y y y y k',
    admin: /*      */ 'y y x x x | y y x x x',
    token: /*      */ 'y y y y k | y y y y k',
  },
  Encounter: clinical('k'),
  Observation: clinical('k', 'y y y x x | 4 4 x 4 4'),
  Condition: clinical('k'),
  AllergyIntolerance: clinical('k'),
  MedicationStatement: clinical('k'),
  MedicationRequest: clinical('k'),
  Composition: clinical('y'),
  DocumentReference: clinical('k'),
};

/** Practitioner, Organization, Location, Schedule, Slot: everyone reads; admins configure. */
function directory(del: 'y' | 'k'): Record<Who, string> {
  const reader = 'y y x x x | y y x x x';
  const writer = `y y y y ${del} | y y y y ${del}`;
  return { patient: reader, clinician: reader, stranger: reader, reception: reader, admin: writer, token: writer };
}

/** Clinical content: the patient reads their own, clinicians work in care, reception and admins see none of it. */
function clinical(del: 'y' | 'k', patient = 'y y x x x | 4 4 x 4 4'): Record<Who, string> {
  return {
    patient,
    clinician: `y y y y ${del} | 4 4 x 4 4`,
    stranger: '4 4 x 4 4 | 4 4 x 4 4',
    reception: 'x x x x x | x x x x x',
    admin: 'x x x x x | x x x x x',
    token: `y y y y ${del} | y y y y ${del}`,
  };
}

const LOINC = 'http://loinc.org';

describe.each(STORE_KINDS)('access policy (%s)', (kind) => {
  let node: TestNode;
  const people = {} as Record<Exclude<Who, 'token'> | 'patientB', { cookies: Record<string, string>; csrf: string; accountId: string; ref: string; id: string; totpSecret?: string }>;
  let A: string; // Patient/…
  let B: string;
  let C1: string; // Practitioner/… of the clinician in care of A
  let C2: string; // the stranger's Practitioner
  let P3: string; // a practitioner without account, who sees B
  let scheduleC1: string;
  let scheduleP3: string;
  let minute = 0;

  const token = (options: InjectOptions) => node.request(options);
  const as = (who: Who, options: InjectOptions): Promise<LightMyRequestResponse> => {
    if (who === 'token') return token(options);
    const p = people[who];
    return node.app.inject({ ...options, cookies: p.cookies, headers: { 'x-csrf-token': p.csrf, origin: node.config.publicUrl, ...(options.headers ?? {}) } });
  };
  const json = (body: unknown) => ({ payload: body as Record<string, unknown>, headers: { 'content-type': 'application/fhir+json' } });
  const post = async (resource: Record<string, any>) => {
    const res = await token({ method: 'POST', url: `/fhir/R4/${resource.resourceType}`, ...json(resource) });
    if (res.statusCode !== 201) throw new Error(`setup create ${resource.resourceType}: ${res.statusCode} ${res.body}`);
    return res.json();
  };

  /** A different half hour each time, far in the future, so no booking ever overlaps another. */
  const nextTime = () => {
    const start = Date.UTC(2031, 0, 1) + minute++ * 30 * 60_000;
    return { start: new Date(start).toISOString(), end: new Date(start + 20 * 60_000).toISOString() };
  };
  const freeSlot = async (schedule: string) => post({ resourceType: 'Slot', schedule: { reference: schedule }, status: 'free', ...nextTime() });
  /** A telehealth booking of the patient's own practitioner in a fresh free slot: what a patient may create. */
  const booking = async (patient: string) => {
    const [practitioner, schedule] = patient === A ? [C1, scheduleC1] : [P3, scheduleP3];
    const slot = await freeSlot(schedule);
    return {
      resourceType: 'Appointment',
      status: 'booked',
      appointmentType: { coding: [{ system: CONSULTATION_MODE_SYSTEM, code: 'telehealth' }] },
      start: slot.start,
      end: slot.end,
      slot: [{ reference: `Slot/${slot.id}` }],
      participant: [
        { actor: { reference: patient }, status: 'accepted' },
        { actor: { reference: practitioner }, status: 'accepted' },
      ],
    };
  };

  async function template(type: string, patient: string): Promise<Record<string, any>> {
    const subject = { reference: patient };
    switch (type) {
      case 'Patient':
        return { resourceType: 'Patient', active: true, name: [{ family: 'Nueva', given: ['Persona'] }], gender: 'female', birthDate: '1990-01-01' };
      case 'Practitioner':
        return { resourceType: 'Practitioner', active: true, name: [{ family: 'Otro', given: ['Médico'] }] };
      case 'Organization':
        return { resourceType: 'Organization', active: true, name: 'Sede de prueba' };
      case 'Location':
        return { resourceType: 'Location', status: 'active', name: 'Consultorio virtual' };
      case 'Schedule':
        return { resourceType: 'Schedule', active: true, actor: [{ reference: P3 }] };
      case 'Slot':
        return { resourceType: 'Slot', schedule: { reference: scheduleP3 }, status: 'free', ...nextTime() };
      case 'Appointment':
        return booking(patient);
      case 'Encounter':
        return { resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'VR' }, subject, period: { start: '2025-03-03T09:00:00Z' } };
      case 'Observation':
        return {
          resourceType: 'Observation',
          status: 'final',
          category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
          code: { coding: [{ system: LOINC, code: '8867-4' }] },
          subject,
          effectiveDateTime: '2025-03-03T09:05:00Z',
          valueQuantity: { value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
        };
      case 'Condition':
        return { resourceType: 'Condition', code: { text: 'Hipertensión' }, subject, recordedDate: '2025-03-03' };
      case 'AllergyIntolerance':
        return {
          resourceType: 'AllergyIntolerance',
          clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
          code: { text: 'Penicilina' },
          patient: subject,
        };
      case 'MedicationStatement':
        return { resourceType: 'MedicationStatement', status: 'active', medicationCodeableConcept: { text: 'Losartán' }, subject };
      case 'MedicationRequest':
        return { resourceType: 'MedicationRequest', status: 'active', intent: 'order', medicationCodeableConcept: { text: 'Acetaminofén' }, subject };
      case 'Composition':
        return { resourceType: 'Composition', status: 'preliminary', type: { text: 'Nota' }, subject, date: '2025-03-03T09:30:00Z', author: [{ reference: C1 }], title: 'Nota' };
      case 'DocumentReference':
        return { resourceType: 'DocumentReference', status: 'current', subject, content: [{ attachment: { contentType: 'text/plain', title: 'nota.txt' } }] };
      default:
        throw new Error(`no template for ${type}`);
    }
  }

  /** A resource of this type for this patient, created with the token; the Patient itself for Patient. */
  const target = async (type: string, patient: string) => (type === 'Patient' ? (await token({ method: 'GET', url: `/fhir/R4/${patient}` })).json() : post(await template(type, patient)));

  const signIn = (email: string, totpSecret?: string) => signInSession(node, email, PASSWORD, totpSecret);

  beforeAll(async () => {
    node = await startTestNode(kind);
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const accounts = {
      patient: { email: 'ana@example.org', role: 'patient' },
      patientB: { email: 'beto@example.org', role: 'patient' },
      clinician: { email: 'c1@clinica.example.org', role: 'clinician' },
      stranger: { email: 'c2@clinica.example.org', role: 'clinician' },
      reception: { email: 'recepcion@clinica.example.org', role: 'reception' },
      admin: { email: 'admin@clinica.example.org', role: 'admin' },
    } as const;
    for (const [who, a] of Object.entries(accounts)) {
      const made = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { ...a, password: PASSWORD });
      const ref = made.patientId ? `Patient/${made.patientId}` : made.practitionerId ? `Practitioner/${made.practitionerId}` : `account:${made.id}`;
      people[who as keyof typeof people] = { ...(await signIn(a.email, made.totpSecret)), accountId: made.id, ref, id: ref.split('/')[1]!, ...(made.totpSecret ? { totpSecret: made.totpSecret } : {}) };
    }
    A = people.patient.ref;
    B = people.patientB.ref;
    C1 = people.clinician.ref;
    C2 = people.stranger.ref;
    P3 = `Practitioner/${(await post({ resourceType: 'Practitioner', active: true, name: [{ family: 'Tercera' }] })).id}`;
    scheduleC1 = `Schedule/${(await post({ resourceType: 'Schedule', active: true, actor: [{ reference: C1 }] })).id}`;
    scheduleP3 = `Schedule/${(await post({ resourceType: 'Schedule', active: true, actor: [{ reference: P3 }] })).id}`;
    // The care relationship of C1 with A: an appointment naming both. B is seen by P3 only.
    await post(await booking(A));
    await post(await booking(B));
  }, 120_000);
  afterAll(async () => {
    await node?.stop();
  });

  const code = (res: LightMyRequestResponse, ok: number) => (res.statusCode === ok ? 'y' : res.statusCode === 404 ? '4' : res.statusCode === 403 ? 'x' : res.statusCode === 405 ? 'k' : `?${res.statusCode}:${res.body.slice(0, 200)}`);

  async function cell(type: string, who: Who, interaction: Interaction, patient: string): Promise<string> {
    switch (interaction) {
      case 'read': {
        const t = await fixed(type, patient);
        return code(await as(who, { method: 'GET', url: `/fhir/R4/${type}/${t.id}` }), 200);
      }
      case 'search': {
        const t = await fixed(type, patient);
        const res = await as(who, { method: 'GET', url: `/fhir/R4/${type}?_id=${t.id}` });
        if (res.statusCode !== 200) return code(res, 200);
        return (res.json().entry ?? []).some((e: any) => e.resource.id === t.id) ? 'y' : '4';
      }
      case 'create':
        return code(await as(who, { method: 'POST', url: `/fhir/R4/${type}`, ...json(await template(type, patient)) }), 201);
      case 'update': {
        const t = await target(type, patient);
        const body = type === 'Appointment' ? { ...t, status: 'cancelled' } : t;
        return code(await as(who, { method: 'PUT', url: `/fhir/R4/${type}/${t.id}`, ...json(body), headers: { 'content-type': 'application/fhir+json', 'if-match': `W/"${t.meta.versionId}"` } }), 200);
      }
      case 'delete': {
        const t = await target(type, patient);
        return code(await as(who, { method: 'DELETE', url: `/fhir/R4/${type}/${t.id}` }), 204);
      }
    }
  }
  const fixedTargets = new Map<string, Promise<any>>();
  const fixed = (type: string, patient: string) => {
    const key = `${type} ${patient}`;
    if (!fixedTargets.has(key)) fixedTargets.set(key, target(type, patient));
    return fixedTargets.get(key)!;
  };

  it('covers every resource type of the registry', () => {
    expect(Object.keys(MATRIX).sort()).toEqual(RESOURCE_TYPES.map((d) => d.type).sort());
  });

  for (const type of Object.keys(MATRIX)) {
    it(`${type}: role × own/other × read, search, create, update, delete is exactly the table`, async () => {
      const actual: Record<string, string> = {};
      for (const who of WHO) {
        const halves: string[] = [];
        for (const patient of [A, B]) {
          const codes: string[] = [];
          for (const interaction of INTERACTIONS) codes.push(await cell(type, who, interaction, patient));
          halves.push(codes.join(' '));
        }
        actual[who] = halves.join(' | ');
      }
      expect(actual).toEqual(MATRIX[type]);
    });
  }

  describe('search, _include and counts show only what read would', () => {
    it('a clinician finds the in-care patient only, in results, totals and counts', async () => {
      const seen = await as('clinician', { method: 'GET', url: '/fhir/R4/Observation?_count=1000&_total=accurate' });
      const subjects = new Set(seen.json().entry.map((e: any) => e.resource.subject.reference));
      expect([...subjects]).toEqual([A]);
      const mine = (await token({ method: 'GET', url: `/fhir/R4/Observation?patient=${A}&_summary=count` })).json().total;
      const everyone = (await token({ method: 'GET', url: '/fhir/R4/Observation?_summary=count' })).json().total;
      expect(everyone).toBeGreaterThan(mine);
      expect(seen.json().total).toBe(mine);
      expect((await as('clinician', { method: 'GET', url: '/fhir/R4/Observation?_summary=count' })).json().total).toBe(mine);
      expect((await as('clinician', { method: 'GET', url: `/fhir/R4/Observation?patient=${B}&_total=accurate` })).json().total).toBe(0);
      expect((await as('stranger', { method: 'GET', url: `/fhir/R4/Patient?_id=${people.patient.id},${people.patientB.id}&_summary=count` })).json().total).toBe(0);
      expect((await as('stranger', { method: 'GET', url: `/fhir/R4/Patient?_id=${people.patient.id},${people.patientB.id}&_total=accurate` })).json()).toMatchObject({ total: 0 });
      expect((await as('patient', { method: 'GET', url: '/fhir/R4/Observation?_summary=count' })).json().total).toBe(mine);
    });

    it('_include brings only the patients the searcher may read', async () => {
      // One appointment naming A and B: C1 sees it through A, but B stays out of the bundle.
      const both = await post({ ...(await booking(A)), participant: [{ actor: { reference: A }, status: 'accepted' }, { actor: { reference: B }, status: 'accepted' }, { actor: { reference: P3 }, status: 'accepted' }], slot: undefined });
      const res = await as('clinician', { method: 'GET', url: `/fhir/R4/Appointment?_id=${both.id}&_include=Appointment:patient&_include=Appointment:practitioner` });
      expect(res.statusCode).toBe(200);
      const included = res.json().entry.filter((e: any) => e.search.mode === 'include').map((e: any) => `${e.resource.resourceType}/${e.resource.id}`);
      expect(included.sort()).toEqual([A, P3].sort());
      const admin = await as('admin', { method: 'GET', url: `/fhir/R4/Appointment?_id=${both.id}&_include=Appointment:patient` });
      expect(admin.json().entry.filter((e: any) => e.search.mode === 'include')).toHaveLength(2);
      // …and writing it would reach B: refused.
      expect((await as('clinician', { method: 'PUT', url: `/fhir/R4/Appointment/${both.id}`, ...json({ ...both, status: 'cancelled' }), headers: { 'content-type': 'application/fhir+json', 'if-match': 'W/"1"' } })).statusCode).toBe(403);
    });

    it('admins get no clinical content, however they ask, and every refusal is audited', async () => {
      for (const url of ['/fhir/R4/Observation', `/fhir/R4/Composition?patient=${A}`, '/fhir/R4/Encounter?_summary=count']) {
        expect((await as('admin', { method: 'GET', url })).statusCode).toBe(403);
      }
      const denied = await node.ctx.store.db.selectFrom('audit_event').select(['action', 'resource_type']).where('actor', '=', people.admin.ref).where('outcome', '=', 'denied').execute();
      expect(denied).toEqual(expect.arrayContaining([{ action: 'search', resource_type: 'Observation' }, { action: 'search', resource_type: 'Composition' }]));
    });
  });

  describe('reception', () => {
    const put = (who: Who, resource: Record<string, any>) =>
      as(who, { method: 'PUT', url: `/fhir/R4/${resource.resourceType}/${resource.id}`, ...json(resource), headers: { 'content-type': 'application/fhir+json', 'if-match': `W/"${resource.meta.versionId}"` } });

    it('finds every patient and appointment, but clinical content neither directly nor through _revinclude, _include, $everything or counts', async () => {
      const patients = await as('reception', { method: 'GET', url: `/fhir/R4/Patient?_id=${people.patient.id},${people.patientB.id}&_total=accurate` });
      expect(patients.json().total).toBe(2);
      await fixed('Observation', A);
      const withVitals = await as('reception', { method: 'GET', url: `/fhir/R4/Patient?_id=${people.patient.id}&_revinclude=Observation:patient` });
      // The patient comes; the observations that point to it stay out, as they would for a read.
      expect(withVitals.statusCode).toBe(200);
      expect(withVitals.json().entry.map((e: any) => e.resource.resourceType)).toEqual(['Patient']);
      const encounter = await fixed('Encounter', A);
      const viaInclude = await as('reception', { method: 'GET', url: `/fhir/R4/Encounter?_id=${encounter.id}&_include=Encounter:patient` });
      expect(viaInclude.statusCode).toBe(403);
      expect((await as('reception', { method: 'GET', url: `/fhir/R4/Patient/${people.patient.id}/$everything` })).statusCode).toBe(403);
      expect((await as('reception', { method: 'GET', url: '/fhir/R4/Composition?_summary=count' })).statusCode).toBe(403);
      for (const body of [viaInclude.body, withVitals.body]) expect(body).not.toContain('8867-4');
      await node.ctx.audit.drain();
      const denied = await node.ctx.store.db.selectFrom('audit_event').select(['action', 'resource_type']).where('actor', '=', people.reception.ref).where('outcome', '=', 'denied').execute();
      expect(denied).toEqual(expect.arrayContaining([{ action: 'search', resource_type: 'Encounter' }, { action: 'search', resource_type: 'Composition' }]));
    });

    it('registers a patient without taking them into anyone\'s care, books them with a clinician, reschedules and cancels', async () => {
      const registered = await as('reception', { method: 'POST', url: '/fhir/R4/Patient', ...json(await template('Patient', A)) });
      expect(registered.statusCode).toBe(201);
      const ref = `Patient/${registered.json().id}`;
      // Reception is in nobody's care and opens no chart, not even of the patient it just registered.
      expect((await as('reception', { method: 'POST', url: '/fhir/R4/Observation', ...json(await template('Observation', ref)) })).statusCode).toBe(403);
      expect((await as('clinician', { method: 'GET', url: `/fhir/R4/${ref}` })).statusCode).toBe(404);
      expect(await node.ctx.store.db.selectFrom('care_assignment' as any).select('patient').where('patient', '=', ref).execute()).toEqual([]);

      // Booked with C1: the appointment makes C1 the patient's clinician, as any booking does.
      const first = await booking(A);
      const booked = await as('reception', { method: 'POST', url: '/fhir/R4/Appointment', ...json({ ...first, participant: [{ actor: { reference: ref }, status: 'accepted' }, first.participant[1]] }) });
      expect(booked.statusCode).toBe(201);
      expect((await as('clinician', { method: 'GET', url: `/fhir/R4/${ref}` })).statusCode).toBe(200);
      const slotOf = async (appointment: Record<string, any>) => (await token({ method: 'GET', url: `/fhir/R4/${appointment.slot[0].reference}` })).json().status;
      expect(await slotOf(booked.json())).toBe('busy');

      // Rescheduled into another free slot: the old one is free again, the new one busy.
      const later = await booking(A);
      const moved = await put('reception', { ...booked.json(), start: later.start, end: later.end, slot: later.slot });
      expect(moved.statusCode).toBe(200);
      expect(await slotOf(booked.json())).toBe('free');
      expect(await slotOf(moved.json())).toBe('busy');
      const cancelled = await put('reception', { ...moved.json(), status: 'cancelled', cancelationReason: { text: 'El paciente llamó para cancelar' } });
      expect(cancelled.statusCode).toBe(200);
      expect(await slotOf(moved.json())).toBe('free');
      expect((await as('reception', { method: 'DELETE', url: `/fhir/R4/Appointment/${booked.json().id}` })).statusCode).toBe(405);
    });

    it('is audited under its own account, and a patient sees reception among who accessed their record', async () => {
      expect((await as('reception', { method: 'GET', url: `/fhir/R4/${A}` })).statusCode).toBe(200);
      await node.ctx.audit.drain();
      const reads = await node.ctx.store.db.selectFrom('audit_event').select(['actor', 'patient', 'outcome']).where('actor', '=', people.reception.ref).where('action', '=', 'read').where('resource_type', '=', 'Patient').execute();
      expect(people.reception.ref).toBe(`account:${people.reception.accountId}`);
      expect(reads).toEqual(expect.arrayContaining([{ actor: people.reception.ref, patient: A, outcome: 'success' }]));
      const seen = await as('patient', { method: 'GET', url: '/api/me/record-access?_count=100' });
      expect(seen.statusCode).toBe(200);
      expect(seen.json().entries.map((e: any) => e.who.role)).toContain('reception');
    });

    it('may not open the glass, assign care, look up patients in an emergency or upload documents', async () => {
      expect((await as('reception', { method: 'POST', url: '/api/access/emergency-lookup', payload: { family: 'Nueva', birthDate: '1990-01-01' } })).statusCode).toBe(403);
      expect((await as('reception', { method: 'POST', url: '/api/access/break-glass', payload: { patientId: people.patientB.id, reason: 'Paciente en la sala de espera, sin cita previa', password: PASSWORD } })).statusCode).toBe(403);
      expect((await as('reception', { method: 'POST', url: '/api/access/assignments', payload: { practitionerId: people.stranger.id, patientId: people.patientB.id } })).statusCode).toBe(403);
      expect((await as('reception', { method: 'POST', url: `/api/documents?patient=${people.patient.id}&title=Informe`, payload: 'x', headers: { 'content-type': 'text/plain' } })).statusCode).toBe(403);
    });
  });

  describe('break-the-glass', () => {
    /** A TOTP code the replay guard has not seen yet: the step after the last one used, if that is still within the window. */
    async function freshCode(who: 'clinician' | 'stranger'): Promise<string> {
      const row = await node.ctx.store.db.selectFrom('account').select('totp_last_step').where('id', '=', people[who].accountId).executeTakeFirstOrThrow();
      const now = Math.floor(Date.now() / 1000 / TOTP_PERIOD_SECONDS);
      const step = Math.max(now, Number(row.totp_last_step ?? 0) + 1);
      if (step > now + 1) await new Promise((r) => setTimeout(r, 1000 * ((step - 1) * TOTP_PERIOD_SECONDS - Date.now() / 1000) + 100));
      return currentTotpCode(people[who].totpSecret!, new Date(step * TOTP_PERIOD_SECONDS * 1000));
    }
    const breakGlass = (who: Who, body: Record<string, unknown>, headers: Record<string, string> = {}) => as(who, { method: 'POST', url: '/api/access/break-glass', payload: body, headers });

    it('opens a record for a stated reason after re-authentication, flags every access, and closes when it expires', async () => {
      const obs = await fixed('Observation', A);
      const url = `/fhir/R4/Observation/${obs.id}`;
      expect((await as('stranger', { method: 'GET', url })).statusCode).toBe(404);

      const reason = 'Paciente inconsciente en urgencias, sin acompañante';
      expect((await breakGlass('stranger', { patientId: people.patient.id, reason: 'urgente', password: PASSWORD, code: await freshCode('stranger') })).statusCode).toBe(400);
      expect((await breakGlass('stranger', { patientId: people.patient.id, reason, password: 'not-my-password-at-all', code: await freshCode('stranger') })).statusCode).toBe(403);
      expect((await breakGlass('stranger', { patientId: people.patient.id, reason, password: PASSWORD })).statusCode).toBe(403);
      expect((await breakGlass('stranger', { patientId: people.patient.id, reason, password: PASSWORD, code: await freshCode('stranger') }, { 'x-csrf-token': 'forged' })).statusCode).toBe(403);
      expect((await as('stranger', { method: 'GET', url })).statusCode).toBe(404);
      expect((await breakGlass('patient', { patientId: people.patientB.id, reason, password: PASSWORD })).statusCode).toBe(403);
      expect((await breakGlass('admin', { patientId: people.patient.id, reason, password: PASSWORD })).statusCode).toBe(403);

      const code = await freshCode('stranger');
      const opened = await breakGlass('stranger', { patientId: people.patient.id, reason, password: PASSWORD, code });
      expect(opened.statusCode).toBe(201);
      const { grantId, expires } = opened.json();
      expect(Date.parse(expires) - Date.now()).toBeGreaterThan(59 * 60_000);
      // The code just used can't open another.
      expect((await breakGlass('stranger', { patientId: people.patientB.id, reason, password: PASSWORD, code })).statusCode).toBe(403);

      expect((await as('stranger', { method: 'GET', url })).statusCode).toBe(200);
      const found = await as('stranger', { method: 'GET', url: `/fhir/R4/Observation?patient=${A}` });
      expect(found.json().entry.map((e: any) => e.resource.id)).toContain(obs.id);
      expect((await as('stranger', { method: 'GET', url: `/fhir/R4/Observation?patient=${B}&_total=accurate` })).json().total).toBe(0);

      await node.ctx.audit.drain();
      const rows = await node.ctx.store.db.selectFrom('audit_event').select(['action', 'outcome', 'patient', 'detail']).where('actor', '=', C2).orderBy('seq').execute();
      const grant = rows.find((r) => r.action === 'break-glass' && r.outcome === 'success')!;
      expect(grant).toMatchObject({ patient: A, detail: { breakGlass: grantId, minutes: 60 } });
      expect(JSON.stringify(grant.detail)).not.toContain('inconsciente');
      const flagged = rows.filter((r) => r.action !== 'break-glass' && (r.detail as any)?.breakGlass === grantId).map((r) => r.action);
      expect(flagged).toEqual(['read', 'search']);
      expect(rows.filter((r) => r.action === 'break-glass' && r.outcome === 'denied').length).toBeGreaterThanOrEqual(3);

      // Reviewers see the grant with its reason.
      const review = await as('admin', { method: 'GET', url: '/api/access/break-glass' });
      expect(review.json().grants).toEqual(expect.arrayContaining([expect.objectContaining({ grantId, practitioner: C2, patient: A, reason })]));
      // A clinician in care needs none.
      expect((await breakGlass('clinician', { patientId: people.patient.id, reason, password: PASSWORD, code: await freshCode('clinician') })).statusCode).toBe(409);

      await sql`update break_glass_grant set granted = now() - interval '2 hours', expires = now() - interval '1 hour' where id = ${grantId}`.execute(node.ctx.store.db);
      expect((await as('stranger', { method: 'GET', url })).statusCode).toBe(404);
    });
  });

  describe('no escalation through request fields', () => {
    const create = (who: Who, resource: Record<string, unknown>) => as(who, { method: 'POST', url: `/fhir/R4/${String(resource.resourceType)}`, ...json(resource) });
    const put = (who: Who, resource: Record<string, any>) =>
      as(who, { method: 'PUT', url: `/fhir/R4/${resource.resourceType}/${resource.id}`, ...json(resource), headers: { 'content-type': 'application/fhir+json', 'if-match': `W/"${resource.meta.versionId}"` } });

    it('a patient can not write about another patient, or slip in fields that widen their reach', async () => {
      const vital = await template('Observation', A);
      expect((await create('patient', vital)).statusCode).toBe(201);
      expect((await create('patient', { ...vital, subject: { reference: B } })).statusCode).toBe(403);
      expect((await create('patient', { ...vital, performer: [{ reference: C1 }] })).statusCode).toBe(403);
      expect((await create('patient', { ...vital, encounter: { reference: 'Encounter/5f2b3c4d-1e6f-4a7b-8c9d-0e1f2a3b4c5d' } })).statusCode).toBe(403);
      expect((await create('patient', { ...vital, meta: { security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'N' }] } })).statusCode).toBe(403);
      expect((await create('patient', { ...vital, category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }] })).statusCode).toBe(403);
      // An unknown element is bad input before it is a question of access; either way nothing is written.
      expect((await create('patient', { ...(await template('Patient', A)), role: 'admin' })).statusCode).toBe(400);
      expect((await create('patient', await template('Patient', A))).statusCode).toBe(403);
      const me = (await as('patient', { method: 'GET', url: `/fhir/R4/${A}` })).json();
      expect((await put('patient', { ...me, generalPractitioner: [{ reference: C2 }] })).statusCode).toBe(403);
    });

    it('a patient books only their own telehealth visit, in a free slot of the practitioner who offers it, and may cancel it', async () => {
      const mine = await booking(A);
      expect((await create('patient', { ...mine, participant: [...mine.participant, { actor: { reference: B }, status: 'accepted' }] })).statusCode).toBe(403);
      expect((await create('patient', { ...mine, participant: [mine.participant[0], { actor: { reference: C2 }, status: 'accepted' }] })).statusCode).toBe(403);
      expect((await create('patient', { ...mine, appointmentType: { coding: [{ system: CONSULTATION_MODE_SYSTEM, code: 'in-person' }] } })).statusCode).toBe(403);
      expect((await create('patient', { ...mine, start: nextTime().start })).statusCode).toBe(403);
      expect((await create('patient', { ...mine, priority: 0 })).statusCode).toBe(403);
      const booked = await create('patient', mine);
      expect(booked.statusCode).toBe(201);
      const other = await booking(A);
      expect((await create('patient', { ...other, slot: mine.slot, start: mine.start, end: mine.end })).statusCode).toBe(403);

      const appt = booked.json();
      expect((await put('patient', { ...appt, participant: [{ actor: { reference: B }, status: 'accepted' }, appt.participant[1]] })).statusCode).toBe(403);
      expect((await put('patient', { ...appt, start: other.start, end: other.end })).statusCode).toBe(403);
      expect((await put('patient', { ...appt, participant: [appt.participant[0], { ...appt.participant[1], status: 'declined' }] })).statusCode).toBe(403);
      expect((await put('patient', { ...appt, status: 'fulfilled' })).statusCode).toBe(403);
      expect((await put('patient', { ...appt, meta: { ...appt.meta, tag: [{ code: 'vip' }] } })).statusCode).toBe(403);
      const cancelled = await put('patient', { ...appt, status: 'cancelled', cancelationReason: { text: 'No puedo asistir' } });
      expect(cancelled.statusCode).toBe(200);
      expect((await as('patient', { method: 'DELETE', url: `/fhir/R4/Appointment/${appt.id}` })).statusCode).toBe(403);
    });

    it('patients and strangers can not make care assignments; admins can, and end them', async () => {
      const body = { practitionerId: people.stranger.id, patientId: people.patientB.id };
      const assign = (who: Who) => as(who, { method: 'POST', url: '/api/access/assignments', payload: body });
      expect((await assign('patient')).statusCode).toBe(403);
      expect((await assign('stranger')).statusCode).toBe(403);
      const obs = await fixed('Observation', B);
      expect((await as('stranger', { method: 'GET', url: `/fhir/R4/Observation/${obs.id}` })).statusCode).toBe(404);
      expect((await assign('admin')).statusCode).toBe(201);
      expect((await as('stranger', { method: 'GET', url: `/fhir/R4/Observation/${obs.id}` })).statusCode).toBe(200);
      expect((await as('stranger', { method: 'DELETE', url: '/api/access/assignments', payload: body })).statusCode).toBe(403);
      expect((await as('admin', { method: 'DELETE', url: '/api/access/assignments', payload: body })).statusCode).toBe(204);
      expect((await as('stranger', { method: 'GET', url: `/fhir/R4/Observation/${obs.id}` })).statusCode).toBe(404);
    });

    it('a clinician who registers a patient is in their care at once', async () => {
      const created = await create('stranger', await template('Patient', A));
      expect(created.statusCode).toBe(201);
      const ref = `Patient/${created.json().id}`;
      expect((await create('stranger', await template('Observation', ref))).statusCode).toBe(201);
      expect((await as('clinician', { method: 'GET', url: `/fhir/R4/${ref}` })).statusCode).toBe(404);
    });
  });

  describe('documents follow the same policy', () => {
    const upload = (who: Who, patientId: string) =>
      as(who, { method: 'POST', url: `/api/documents?patient=${patientId}&title=Informe`, payload: 'resultado de laboratorio ficticio', headers: { 'content-type': 'text/plain' } });

    it('uploads and downloads as the record allows', async () => {
      const doc = await upload('clinician', people.patient.id);
      expect(doc.statusCode).toBe(201);
      const url = `/api/documents/${doc.json().id}/content`;
      expect((await upload('clinician', people.patientB.id)).statusCode).toBe(404);
      expect((await upload('admin', people.patient.id)).statusCode).toBe(403);
      expect((await upload('patient', people.patient.id)).statusCode).toBe(403);
      expect((await as('patient', { method: 'GET', url })).statusCode).toBe(200);
      expect((await as('clinician', { method: 'GET', url })).statusCode).toBe(200);
      expect((await as('admin', { method: 'GET', url })).statusCode).toBe(403);
      expect((await as('stranger', { method: 'GET', url })).statusCode).toBe(404);
    });
  });
});
