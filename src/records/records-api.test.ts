import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import { appointment, create, heartRate, ids, patient, practitioner, search } from '../test-support/fixtures.js';
import { CLINICAL_NOTE_MARKER } from '../test-support/health-data-markers.js';
import { soapSections } from '../demo/demo-clinic.js';
import { RESOURCE_TYPES } from './resource-types.js';

// The same suite on the embedded PGlite and on real PostgreSQL.
describe.each(STORE_KINDS)('clinical record over FHIR R4 (%s)', (kind) => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startTestNode(kind);
  });
  afterAll(async () => {
    await node?.stop();
  });

  describe('read, version, update, history', () => {
    it('creates with a server id and version 1, and reads it back', async () => {
      const res = await node.request({ method: 'POST', url: '/fhir/R4/Patient', payload: patient('Núñez', ['Ana']), headers: { 'content-type': 'application/fhir+json' } });
      expect(res.statusCode).toBe(201);
      const created = res.json();
      expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(created.meta.versionId).toBe('1');
      expect(res.headers.etag).toBe('W/"1"');
      expect(res.headers.location).toContain(`/fhir/R4/Patient/${created.id}/_history/1`);
      const read = await node.request({ method: 'GET', url: `/fhir/R4/Patient/${created.id}` });
      expect(read.statusCode).toBe(200);
      expect(read.headers['content-type']).toContain('application/fhir+json');
      expect(read.json().name[0].family).toBe('Núñez');
    });

    it('reads by id exactly the resource as stored (sent as its stored JSON text), with the headers of its version, before and after an update', async () => {
      const created = await create(node, patient('Ortega', ['Lucía']));
      const url = `/fhir/R4/Patient/${created.id}`;
      const v1 = await node.request({ method: 'GET', url });
      expect(v1.json()).toEqual(created);
      expect(v1.headers.etag).toBe('W/"1"');
      expect(v1.headers['last-modified']).toBe(new Date(created.meta.lastUpdated).toUTCString());
      const updated = (await node.request({ method: 'PUT', url, payload: { ...created, gender: 'other' }, headers: { 'if-match': 'W/"1"' } })).json();
      const v2 = await node.request({ method: 'GET', url });
      expect(v2.json()).toEqual(updated);
      expect(v2.json().meta.versionId).toBe('2');
      expect(v2.headers.etag).toBe('W/"2"');
      expect(v2.headers['last-modified']).toBe(new Date(updated.meta.lastUpdated).toUTCString());
    });

    it('splices the stored matches into the search Bundle: each once, in order, with its fullUrl and mode, _include entries after them', async () => {
      const a = await create(node, patient('Zamorano', ['Pilar']));
      const b = await create(node, patient('Zamorano', ['Tomás']));
      const obs = await create(node, heartRate(a.id, 71, '2026-02-01T09:00:00Z'));
      const bundle = await search(node, 'Patient?family=Zamorano&_sort=given');
      expect(bundle.entry.map((e: any) => [e.fullUrl, e.search.mode, e.resource])).toEqual([
        [`${node.config.publicUrl}/fhir/R4/Patient/${a.id}`, 'match', a],
        [`${node.config.publicUrl}/fhir/R4/Patient/${b.id}`, 'match', b],
      ]);
      const withPatient = await search(node, `Observation?_id=${obs.id}&_include=Observation:patient`);
      expect(withPatient.entry.map((e: any) => [e.search.mode, e.resource])).toEqual([
        ['match', obs],
        ['include', a],
      ]);
    });

    it('refuses a client-chosen id on create', async () => {
      const res = await node.request({ method: 'POST', url: '/fhir/R4/Patient', payload: { ...patient('Díaz', ['Eva']), id: 'mine' } });
      expect(res.statusCode).toBe(400);
      expect(res.json().resourceType).toBe('OperationOutcome');
    });

    it('updates only with the current version in If-Match: stale is 412, missing is 428', async () => {
      const created = await create(node, patient('Romero', ['Inés']));
      const url = `/fhir/R4/Patient/${created.id}`;
      const v2 = await node.request({ method: 'PUT', url, payload: { ...created, gender: 'other' }, headers: { 'if-match': 'W/"1"' } });
      expect(v2.statusCode).toBe(200);
      expect(v2.json().meta.versionId).toBe('2');

      const stale = await node.request({ method: 'PUT', url, payload: { ...created, gender: 'male' }, headers: { 'if-match': 'W/"1"' } });
      expect(stale.statusCode).toBe(412);
      expect(stale.json().issue[0].diagnostics).toContain('version 2');
      const missing = await node.request({ method: 'PUT', url, payload: { ...created, gender: 'male' } });
      expect(missing.statusCode).toBe(428);
      expect((await node.request({ method: 'GET', url })).json().gender).toBe('other');

      const v1 = await node.request({ method: 'GET', url: `${url}/_history/1` });
      expect(v1.json().gender).toBe('female');
      const history = await node.request({ method: 'GET', url: `${url}/_history` });
      expect(history.json().type).toBe('history');
      expect(history.json().entry.map((e: any) => e.response.etag)).toEqual(['W/"2"', 'W/"1"']);
    });

    it('lets exactly one of two concurrent edits of the same version win', async () => {
      const created = await create(node, patient('Muñoz', ['Paula']));
      const edit = (gender: string) => node.request({ method: 'PUT', url: `/fhir/R4/Patient/${created.id}`, payload: { ...created, gender }, headers: { 'if-match': 'W/"1"' } });
      const results = await Promise.all([edit('male'), edit('other'), edit('unknown')]);
      expect(results.map((r) => r.statusCode).sort()).toEqual([200, 412, 412]);
    });

    it('answers 404 for unknown ids and for ids of the wrong shape', async () => {
      expect((await node.request({ method: 'GET', url: '/fhir/R4/Patient/00000000-0000-4000-8000-000000000000' })).statusCode).toBe(404);
      const odd = await node.request({ method: 'GET', url: '/fhir/R4/Patient/not-a-uuid' });
      expect(odd.statusCode).toBe(404);
      expect(odd.json().resourceType).toBe('OperationOutcome');
    });

    it('answers 400 for unsupported resource types', async () => {
      const res = await node.request({ method: 'GET', url: '/fhir/R4/Basic' });
      expect(res.statusCode).toBe(400);
      expect(res.json().resourceType).toBe('OperationOutcome');
    });
  });

  describe('validation', () => {
    it('names the bad element of an invalid resource and stores nothing', async () => {
      const before = await countRows(node, 'patient');
      const res = await node.request({ method: 'POST', url: '/fhir/R4/Patient', payload: { resourceType: 'Patient', gender: 'sometimes', birthDate: '1980-02-30', nickname: 'x' } });
      expect(res.statusCode).toBe(400);
      const expressions = res.json().issue.flatMap((i: any) => i.expression ?? []);
      expect(expressions).toEqual(expect.arrayContaining(['Patient.gender', 'Patient.birthDate', 'Patient.nickname']));
      expect(await countRows(node, 'patient')).toBe(before);
    });

    it('refuses malformed JSON, a wrong content type and an oversized body with 4xx', async () => {
      const malformed = await node.request({ method: 'POST', url: '/fhir/R4/Patient', payload: '{"resourceType": "Patient",', headers: { 'content-type': 'application/fhir+json' } });
      expect(malformed.statusCode).toBe(400);
      expect(malformed.json().resourceType).toBe('OperationOutcome');
      const xml = await node.request({ method: 'POST', url: '/fhir/R4/Patient', payload: '<Patient/>', headers: { 'content-type': 'application/fhir+xml' } });
      expect(xml.statusCode).toBe(415);
      const huge = await node.request({ method: 'POST', url: '/fhir/R4/Patient', payload: { ...patient('García', ['Eva']), text: { status: 'generated', div: `<div>${'x'.repeat(1_100_000)}</div>` } } });
      expect(huge.statusCode).toBe(413);
    });

    it('refuses implausible vital signs', async () => {
      const p = await create(node, patient('Peña', ['Rocío']));
      const res = await node.request({ method: 'POST', url: '/fhir/R4/Observation', payload: heartRate(p.id, 900, '2026-01-01T10:00:00Z') });
      expect(res.statusCode).toBe(400);
      expect(JSON.stringify(res.json().issue)).toContain('Observation.valueQuantity');
    });
  });

  describe('search', () => {
    let garcia: any, ibanez: any, obrien: any, doctor: any;
    beforeAll(async () => {
      garcia = await create(node, patient('García Pérez', ['José', 'Luis'], { gender: 'male', birthDate: '1975-06-15', identifier: [{ system: 'urn:mrn', value: 'MRN-1' }] }));
      ibanez = await create(node, patient('Ibáñez', ['Begoña'], { birthDate: '1990-01-20', identifier: [{ system: 'urn:dni', value: '12345678Z' }] }));
      obrien = await create(node, patient("O'Brien", ['Siobhan'], { birthDate: '1990-12-31', communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'en' }] } }] }));
      doctor = await create(node, practitioner('Okafor'));
    });

    it('finds patients by name prefix, ignoring case and accents', async () => {
      expect(ids(await search(node, 'Patient?name=garc'))).toContain(garcia.id);
      expect(ids(await search(node, 'Patient?name=GARCIA'))).toContain(garcia.id);
      expect(ids(await search(node, 'Patient?family=ibanez'))).toEqual([ibanez.id]);
      expect(ids(await search(node, 'Patient?given=luis'))).toContain(garcia.id);
      expect(ids(await search(node, `Patient?name=${encodeURIComponent("o'b")}`))).toEqual([obrien.id]);
      expect(ids(await search(node, 'Patient?name=perez'))).toContain(garcia.id);
      expect(ids(await search(node, 'Patient?name:exact=ibanez'))).toEqual([ibanez.id]);
      expect(ids(await search(node, 'Patient?name:contains=bego'))).toEqual([ibanez.id]);
      expect(ids(await search(node, 'Patient?name=zzzz'))).toEqual([]);
    });

    it('treats LIKE wildcards in a name as literal text', async () => {
      expect(ids(await search(node, 'Patient?name=%25'))).toEqual([]);
      expect(ids(await search(node, 'Patient?name=_'))).toEqual([]);
    });

    it('searches birthdate by the precision given, with prefixes', async () => {
      expect(ids(await search(node, 'Patient?birthdate=1990&_count=100')).sort()).toEqual([ibanez.id, obrien.id].sort());
      expect(ids(await search(node, 'Patient?birthdate=1990-01'))).toEqual([ibanez.id]);
      expect(ids(await search(node, 'Patient?birthdate=1975-06-15'))).toEqual([garcia.id]);
      expect(ids(await search(node, 'Patient?birthdate=gt1990-06-01&birthdate=lt1991'))).toEqual([obrien.id]);
      const bad = await node.request({ method: 'GET', url: '/fhir/R4/Patient?birthdate=1990-13' });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().issue[0].diagnostics).toContain('birthdate');
    });

    it('searches tokens with and without system, and ORs comma-separated values', async () => {
      expect(ids(await search(node, 'Patient?identifier=MRN-1'))).toEqual([garcia.id]);
      expect(ids(await search(node, 'Patient?identifier=urn:mrn|MRN-1'))).toEqual([garcia.id]);
      expect(ids(await search(node, 'Patient?identifier=urn:other|MRN-1'))).toEqual([]);
      expect(ids(await search(node, 'Patient?identifier=MRN-1,12345678Z')).sort()).toEqual([garcia.id, ibanez.id].sort());
      expect(ids(await search(node, 'Patient?gender=male&name=garcia'))).toEqual([garcia.id]);
      expect(ids(await search(node, 'Patient?language=en'))).toEqual([obrien.id]);
    });

    it('refuses unknown parameters, modifiers and sort keys with a clear 400', async () => {
      for (const query of ['Patient?shoe=42', 'Patient?gender:text=male', 'Patient?_sort=gender', 'Patient?_count=5000', 'Patient?_include=Patient:shoe']) {
        const res = await node.request({ method: 'GET', url: `/fhir/R4/${query}` });
        expect(res.statusCode, query).toBe(400);
        expect(res.json().issue[0].diagnostics.length, query).toBeGreaterThan(5);
      }
    });

    it('pages with _count and next/previous links, and counts with _total', async () => {
      for (let i = 0; i < 5; i++) await create(node, patient('Paginación', [`Hijo${i}`]));
      const first = await search(node, 'Patient?family=paginacion&_count=2&_sort=given&_total=accurate');
      expect(first.total).toBe(5);
      expect(first.entry).toHaveLength(2);
      const next = first.link.find((l: any) => l.relation === 'next').url as string;
      expect(next).toContain('_offset=2');
      const second = await search(node, `Patient${next.slice(next.indexOf('?'))}`);
      expect(second.entry).toHaveLength(2);
      expect(second.link.map((l: any) => l.relation)).toEqual(expect.arrayContaining(['previous', 'next']));
      const names = [...first.entry, ...second.entry].map((e: any) => e.resource.name[0].given[0]);
      expect(names).toEqual(['Hijo0', 'Hijo1', 'Hijo2', 'Hijo3']);
      const desc = await search(node, 'Patient?family=paginacion&_count=1&_sort=-given');
      expect(desc.entry[0].resource.name[0].given[0]).toBe('Hijo4');
      const count = await search(node, 'Patient?family=paginacion&_summary=count');
      expect(count.total).toBe(5);
      expect(count.entry).toEqual([]);
    });

    it('finds observations by patient, code, category and date, and includes the patient', async () => {
      await create(node, heartRate(garcia.id, 72, '2026-03-01T09:00:00Z'));
      await create(node, heartRate(garcia.id, 88, '2026-04-01T09:00:00Z'));
      await create(node, heartRate(ibanez.id, 64, '2026-03-01T09:00:00Z'));
      const mine = await search(node, `Observation?patient=${garcia.id}&code=http://loinc.org|8867-4&category=vital-signs&_sort=date`);
      expect(mine.entry.map((e: any) => e.resource.valueQuantity.value)).toEqual([72, 88]);
      const march = await search(node, `Observation?subject=Patient/${garcia.id}&date=2026-03`);
      expect(march.entry).toHaveLength(1);
      const withPatient = await search(node, `Observation?patient=${ibanez.id}&_include=Observation:patient`);
      expect(ids(withPatient, 'include')).toEqual([ibanez.id]);
    });

    it('finds appointments by date, practitioner, patient and status', async () => {
      const a = await create(node, appointment(garcia.id, doctor.id, '2026-05-04T09:00:00Z'));
      await create(node, appointment(ibanez.id, doctor.id, '2026-05-05T09:00:00Z'));
      expect(ids(await search(node, `Appointment?date=2026-05-04&practitioner=${doctor.id}`))).toEqual([a.id]);
      expect(ids(await search(node, `Appointment?patient=Patient/${garcia.id}&status=booked`))).toEqual([a.id]);
      expect(ids(await search(node, `Appointment?date=ge2026-05-04&date=lt2026-05-06&_count=10`))).toHaveLength(2);
      const included = await search(node, `Appointment?_id=${a.id}&_include=Appointment:patient&_include=Appointment:practitioner`);
      expect(ids(included, 'include').sort()).toEqual([garcia.id, doctor.id].sort());
    });

    it('supports every search parameter the CapabilityStatement lists', async () => {
      const metadata = (await node.app.inject({ method: 'GET', url: '/fhir/R4/metadata' })).json();
      for (const resource of metadata.rest[0].resource) {
        for (const param of resource.searchParam) {
          const value = { token: 'x', reference: '00000000-0000-4000-8000-000000000000', date: '2026', string: 'x' }[param.type as string];
          const res = await node.request({ method: 'GET', url: `/fhir/R4/${resource.type}?${param.name}=${value}` });
          expect(res.statusCode, `${resource.type}?${param.name}`).toBe(200);
        }
      }
    });
  });

  describe('scheduling', () => {
    it('never double-books a practitioner, even under concurrent requests', async () => {
      const doctor = await create(node, practitioner('Castillo'));
      const patients = await Promise.all([0, 1, 2, 3, 4].map((i) => create(node, patient('Reserva', [`P${i}`]))));
      const attempts = await Promise.all(patients.map((p, i) => node.request({ method: 'POST', url: '/fhir/R4/Appointment', payload: appointment(p.id, doctor.id, `2026-06-01T10:${String(i * 5).padStart(2, '0')}:00Z`, 30) })));
      const statuses = attempts.map((r) => r.statusCode);
      expect(statuses.filter((s) => s === 201)).toHaveLength(1);
      expect(statuses.filter((s) => s === 409)).toHaveLength(4);
      expect(attempts.find((r) => r.statusCode === 409)!.json().issue[0].diagnostics).toContain('overlaps');
      // Back to back is fine.
      const after = await node.request({ method: 'POST', url: '/fhir/R4/Appointment', payload: appointment(patients[1]!.id, doctor.id, '2026-06-01T11:00:00Z') });
      expect(after.statusCode).toBe(201);
    });

    it('never double-books a patient with two practitioners at once', async () => {
      const [d1, d2] = await Promise.all([create(node, practitioner('Uno')), create(node, practitioner('Dos'))]);
      const p = await create(node, patient('Doble', ['Cita']));
      expect((await node.request({ method: 'POST', url: '/fhir/R4/Appointment', payload: appointment(p.id, d1.id, '2026-06-02T10:00:00Z') })).statusCode).toBe(201);
      expect((await node.request({ method: 'POST', url: '/fhir/R4/Appointment', payload: appointment(p.id, d2.id, '2026-06-02T10:10:00Z') })).statusCode).toBe(409);
    });

    it('frees the time when an appointment is cancelled, and holds it again on reschedule', async () => {
      const doctor = await create(node, practitioner('Hughes'));
      const [p1, p2] = await Promise.all([create(node, patient('Cancela', ['Uno'])), create(node, patient('Cancela', ['Dos']))]);
      const first = await create(node, appointment(p1.id, doctor.id, '2026-06-03T10:00:00Z'));
      const cancelled = await node.request({ method: 'PUT', url: `/fhir/R4/Appointment/${first.id}`, payload: { ...first, status: 'cancelled', cancelationReason: { text: 'patient request' } }, headers: { 'if-match': 'W/"1"' } });
      expect(cancelled.statusCode).toBe(200);
      const second = await create(node, appointment(p2.id, doctor.id, '2026-06-03T10:00:00Z'));
      expect(second.status).toBe('booked');
      // Rescheduling the cancelled one back onto the taken time is refused and changes nothing.
      const clash = await node.request({ method: 'PUT', url: `/fhir/R4/Appointment/${first.id}`, payload: { ...(cancelled.json() as object), status: 'booked', cancelationReason: undefined }, headers: { 'if-match': 'W/"2"' } });
      expect(clash.statusCode).toBe(409);
      expect((await node.request({ method: 'GET', url: `/fhir/R4/Appointment/${first.id}` })).json().meta.versionId).toBe('2');
    });

    it('refuses an appointment that ends before it starts', async () => {
      const doctor = await create(node, practitioner('Revés'));
      const p = await create(node, patient('Revés', ['Ana']));
      const res = await node.request({ method: 'POST', url: '/fhir/R4/Appointment', payload: { ...appointment(p.id, doctor.id, '2026-06-04T10:00:00Z'), end: '2026-06-04T09:00:00Z' } });
      expect(res.statusCode).toBe(422);
    });
  });

  describe('clinical notes', () => {
    it('keeps a signed note read-only and takes corrections as addenda', async () => {
      const p = await create(node, patient('Nota', ['Clínica']));
      const doctor = await create(node, practitioner('Firma'));
      const draft = await create(node, {
        resourceType: 'Composition',
        status: 'preliminary',
        type: { coding: [{ system: 'http://loinc.org', code: '11506-3' }] },
        subject: { reference: `Patient/${p.id}` },
        date: '2026-06-05T10:00:00Z',
        author: [{ reference: `Practitioner/${doctor.id}` }],
        title: 'SOAP',
        section: soapSections(CLINICAL_NOTE_MARKER),
      });
      const url = `/fhir/R4/Composition/${draft.id}`;
      const unsigned = await node.request({ method: 'PUT', url, payload: { ...draft, status: 'final' }, headers: { 'if-match': 'W/"1"' } });
      expect(unsigned.statusCode).toBe(422);
      const signed = await node.request({
        method: 'PUT',
        url,
        payload: { ...draft, status: 'final', attester: [{ mode: 'legal', time: '2026-06-05T10:30:00Z', party: { reference: `Practitioner/${doctor.id}` } }] },
        headers: { 'if-match': 'W/"1"' },
      });
      expect(signed.statusCode).toBe(200);
      const edit = await node.request({ method: 'PUT', url, payload: { ...(signed.json() as object), title: 'changed' }, headers: { 'if-match': 'W/"2"' } });
      expect(edit.statusCode).toBe(409);
      expect(edit.json().issue[0].diagnostics).toContain('addendum');
      expect((await node.request({ method: 'DELETE', url })).statusCode).toBe(405);

      const addendum = await node.request({
        method: 'POST',
        url: '/fhir/R4/Composition',
        payload: { ...draft, id: undefined, meta: undefined, title: 'Addendum', relatesTo: [{ code: 'appends', targetReference: { reference: `Composition/${draft.id}` } }] },
      });
      expect(addendum.statusCode).toBe(201);
      const related = await search(node, `Composition?related-ref=${draft.id}`);
      expect(ids(related)).toEqual([addendum.json().id]);

      // Withdrawn as written in error: the same note, whatever order a client sends its fields in.
      const current = (await node.request({ method: 'GET', url })).json() as Record<string, unknown>;
      const reordered = Object.fromEntries(Object.entries({ ...current, status: 'entered-in-error' }).reverse());
      const withdrawn = await node.request({ method: 'PUT', url, payload: reordered, headers: { 'if-match': 'W/"2"' } });
      expect(withdrawn.statusCode).toBe(200);
      expect(withdrawn.json().status).toBe('entered-in-error');
    });

    it('refuses an addendum to a draft', async () => {
      const p = await create(node, patient('Borrador', ['Ana']));
      const draft = await create(node, { resourceType: 'Composition', status: 'preliminary', type: { text: 'SOAP' }, subject: { reference: `Patient/${p.id}` }, date: '2026-06-06', author: [{ display: 'x' }], title: 'draft' });
      const res = await node.request({
        method: 'POST',
        url: '/fhir/R4/Composition',
        payload: { resourceType: 'Composition', status: 'preliminary', type: { text: 'SOAP' }, subject: { reference: `Patient/${p.id}` }, date: '2026-06-06', author: [{ display: 'x' }], title: 'add', relatesTo: [{ code: 'appends', targetReference: { reference: `Composition/${draft.id}` } }] },
      });
      expect(res.statusCode).toBe(422);
      // A draft may be deleted.
      expect((await node.request({ method: 'DELETE', url: `/fhir/R4/Composition/${draft.id}` })).statusCode).toBe(204);
      expect((await node.request({ method: 'GET', url: `/fhir/R4/Composition/${draft.id}` })).statusCode).toBe(410);
    });

    it('refuses to delete a patient and says what to do instead', async () => {
      const p = await create(node, patient('Borrar', ['No']));
      const res = await node.request({ method: 'DELETE', url: `/fhir/R4/Patient/${p.id}` });
      expect(res.statusCode).toBe(405);
      expect(res.json().issue[0].diagnostics).toContain('active');
    });
  });

  describe('audit', () => {
    it('records who read which patient, with ids and never names', async () => {
      const p = await create(node, patient('Auditoría', ['Sofía']));
      await node.request({ method: 'GET', url: `/fhir/R4/Patient/${p.id}` });
      await node.request({ method: 'GET', url: '/fhir/R4/Patient?family=auditoria' });
      const rows = await node.ctx.store.db.selectFrom('audit_event').selectAll().where('patient', '=', `Patient/${p.id}`).orderBy('id').execute();
      expect(rows.map((r) => r.action)).toEqual(['create', 'read', 'search']);
      expect(rows.every((r) => r.actor === 'admin-token' && r.outcome === 'success')).toBe(true);
      expect(JSON.stringify(rows)).not.toContain('Auditor');
    });
  });

  it('has an indexed column for every search parameter', async () => {
    for (const def of RESOURCE_TYPES) {
      const { rows } = await sql<{ column_name: string }>`select column_name from information_schema.columns where table_name = ${def.table}`.execute(node.ctx.store.db);
      const columns = rows.map((r) => r.column_name);
      for (const param of def.params) expect(columns, `${def.type}.${param.code}`).toContain(param.column);
    }
  });
});

async function countRows(node: TestNode, table: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(node.ctx.store.db);
  return rows[0]!.n;
}
