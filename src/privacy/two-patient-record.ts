import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount } from '../auth/accounts/account-service.js';
import { AuthTestClient } from '../auth/auth-test-client.js';
import { currentTotpCode } from '../auth/mfa/totp.js';
import { Repository } from '../records/repository.js';
import { appointment, create, heartRate, practitioner } from '../test-support/fixtures.js';
import type { TestNode } from '../test-support/test-node.js';

/**
 * For tests: two patients with accounts and a small record each (appointment, encounter, vital
 * signs, a condition, an allergy, uploaded documents, one DocumentReference without stored
 * bytes), a clinician in care of A only, one in care of nobody, and an admin — all signed in.
 */
export const PASSWORD = 'brisa-templada-sobre-Cartagena-77';
export const PDF = Buffer.concat([Buffer.from('%PDF-1.7\n'), Buffer.from('informe ficticio de exportación\n'.repeat(300)), Buffer.from('%%EOF\n')]);
export const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from(Array.from({ length: 4099 }, (_, i) => (i * 37) % 256))]);

export interface RecordOf {
  patientId: string;
  /** `Type/id` of everything in this patient's compartment, the Patient included. */
  refs: Set<string>;
  /** Uploaded documents: DocumentReference id → the bytes sent. */
  documents: Map<string, Buffer>;
  client: AuthTestClient;
}

export interface TwoPatientRecord {
  A: RecordOf;
  B: RecordOf;
  clinician: { client: AuthTestClient; practitionerId: string; totpSecret: string };
  /** A clinician in care of nobody. */
  stranger: { client: AuthTestClient; practitionerId: string; totpSecret: string };
  admin: { client: AuthTestClient; totpSecret: string };
}

/** A TOTP code of a later step than the one a sign-in just used (a used step can't be replayed). */
export const laterCode = (secret: string, steps = 1) => currentTotpCode(secret, new Date(Date.now() + steps * 30_000));

export async function twoPatientRecord(node: TestNode): Promise<TwoPatientRecord> {
  const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
  const account = (email: string, role: string, name: string) => createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email, role, name, password: PASSWORD });
  const a = await account('ana.export@example.org', 'patient', 'Ana Exportación');
  const b = await account('beto.export@example.org', 'patient', 'Beto Ajeno');
  const c = await account('dra.export@clinica.example.org', 'clinician', 'Clara Médica');
  const s = await account('dr.ajeno@clinica.example.org', 'clinician', 'Sergio Ajeno');
  const admin = await account('admin.export@clinica.example.org', 'admin', 'Adela Admin');
  const other = (await create(node, practitioner('Lejano'))).id as string;

  const A = await recordFor(node, a.patientId!, c.practitionerId!, '2030-05-06T09:00:00Z', true);
  const B = await recordFor(node, b.patientId!, other, '2030-05-06T10:00:00Z', false);

  const signedIn = async (email: string, totpSecret?: string) => {
    const client = new AuthTestClient(node);
    const res = await client.signIn({ email, password: PASSWORD, ...(totpSecret ? { code: currentTotpCode(totpSecret) } : {}) });
    if (res.statusCode !== 200) throw new Error(`sign-in of ${email}: ${res.statusCode} ${res.body}`);
    return client;
  };
  return {
    A: { ...A, client: await signedIn('ana.export@example.org') },
    B: { ...B, client: await signedIn('beto.export@example.org') },
    clinician: { client: await signedIn('dra.export@clinica.example.org', c.totpSecret), practitionerId: c.practitionerId!, totpSecret: c.totpSecret! },
    stranger: { client: await signedIn('dr.ajeno@clinica.example.org', s.totpSecret), practitionerId: s.practitionerId!, totpSecret: s.totpSecret! },
    admin: { client: await signedIn('admin.export@clinica.example.org', admin.totpSecret), totpSecret: admin.totpSecret! },
  };
}

async function recordFor(node: TestNode, patientId: string, practitionerId: string, start: string, full: boolean): Promise<Omit<RecordOf, 'client'>> {
  const refs = new Set([`Patient/${patientId}`]);
  const documents = new Map<string, Buffer>();
  const add = async (resource: Record<string, unknown>) => {
    const created = await create(node, resource);
    refs.add(`${created.resourceType}/${created.id}`);
    return created;
  };
  const subject = { reference: `Patient/${patientId}` };
  await add(appointment(patientId, practitionerId, start));
  await add(heartRate(patientId, 71, '2030-05-06T09:05:00Z'));
  await add(heartRate(patientId, 88, '2030-05-07T09:05:00Z'));
  const upload = async (bytes: Buffer, contentType: string, title: string) => {
    const res = await node.request({ method: 'POST', url: `/api/documents?patient=${patientId}&title=${encodeURIComponent(title)}&category=laboratory`, payload: bytes, headers: { 'content-type': contentType } });
    if (res.statusCode !== 201) throw new Error(`upload: ${res.statusCode} ${res.body}`);
    const id = res.json().id as string;
    refs.add(`DocumentReference/${id}`);
    documents.set(id, bytes);
  };
  await upload(PDF, 'application/pdf', 'Informe');
  if (full) {
    await add({ resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'VR' }, subject, period: { start: '2030-05-06T09:00:00Z' } });
    await add({ resourceType: 'Condition', code: { text: 'Hipertensión' }, subject, recordedDate: '2030-05-06' });
    await add({
      resourceType: 'AllergyIntolerance',
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
      code: { text: 'Penicilina' },
      patient: subject,
    });
    await add({ resourceType: 'DocumentReference', status: 'current', subject, content: [{ attachment: { contentType: 'text/plain', title: 'nota-externa.txt' } }] });
    await upload(PNG, 'image/png', 'Radiografía');
  }
  return { patientId, refs, documents };
}
