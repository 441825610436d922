import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { twoPatientRecord, type TwoPatientRecord } from '../../privacy/two-patient-record.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';
import { COMPARTMENT_TYPES } from './everything.js';

const refsOf = (bundle: any): string[] => bundle.entry.map((e: any) => `${e.resource.resourceType}/${e.resource.id}`);

describe.each(STORE_KINDS)('Patient/$everything (%s)', (kind) => {
  let node: TestNode;
  let rec: TwoPatientRecord;
  beforeAll(async () => {
    node = await startTestNode(kind);
    rec = await twoPatientRecord(node);
  });
  afterAll(async () => node?.stop());

  const everything = (client: TwoPatientRecord['A']['client'], patientId: string, query = '') => client.get(`/fhir/R4/Patient/${patientId}/$everything${query}`);
  const exportEntries = (patientId: string) =>
    node.ctx.store.db.selectFrom('audit_event').selectAll().where('action', '=', 'export').where('patient', '=', `Patient/${patientId}`).orderBy('seq').execute();

  it('gives the patient exactly their compartment, Patient first, and nothing of anyone else', async () => {
    const res = await everything(rec.A.client, rec.A.patientId);
    expect(res.statusCode, res.body).toBe(200);
    const bundle = res.json();
    expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'searchset' });
    const refs = refsOf(bundle);
    expect(refs[0]).toBe(`Patient/${rec.A.patientId}`);
    expect(new Set(refs)).toEqual(rec.A.refs);
    expect(refs.length).toBe(rec.A.refs.size);
    for (const ref of rec.B.refs) expect(refs).not.toContain(ref);
    expect(bundle.link.find((l: any) => l.relation === 'next')).toBeUndefined();
  });

  it('gives the clinician in care the same compartment, and the bootstrap token too', async () => {
    expect(new Set(refsOf((await everything(rec.clinician.client, rec.A.patientId)).json()))).toEqual(rec.A.refs);
    const res = await node.request({ method: 'GET', url: `/fhir/R4/Patient/${rec.B.patientId}/$everything` });
    expect(new Set(refsOf(res.json()))).toEqual(rec.B.refs);
  });

  it('answers 404 for a record out of reach and 403 to an admin, reading nothing, and audits both refusals', async () => {
    const before = await exportEntries(rec.B.patientId);
    const mine = await everything(rec.A.client, rec.B.patientId);
    expect(mine.statusCode).toBe(404);
    expect(mine.json().resourceType).toBe('OperationOutcome');
    expect((await everything(rec.clinician.client, rec.B.patientId)).statusCode).toBe(404);
    const admin = await everything(rec.admin.client, rec.A.patientId);
    expect(admin.statusCode).toBe(403);
    expect(admin.json().issue[0].diagnostics).toMatch(/clinical content/);
    expect(await exportEntries(rec.B.patientId)).toHaveLength(before.length);
    const refusals = await node.ctx.store.db.selectFrom('audit_event').select(['actor', 'patient']).where('outcome', '=', 'denied').where('action', '=', 'read').where('patient', '=', `Patient/${rec.B.patientId}`).execute();
    expect(refusals.length).toBeGreaterThanOrEqual(2);
  });

  it('pages with _count and next links: every resource once, pages no larger than asked, each page audited as an export', async () => {
    const before = (await exportEntries(rec.A.patientId)).length;
    const seen: string[] = [];
    let url: string | undefined = `/fhir/R4/Patient/${rec.A.patientId}/$everything?_count=2`;
    let pages = 0;
    while (url) {
      const res = await rec.A.client.get(url);
      expect(res.statusCode).toBe(200);
      const bundle = res.json();
      expect(bundle.entry.length).toBeLessThanOrEqual(2);
      seen.push(...refsOf(bundle));
      const next = bundle.link.find((l: any) => l.relation === 'next')?.url as string | undefined;
      url = next ? next.slice(node.config.publicUrl.length) : undefined;
      pages += 1;
      expect(pages).toBeLessThan(20);
    }
    expect(seen.length).toBe(rec.A.refs.size);
    expect(new Set(seen)).toEqual(rec.A.refs);
    const entries = await exportEntries(rec.A.patientId);
    expect(entries.length - before).toBe(pages);
    expect(entries.at(-1)).toMatchObject({ actor: `Patient/${rec.A.patientId}`, resource_type: 'Patient', resource_id: rec.A.patientId, outcome: 'success' });
  });

  it('narrows by _type and _since', async () => {
    const observations = refsOf((await everything(rec.A.client, rec.A.patientId, '?_type=Observation,Condition')).json());
    expect(new Set(observations)).toEqual(new Set([...rec.A.refs].filter((r) => r.startsWith('Observation/') || r.startsWith('Condition/'))));

    const mark = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 5));
    const obs = [...rec.A.refs].find((r) => r.startsWith('Observation/'))!;
    const current = (await node.request({ method: 'GET', url: `/fhir/R4/${obs}` })).json();
    const updated = await node.request({ method: 'PUT', url: `/fhir/R4/${obs}`, payload: { ...current, status: 'amended' }, headers: { 'if-match': `W/"${current.meta.versionId}"` } });
    expect(updated.statusCode).toBe(200);
    const since = refsOf((await everything(rec.A.client, rec.A.patientId, `?_since=${encodeURIComponent(mark)}`)).json());
    expect(since).toEqual([obs]);
  });

  it('refuses bad parameters with a clear 400', async () => {
    for (const query of ['?_count=0', '?_count=5000', '?_type=Practitioner', '?_since=2026-01-01', '?_since=yesterday', '?_cursor=99.0', '?name=ana']) {
      const res = await everything(rec.A.client, rec.A.patientId, query);
      expect(res.statusCode, query).toBe(400);
      expect(res.json().resourceType).toBe('OperationOutcome');
    }
  });

  it('is listed in the CapabilityStatement as an operation on Patient', async () => {
    const cs = (await node.app.inject({ method: 'GET', url: '/fhir/R4/metadata' })).json();
    const patient = cs.rest[0].resource.find((r: any) => r.type === 'Patient');
    expect(patient.operation).toEqual([expect.objectContaining({ name: 'everything', definition: 'http://hl7.org/fhir/OperationDefinition/Patient-everything' })]);
    expect(COMPARTMENT_TYPES[0]).toBe('Patient');
    expect(COMPARTMENT_TYPES).not.toContain('Practitioner');
    expect(COMPARTMENT_TYPES).toEqual(expect.arrayContaining(['Appointment', 'Observation', 'DocumentReference', 'Composition']));
  });
});
