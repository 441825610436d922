import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount } from '../auth/accounts/account-service.js';
import { appointment, create, heartRate, ids, patient, practitioner, search, signInSession } from '../test-support/fixtures.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import { Repository } from './repository.js';
import { CONSULTATION_MODE_SYSTEM } from './telesalud-codes.js';

const PASSWORD = 'marea-lenta-sobre-Valparaiso-2031';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/**
 * What the record does beyond plain CRUD and search: slots that follow their bookings, POST
 * _search, _revinclude and chained parameters under the access policy, and references checked
 * against the registry's targets on write.
 */
describe.each(STORE_KINDS)('record: slots, _search, _revinclude, chains, reference targets (%s)', (kind) => {
  let node: TestNode;
  type Person = { cookies: Record<string, string>; csrf: string; ref: string; id: string };
  const people = {} as Record<'clinician' | 'ana' | 'beto' | 'admin', Person>;
  let hour = 0;

  /** A fresh 20-minute window each time, so bookings never overlap unless a test wants them to. */
  const nextTime = () => {
    const start = Date.UTC(2032, 0, 1) + hour++ * 60 * 60_000;
    return { start: new Date(start).toISOString(), end: new Date(start + 20 * 60_000).toISOString() };
  };
  const as = (who: keyof typeof people, options: InjectOptions): Promise<LightMyRequestResponse> =>
    node.app.inject({ ...options, cookies: people[who].cookies, headers: { 'x-csrf-token': people[who].csrf, origin: node.config.publicUrl, ...(options.headers ?? {}) } });
  const put = (resource: any) => node.request({ method: 'PUT', url: `/fhir/R4/${resource.resourceType}/${resource.id}`, payload: resource, headers: { 'if-match': `W/"${resource.meta.versionId}"` } });
  const read = async (ref: string) => (await node.request({ method: 'GET', url: `/fhir/R4/${ref}` })).json();
  const schedule = async (practitionerRef: string) => create(node, { resourceType: 'Schedule', active: true, actor: [{ reference: practitionerRef }] });
  const freeSlot = async (scheduleId: string) => create(node, { resourceType: 'Slot', schedule: { reference: `Schedule/${scheduleId}` }, status: 'free', ...nextTime() });
  /** A telehealth appointment of this patient and practitioner in this slot. */
  const inSlot = (patientRef: string, practitionerRef: string, slot: any) => ({
    resourceType: 'Appointment',
    status: 'booked',
    appointmentType: { coding: [{ system: CONSULTATION_MODE_SYSTEM, code: 'telehealth' }] },
    start: slot.start,
    end: slot.end,
    slot: [{ reference: `Slot/${slot.id}` }],
    participant: [
      { actor: { reference: patientRef }, status: 'accepted' },
      { actor: { reference: practitionerRef }, status: 'accepted' },
    ],
  });

  const signIn = (email: string, totpSecret?: string) => signInSession(node, email, PASSWORD, totpSecret);

  beforeAll(async () => {
    node = await startTestNode(kind);
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const accounts = {
      clinician: { email: 'okafor@clinica.example.org', role: 'clinician', name: 'Chidi Okafor' },
      ana: { email: 'ana@example.org', role: 'patient', name: 'Ana García Pérez' },
      beto: { email: 'beto@example.org', role: 'patient', name: 'Beto Ibáñez' },
      admin: { email: 'admin@clinica.example.org', role: 'admin' },
    } as const;
    for (const [who, a] of Object.entries(accounts)) {
      const made = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { ...a, password: PASSWORD });
      const ref = made.patientId ? `Patient/${made.patientId}` : made.practitionerId ? `Practitioner/${made.practitionerId}` : `account:${made.id}`;
      people[who as keyof typeof people] = { ...(await signIn(a.email, made.totpSecret)), ref, id: ref.split('/')[1]! };
    }
  }, 120_000);
  afterAll(async () => {
    await node?.stop();
  });

  describe('slots follow their bookings', () => {
    it('a booking takes its slot, cancelling, a no-show or a withdrawal frees it, and free-slot searches agree', async () => {
      const doctor = await create(node, practitioner('Slotter'));
      const sched = await schedule(`Practitioner/${doctor.id}`);
      const p = await create(node, patient('Turno', ['Uno']));
      for (const release of ['cancelled', 'noshow', 'entered-in-error']) {
        const slot = await freeSlot(sched.id);
        const booked = await create(node, inSlot(`Patient/${p.id}`, `Practitioner/${doctor.id}`, slot));
        const busy = await read(`Slot/${slot.id}`);
        expect(busy).toMatchObject({ status: 'busy', meta: { versionId: '2' } });
        expect(ids(await search(node, `Slot?schedule=${sched.id}&status=free&_count=100`))).not.toContain(slot.id);
        expect(ids(await search(node, `Slot?schedule=${sched.id}&status=busy&_count=100`))).toContain(slot.id);

        const released = await put({ ...booked, status: release, ...(release === 'cancelled' ? { cancelationReason: { text: 'x' } } : {}) });
        expect(released.statusCode, release).toBe(200);
        expect((await read(`Slot/${slot.id}`)).status, release).toBe('free');
        expect(ids(await search(node, `Slot?schedule=${sched.id}&status=free&_count=100`))).toContain(slot.id);
        // Every change is a version of the slot, like any other write.
        const history = (await node.request({ method: 'GET', url: `/fhir/R4/Slot/${slot.id}/_history` })).json();
        expect(history.entry.map((e: any) => e.resource.status)).toEqual(['free', 'busy', 'free']);
      }
    });

    it('never books a slot twice, and a booked slot is freed by its appointment, not by editing the slot', async () => {
      const [d1, d2] = await Promise.all([create(node, practitioner('Uno')), create(node, practitioner('Dos'))]);
      const [p1, p2] = await Promise.all([create(node, patient('Doble', ['Uno'])), create(node, patient('Doble', ['Dos']))]);
      const slot = await freeSlot((await schedule(`Practitioner/${d1.id}`)).id);
      const first = await create(node, inSlot(`Patient/${p1.id}`, `Practitioner/${d1.id}`, slot));
      // Other patient, other practitioner: only the slot is in common.
      const second = await node.request({ method: 'POST', url: '/fhir/R4/Appointment', payload: inSlot(`Patient/${p2.id}`, `Practitioner/${d2.id}`, slot) });
      expect(second.statusCode).toBe(409);
      expect(second.json().issue[0]).toMatchObject({ code: 'conflict', expression: ['Appointment.slot'] });
      expect(second.json().issue[0].diagnostics).toContain('already booked');

      const busy = await read(`Slot/${slot.id}`);
      const freed = await put({ ...busy, status: 'free' });
      expect(freed.statusCode).toBe(409);
      expect(freed.json().issue[0].diagnostics).toContain(`Appointment/${first.id}`);
      expect((await node.request({ method: 'DELETE', url: `/fhir/R4/Slot/${slot.id}` })).statusCode).toBe(405);
      expect((await read(`Slot/${slot.id}`)).meta.versionId).toBe('2');

      const closed = await create(node, { resourceType: 'Slot', schedule: { reference: busy.schedule.reference }, status: 'busy-unavailable', ...nextTime() });
      const blocked = await node.request({ method: 'POST', url: '/fhir/R4/Appointment', payload: inSlot(`Patient/${p2.id}`, `Practitioner/${d1.id}`, closed) });
      expect(blocked.statusCode).toBe(409);
      expect((await read(`Slot/${closed.id}`)).meta.versionId).toBe('1');
    });

    it('moving an appointment frees the old slot and takes the new one', async () => {
      const doctor = await create(node, practitioner('Mueve'));
      const sched = await schedule(`Practitioner/${doctor.id}`);
      const p = await create(node, patient('Mueve', ['Cita']));
      const [from, to] = [await freeSlot(sched.id), await freeSlot(sched.id)];
      const booked = await create(node, inSlot(`Patient/${p.id}`, `Practitioner/${doctor.id}`, from));
      const moved = await put({ ...booked, start: to.start, end: to.end, slot: [{ reference: `Slot/${to.id}` }] });
      expect(moved.statusCode).toBe(200);
      expect((await read(`Slot/${from.id}`)).status).toBe('free');
      expect((await read(`Slot/${to.id}`)).status).toBe('busy');
    });

    it('refuses an appointment in a slot that does not exist, and changes nothing', async () => {
      const doctor = await create(node, practitioner('Nada'));
      const p = await create(node, patient('Nada', ['Slot']));
      const res = await node.request({
        method: 'POST',
        url: '/fhir/R4/Appointment',
        payload: { ...appointment(p.id, doctor.id, nextTime().start), slot: [{ reference: 'Slot/00000000-0000-4000-8000-000000000000' }] },
      });
      expect(res.statusCode).toBe(422);
      expect(res.json().issue[0].expression).toEqual(['Appointment.slot']);
      expect((await search(node, `Appointment?patient=${p.id}&_summary=count`)).total).toBe(0);
    });

    it('two patients booking the same free slot at once: exactly one 201, one 409, and the slot is busy', async () => {
      // A practitioner of their own, so these bookings put nobody in the signed-in clinician's care.
      const doctorRef = `Practitioner/${(await create(node, practitioner('Carrera'))).id}`;
      const sched = await schedule(doctorRef);
      for (let round = 0; round < 3; round++) {
        const slot = await freeSlot(sched.id);
        const [a, b] = await Promise.all([
          as('ana', { method: 'POST', url: '/fhir/R4/Appointment', payload: inSlot(people.ana.ref, doctorRef, slot) }),
          as('beto', { method: 'POST', url: '/fhir/R4/Appointment', payload: inSlot(people.beto.ref, doctorRef, slot) }),
        ]);
        expect([a.statusCode, b.statusCode].sort(), `${a.body} ${b.body}`).toEqual([201, 409]);
        expect((await read(`Slot/${slot.id}`)).status).toBe('busy');
        expect(ids(await search(node, `Slot?schedule=${sched.id}&status=free&_count=100`))).not.toContain(slot.id);
        // The winner cancels: the slot is free again, and the other patient gets it.
        const winner = a.statusCode === 201 ? a.json() : b.json();
        const winnerWho = a.statusCode === 201 ? 'ana' : 'beto';
        const cancel = await as(winnerWho, { method: 'PUT', url: `/fhir/R4/Appointment/${winner.id}`, payload: { ...winner, status: 'cancelled' }, headers: { 'if-match': 'W/"1"' } });
        expect(cancel.statusCode, cancel.body).toBe(200);
        expect((await read(`Slot/${slot.id}`)).status).toBe('free');
        const loserWho = winnerWho === 'ana' ? 'beto' : 'ana';
        const retry = await as(loserWho, { method: 'POST', url: '/fhir/R4/Appointment', payload: inSlot(people[loserWho].ref, doctorRef, slot) });
        expect(retry.statusCode, retry.body).toBe(201);
      }
    });
  });

  describe('POST _search', () => {
    it('answers a form-encoded search exactly like the GET one, with the URL parameters added', async () => {
      for (const given of ['Uno', 'Dos', 'Tres']) await create(node, patient('Formulario', [given]));
      const get = await search(node, 'Patient?family=formulario&_sort=given&_count=2&_total=accurate');
      const post = await node.request({ method: 'POST', url: '/fhir/R4/Patient/_search', payload: 'family=formulario&_sort=given&_count=2&_total=accurate', headers: FORM });
      expect(post.statusCode).toBe(200);
      expect(post.json().total).toBe(3);
      expect(ids(post.json())).toEqual(ids(get));
      expect(post.json().link.find((l: any) => l.relation === 'next').url).toContain('_offset=2');
      const mixed = await node.request({ method: 'POST', url: '/fhir/R4/Patient/_search?_sort=-given', payload: 'family=formulario&given=tres,uno', headers: FORM });
      expect(mixed.json().entry.map((e: any) => e.resource.name[0].given[0])).toEqual(['Uno', 'Tres']);
      const empty = await node.request({ method: 'POST', url: '/fhir/R4/Patient/_search?family=formulario&_summary=count', payload: '', headers: FORM });
      expect(empty.json().total).toBe(3);
    });

    it('refuses what GET refuses, and bodies that are not a form', async () => {
      const unknown = await node.request({ method: 'POST', url: '/fhir/R4/Patient/_search', payload: 'shoe=42', headers: FORM });
      expect(unknown.statusCode).toBe(400);
      expect(unknown.json().issue[0].diagnostics).toContain('shoe');
      const json = await node.request({ method: 'POST', url: '/fhir/R4/Patient/_search', payload: { family: 'formulario' } });
      expect(json.statusCode).toBe(415);
      expect(json.json().resourceType).toBe('OperationOutcome');
    });

    it('is a search to the access policy: a patient finds only their own record', async () => {
      const res = await as('ana', { method: 'POST', url: '/fhir/R4/Patient/_search', payload: '_count=100', headers: FORM });
      expect(res.statusCode).toBe(200);
      expect(ids(res.json())).toEqual([people.ana.id]);
    });
  });

  describe('_revinclude', () => {
    it("brings a patient's observations, encounters, appointments, conditions and notes", async () => {
      const p = await create(node, patient('Revinclude', ['Todo']));
      const doctor = await create(node, practitioner('Rev'));
      const subject = { reference: `Patient/${p.id}` };
      const obs = await create(node, heartRate(p.id, 70, '2026-02-01T09:00:00Z'));
      const enc = await create(node, { resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'VR' }, subject });
      const appt = await create(node, appointment(p.id, doctor.id, nextTime().start));
      const cond = await create(node, { resourceType: 'Condition', code: { text: 'HTA' }, subject });
      const note = await create(node, { resourceType: 'Composition', status: 'preliminary', type: { text: 'SOAP' }, subject, date: '2026-02-01', author: [{ reference: `Practitioner/${doctor.id}` }], title: 'Nota' });
      const other = await create(node, heartRate((await create(node, patient('Otro', ['Paciente']))).id, 80, '2026-02-01T09:00:00Z'));
      const revs = ['Observation:patient', 'Encounter:patient', 'Appointment:patient', 'Condition:patient', 'Composition:subject'].map((r) => `_revinclude=${r}`).join('&');
      const bundle = await search(node, `Patient?_id=${p.id}&${revs}`);
      expect(ids(bundle)).toEqual([p.id]);
      expect(ids(bundle, 'include').sort()).toEqual([obs.id, enc.id, appt.id, cond.id, note.id].sort());
      expect(ids(bundle, 'include')).not.toContain(other.id);
      // Through POST _search too, and with the target type named.
      const posted = await node.request({ method: 'POST', url: '/fhir/R4/Patient/_search', payload: `_id=${p.id}&_revinclude=Observation:subject:Patient`, headers: FORM });
      expect(ids(posted.json(), 'include')).toEqual([obs.id]);
    });

    it('refuses what it can not follow', async () => {
      for (const value of ['Observation:code', 'Observation:patient:Group', 'Observation', 'Nope:patient', 'Observation:encounter', '*']) {
        const res = await node.request({ method: 'GET', url: `/fhir/R4/Patient?_revinclude=${value}` });
        expect(res.statusCode, value).toBe(400);
      }
    });

    it('leaves out what the searcher may not read, and audits what it shows', async () => {
      // The clinician is in care of Ana (an appointment); a colleague sees Beto.
      const colleague = await create(node, practitioner('Colega'));
      const mine = await create(node, appointment(people.ana.id, people.clinician.id, nextTime().start));
      const theirs = await create(node, appointment(people.beto.id, colleague.id, nextTime().start));
      const both = await create(node, appointment(people.ana.id, colleague.id, nextTime().start));
      const anaObs = await create(node, heartRate(people.ana.id, 66, '2026-02-02T09:00:00Z'));
      const betoObs = await create(node, heartRate(people.beto.id, 99, '2026-02-02T09:00:00Z'));

      // A directory search (everyone reads practitioners) revincludes appointments: only the ones of patients in care.
      const seen = await as('clinician', { method: 'GET', url: `/fhir/R4/Practitioner?_id=${colleague.id},${people.clinician.id}&_revinclude=Appointment:practitioner&_count=10` });
      expect(seen.statusCode).toBe(200);
      const included = ids(seen.json(), 'include');
      expect(included).toEqual(expect.arrayContaining([mine.id, both.id]));
      expect(included).not.toContain(theirs.id);

      // Patients: only Ana is found, so only her observations come along.
      const patients = await as('clinician', { method: 'GET', url: `/fhir/R4/Patient?_id=${people.ana.id},${people.beto.id}&_revinclude=Observation:patient` });
      expect(ids(patients.json())).toEqual([people.ana.id]);
      expect(ids(patients.json(), 'include')).toContain(anaObs.id);
      expect(ids(patients.json(), 'include')).not.toContain(betoObs.id);

      // An admin sees demographics and appointments but no clinical content: observations stay out, appointments come.
      const admin = await as('admin', { method: 'GET', url: `/fhir/R4/Patient?_id=${people.beto.id}&_revinclude=Observation:patient&_revinclude=Appointment:patient` });
      expect(admin.statusCode).toBe(200);
      expect(ids(admin.json(), 'include')).toContain(theirs.id);
      expect(ids(admin.json(), 'include')).not.toContain(betoObs.id);

      // A patient: their own rows only, even through a colleague's practitioner record.
      const own = await as('beto', { method: 'GET', url: `/fhir/R4/Practitioner?_id=${colleague.id}&_revinclude=Appointment:practitioner` });
      expect(ids(own.json(), 'include')).toEqual([theirs.id]);

      await node.ctx.audit.drain();
      const audited = await node.ctx.store.db.selectFrom('audit_event').select(['patient', 'action']).where('actor', '=', people.beto.ref).where('resource_type', '=', 'Practitioner').execute();
      expect(audited).toEqual(expect.arrayContaining([{ patient: people.beto.ref, action: 'search' }]));
    });
  });

  describe('chained parameters', () => {
    let garcia: any, okafor: any, garciaObs: any, otherObs: any, appt: any;
    beforeAll(async () => {
      garcia = await create(node, patient('Cadenas García', ['Lucía'], { identifier: [{ system: 'urn:mrn', value: 'CHAIN-1' }] }));
      const other = await create(node, patient('Cadenas Ruiz', ['Mario']));
      okafor = await create(node, practitioner('Ekwueme'));
      garciaObs = await create(node, heartRate(garcia.id, 71, '2026-03-01T09:00:00Z'));
      otherObs = await create(node, heartRate(other.id, 72, '2026-03-01T09:00:00Z'));
      appt = await create(node, appointment(garcia.id, okafor.id, nextTime().start));
      await create(node, appointment(other.id, (await create(node, practitioner('Distinto'))).id, nextTime().start));
    });

    it('finds observations by the patient’s name and identifier, and appointments by the practitioner’s name', async () => {
      expect(ids(await search(node, 'Observation?patient.name=garcia&_count=100'))).toEqual(expect.arrayContaining([garciaObs.id]));
      expect(ids(await search(node, 'Observation?patient.name=cadenas%20garcia'))).toEqual([garciaObs.id]);
      expect(ids(await search(node, 'Observation?subject:Patient.family=cadenas&_count=100')).sort()).toEqual([garciaObs.id, otherObs.id].sort());
      expect(ids(await search(node, 'Observation?patient.identifier=urn:mrn|CHAIN-1'))).toEqual([garciaObs.id]);
      expect(ids(await search(node, 'Observation?patient.name:exact=cadenas%20garcia'))).toEqual([garciaObs.id]);
      expect(ids(await search(node, 'Appointment?practitioner.name=ekwueme'))).toEqual([appt.id]);
      expect(ids(await search(node, 'Appointment?actor.name=ekwueme'))).toEqual([appt.id]);
      expect(ids(await search(node, 'Appointment?actor:Practitioner.family=ekwueme&patient.given=lucia'))).toEqual([appt.id]);
      expect(ids(await search(node, 'Observation?patient.name=zzzz'))).toEqual([]);
      const posted = await node.request({ method: 'POST', url: '/fhir/R4/Observation/_search', payload: 'patient.name=cadenas%20garcia', headers: FORM });
      expect(ids(posted.json())).toEqual([garciaObs.id]);
    });

    it('refuses chains it does not support, with a clear 400', async () => {
      for (const query of ['Observation?patient.birthdate=2000', 'Observation?patient.name.family=x', 'Observation?code.name=x', 'Observation?patient.shoe=x', 'Observation?subject:Practitioner.name=x', 'Observation?patient.organization=x']) {
        const res = await node.request({ method: 'GET', url: `/fhir/R4/${query}` });
        expect(res.statusCode, query).toBe(400);
        expect(res.json().issue[0].diagnostics.length, query).toBeGreaterThan(10);
      }
    });

    it('matches only patients the searcher may see', async () => {
      const anaObs = await create(node, heartRate(people.ana.id, 61, '2026-03-02T09:00:00Z'));
      await create(node, appointment(people.ana.id, people.clinician.id, nextTime().start));
      const found = await as('clinician', { method: 'GET', url: '/fhir/R4/Observation?patient.name=garcia&_count=100' });
      expect(found.statusCode).toBe(200);
      const subjects = new Set(found.json().entry.map((e: any) => e.resource.subject.reference));
      expect([...subjects]).toEqual([people.ana.ref]);
      expect(ids(found.json())).toContain(anaObs.id);
      expect((await as('admin', { method: 'GET', url: '/fhir/R4/Appointment?patient.name=garcia&_count=100' })).statusCode).toBe(200);
      expect((await as('admin', { method: 'GET', url: '/fhir/R4/Observation?patient.name=garcia' })).statusCode).toBe(403);
    });
  });

  describe('reference targets on write', () => {
    it('refuses a reference to a type its element may not point to, naming the element, and stores nothing', async () => {
      const p = await create(node, patient('Destino', ['Ref']));
      const doctor = await create(node, practitioner('Destino'));
      const cases: [Record<string, unknown>, string][] = [
        [{ ...heartRate(p.id, 70, '2026-01-01T10:00:00Z'), subject: { reference: `Practitioner/${doctor.id}` } }, 'Observation.subject'],
        [
          {
            resourceType: 'AllergyIntolerance',
            clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
            code: { text: 'Látex' },
            patient: { reference: `Practitioner/${doctor.id}` },
          },
          'AllergyIntolerance.patient',
        ],
        [{ ...appointment(p.id, doctor.id, nextTime().start), participant: [{ actor: { reference: `Organization/${doctor.id}` }, status: 'accepted' }] }, 'Appointment.participant.actor'],
        [{ ...heartRate(p.id, 70, '2026-01-01T10:00:00Z'), encounter: { reference: `https://elsewhere.example/fhir/Patient/${p.id}` } }, 'Observation.encounter'],
        [{ ...patient('Otra', ['Ref']), managingOrganization: { reference: `Practitioner/${doctor.id}` } }, 'Patient.managingOrganization'],
      ];
      for (const [resource, element] of cases) {
        const res = await node.request({ method: 'POST', url: `/fhir/R4/${String(resource.resourceType)}`, payload: resource });
        expect(res.statusCode, element).toBe(400);
        expect(res.json().issue[0].expression, element).toEqual([element]);
        expect(res.json().issue[0].diagnostics, element).toContain('must point to');
      }
      expect((await search(node, `Observation?patient=${p.id}&_summary=count`)).total).toBe(0);
      // Updates are checked alike.
      const obs = await create(node, heartRate(p.id, 70, '2026-01-01T10:00:00Z'));
      expect((await put({ ...obs, subject: { reference: `Practitioner/${doctor.id}` } })).statusCode).toBe(400);
    });
  });

  it('lists _revinclude and chains in the CapabilityStatement', async () => {
    const metadata = (await node.app.inject({ method: 'GET', url: '/fhir/R4/metadata' })).json();
    const patientCaps = metadata.rest[0].resource.find((r: any) => r.type === 'Patient');
    expect(patientCaps.searchRevInclude).toEqual(expect.arrayContaining(['Observation:patient', 'Encounter:patient', 'Appointment:patient', 'Condition:patient', 'Composition:subject']));
    const observation = metadata.rest[0].resource.find((r: any) => r.type === 'Observation');
    expect(observation.searchParam.find((p: any) => p.name === 'patient').documentation).toContain('name');
    for (const resource of metadata.rest[0].resource) {
      for (const rev of resource.searchRevInclude) {
        const res = await node.request({ method: 'GET', url: `/fhir/R4/${resource.type}?_revinclude=${rev}&_count=1` });
        expect(res.statusCode, `${resource.type} ${rev}`).toBe(200);
      }
    }
  });
});
