import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import { laterCode, PASSWORD, twoPatientRecord, type TwoPatientRecord } from './two-patient-record.js';

describe.each(STORE_KINDS)('whole-record export (%s)', (kind) => {
  let node: TestNode;
  let rec: TwoPatientRecord;
  beforeAll(async () => {
    node = await startTestNode(kind);
    rec = await twoPatientRecord(node);
  });
  afterAll(async () => node?.stop());

  const auditOf = (patientId: string, action: string) =>
    node.ctx.store.db.selectFrom('audit_event').selectAll().where('action', '=', action).where('patient', '=', `Patient/${patientId}`).orderBy('seq').execute();

  it('refuses without re-authentication, and audits the refusal', async () => {
    const before = await auditOf(rec.A.patientId, 'export');
    expect((await rec.A.client.post(`/api/patients/${rec.A.patientId}/export`, {})).statusCode).toBe(400);
    const wrong = await rec.A.client.post(`/api/patients/${rec.A.patientId}/export`, { password: 'not-my-password-at-all' });
    expect(wrong.statusCode).toBe(403);
    expect(wrong.json().error).toBe('reauthentication-failed');
    expect(wrong.body).not.toContain('resourceType');
    // Without the CSRF token the session may not even try.
    expect((await rec.A.client.post(`/api/patients/${rec.A.patientId}/export`, { password: PASSWORD }, { csrf: false })).statusCode).toBe(403);
    const after = await auditOf(rec.A.patientId, 'export');
    expect(after.slice(before.length).map((e) => [e.outcome, (e.detail as any)?.refused])).toEqual([['denied', 'reauthentication-failed']]);
  });

  it('gives the patient their whole record as a collection Bundle with every document byte for byte, audited once as an export', async () => {
    const exportsBefore = (await auditOf(rec.A.patientId, 'export')).length;
    const downloadsBefore = (await auditOf(rec.A.patientId, 'download')).length;
    const res = await rec.A.client.post(`/api/patients/${rec.A.patientId}/export`, { password: PASSWORD });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
    expect(res.headers['content-disposition']).toMatch(new RegExp(`^attachment; filename="telesalud-record-${rec.A.patientId}-\\d{4}-\\d{2}-\\d{2}\\.json"$`));
    expect(res.headers['cache-control']).toBe('no-store');
    const bundle = res.json();
    expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'collection' });

    const resources = bundle.entry.filter((e: any) => e.resource.resourceType !== 'Binary');
    expect(new Set(resources.map((e: any) => `${e.resource.resourceType}/${e.resource.id}`))).toEqual(rec.A.refs);
    expect(resources).toHaveLength(rec.A.refs.size);
    for (const ref of rec.B.refs) expect(res.body).not.toContain(ref);

    // Each uploaded document: its DocumentReference points at a Binary in the bundle holding the same bytes.
    const byFullUrl = new Map(bundle.entry.map((e: any) => [e.fullUrl, e.resource]));
    const binaries = bundle.entry.filter((e: any) => e.resource.resourceType === 'Binary');
    expect(binaries).toHaveLength(rec.A.documents.size);
    for (const [id, bytes] of rec.A.documents) {
      const doc = resources.find((e: any) => e.resource.id === id).resource;
      const binary = byFullUrl.get(doc.content[0].attachment.url) as any;
      expect(binary).toMatchObject({ resourceType: 'Binary', contentType: doc.content[0].attachment.contentType, securityContext: { reference: `DocumentReference/${id}` } });
      expect(Buffer.from(binary.data, 'base64').equals(bytes)).toBe(true);
    }

    const exports = (await auditOf(rec.A.patientId, 'export')).slice(exportsBefore);
    expect(exports).toHaveLength(1);
    expect(exports[0]).toMatchObject({ actor: `Patient/${rec.A.patientId}`, outcome: 'success', resource_type: 'Patient', resource_id: rec.A.patientId });
    const detail = exports[0]!.detail as any;
    expect(detail).toMatchObject({ complete: true, documents: rec.A.documents.size, documentsFailed: 0, documentBytes: [...rec.A.documents.values()].reduce((n, b) => n + b.length, 0) });
    expect(Object.values(detail.resources as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(rec.A.refs.size);
    const downloads = (await auditOf(rec.A.patientId, 'download')).slice(downloadsBefore);
    expect(downloads.map((d) => d.resource_id).sort()).toEqual([...rec.A.documents.keys()].sort());
  });

  it('lets the clinician in care export on the patient’s behalf, with a fresh code', async () => {
    const res = await rec.clinician.client.post(`/api/patients/${rec.A.patientId}/export`, { password: PASSWORD, code: laterCode(rec.clinician.totpSecret) });
    expect(res.statusCode).toBe(200);
    const refs = res.json().entry.filter((e: any) => e.resource.resourceType !== 'Binary').map((e: any) => `${e.resource.resourceType}/${e.resource.id}`);
    expect(new Set(refs)).toEqual(rec.A.refs);
    const last = (await auditOf(rec.A.patientId, 'export')).at(-1)!;
    expect(last).toMatchObject({ actor: `Practitioner/${rec.clinician.practitionerId}`, outcome: 'success' });
  });

  it('refuses another patient’s record, a record out of the clinician’s care, an admin and the bootstrap token, sending nothing', async () => {
    const exportsOfB = (await auditOf(rec.B.patientId, 'export')).length;
    const other = await rec.A.client.post(`/api/patients/${rec.B.patientId}/export`, { password: PASSWORD });
    expect(other.statusCode).toBe(404);
    const outOfCare = await rec.stranger.client.post(`/api/patients/${rec.B.patientId}/export`, { password: PASSWORD, code: laterCode(rec.stranger.totpSecret) });
    expect(outOfCare.statusCode).toBe(404);
    const admin = await rec.admin.client.post(`/api/patients/${rec.A.patientId}/export`, { password: PASSWORD, code: laterCode(rec.admin.totpSecret) });
    expect(admin.statusCode).toBe(403);
    expect(admin.json().message).toMatch(/clinical content/);
    const token = await node.request({ method: 'POST', url: `/api/patients/${rec.A.patientId}/export`, payload: { password: PASSWORD } });
    expect(token.statusCode).toBe(403);
    for (const res of [other, outOfCare, admin, token]) expect(res.body).not.toContain('"resourceType":"Bundle"');
    expect(await auditOf(rec.B.patientId, 'export')).toHaveLength(exportsOfB);
    const deniedReads = await node.ctx.store.db.selectFrom('audit_event').select('actor').where('action', '=', 'read').where('outcome', '=', 'denied').where('patient', '=', `Patient/${rec.B.patientId}`).execute();
    expect(deniedReads.map((r) => r.actor)).toEqual(expect.arrayContaining([`Patient/${rec.A.patientId}`, `Practitioner/${rec.stranger.practitionerId}`]));
  });
});
