import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import { create, patient } from '../test-support/fixtures.js';

const PDF = Buffer.concat([Buffer.from('%PDF-1.7\n'), Buffer.from('informe de alta: ficticio\n'.repeat(200)), Buffer.from('%%EOF\n')]);
const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(64, 7)]);

describe.each(STORE_KINDS)('clinical documents, encrypted at rest (%s)', (kind) => {
  let node: TestNode;
  let patientId: string;
  beforeAll(async () => {
    node = await startTestNode(kind, { TELESALUD_MAX_UPLOAD_BYTES: String(64 * 1024) });
    patientId = (await create(node, patient('Documento', ['Ana']))).id;
  });
  afterAll(async () => {
    await node?.stop();
  });

  const upload = (body: Buffer | string, contentType: string, query = `patient=${patientId}&title=Informe%20de%20alta&category=clinical-note`) =>
    node.request({ method: 'POST', url: `/api/documents?${query}`, payload: body, headers: { 'content-type': contentType } });

  it('stores an upload encrypted and gives back the same bytes', async () => {
    const res = await upload(PDF, 'application/pdf');
    expect(res.statusCode).toBe(201);
    const doc = res.json();
    expect(doc.resourceType).toBe('DocumentReference');
    expect(doc.subject.reference).toBe(`Patient/${patientId}`);
    expect(doc.content[0].attachment).toMatchObject({ contentType: 'application/pdf', size: PDF.length, title: 'Informe de alta' });

    const row = await node.ctx.store.db.selectFrom('document_blob').selectAll().where('id', '=', doc.id).executeTakeFirstOrThrow();
    const stored = Buffer.from(row.ciphertext);
    expect(stored.length).toBe(PDF.length);
    expect(stored.includes(Buffer.from('informe de alta'))).toBe(false);
    expect(stored.subarray(0, 5).toString()).not.toBe('%PDF-');

    const download = await node.request({ method: 'GET', url: `/api/documents/${doc.id}/content` });
    expect(download.statusCode).toBe(200);
    expect(download.headers['content-type']).toBe('application/pdf');
    expect(download.headers['content-disposition']).toContain('attachment');
    expect(download.rawPayload.equals(PDF)).toBe(true);

    const found = await node.request({ method: 'GET', url: `/fhir/R4/DocumentReference?patient=${patientId}&category=clinical-note` });
    expect(found.json().entry.map((e: any) => e.resource.id)).toContain(doc.id);
    const audit = await node.ctx.store.db.selectFrom('audit_event').select('action').where('resource_id', '=', doc.id).orderBy('id').execute();
    expect(audit.map((a) => a.action)).toEqual(['create', 'upload', 'read', 'download']);
  });

  it('refuses altered ciphertext instead of returning altered data', async () => {
    const doc = (await upload(PNG, 'image/png')).json();
    await sql`update document_blob set ciphertext = set_byte(ciphertext, 3, (get_byte(ciphertext, 3) # 1)) where id = ${doc.id}`.execute(node.ctx.store.db);
    const download = await node.request({ method: 'GET', url: `/api/documents/${doc.id}/content` });
    expect(download.statusCode).toBe(500);
    expect(download.json().message).toContain('integrity');
    expect(download.rawPayload.includes(PNG.subarray(8, 16))).toBe(false);
  });

  it('refuses a document moved onto another record', async () => {
    const a = (await upload(PNG, 'image/png')).json();
    const b = (await upload(PDF, 'application/pdf')).json();
    await sql`update document_blob set ciphertext = x.ciphertext, nonce = x.nonce, tag = x.tag, wrapped_key = x.wrapped_key from (select * from document_blob where id = ${a.id}) x where document_blob.id = ${b.id}`.execute(node.ctx.store.db);
    expect((await node.request({ method: 'GET', url: `/api/documents/${b.id}/content` })).statusCode).toBe(500);
  });

  it('checks the content against its declared type, and the size limit', async () => {
    const before = await node.ctx.store.db.selectFrom('document_blob').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    expect((await upload(Buffer.from('MZ\x90\x00 not a pdf'), 'application/pdf')).statusCode).toBe(400);
    expect((await upload(Buffer.from('<html><script>alert(1)</script>'), 'text/html')).statusCode).toBe(415);
    expect((await upload(Buffer.from([0, 1, 2, 3]), 'text/plain')).statusCode).toBe(400);
    expect((await upload(Buffer.alloc(0), 'application/pdf')).statusCode).toBe(400);
    expect((await upload(Buffer.concat([PDF, Buffer.alloc(70 * 1024)]), 'application/pdf')).statusCode).toBe(413);
    expect((await upload(PDF, 'application/pdf', `patient=${patientId}`)).statusCode).toBe(400);
    expect((await upload(PDF, 'application/pdf', `patient=00000000-0000-4000-8000-000000000000&title=x`)).statusCode).toBe(404);
    expect((await upload(PDF, 'application/pdf', `patient=${patientId}&title=x&surprise=1`)).statusCode).toBe(400);
    const after = await node.ctx.store.db.selectFrom('document_blob').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    expect(Number(after.n)).toBe(Number(before.n));
  });

  it('answers 404 for a document that does not exist and 401 without credentials', async () => {
    expect((await node.request({ method: 'GET', url: '/api/documents/00000000-0000-4000-8000-000000000000/content' })).statusCode).toBe(404);
    expect((await node.app.inject({ method: 'GET', url: '/api/documents/00000000-0000-4000-8000-000000000000/content' })).statusCode).toBe(401);
  });
});
