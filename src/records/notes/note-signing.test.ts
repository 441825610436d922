import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../../auth/actor.js';
import { createAccount, type NewAccount } from '../../auth/accounts/account-service.js';
import { SESSION_COOKIE } from '../../auth/sessions/session-store.js';
import { appointment, create } from '../../test-support/fixtures.js';
import { startTestNode, type TestNode } from '../../test-support/test-node.js';
import { Repository } from '../repository.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const LOINC = 'http://loinc.org';

/**
 * Signing a visit note as the clinician workspace does it, through a clinician's session:
 * a draft is edited freely, signing makes it final with the clinician as legal attester, a
 * signed note can't be changed (only withdrawn as entered-in-error) or deleted, corrections are
 * addenda — and nobody signs in another clinician's name.
 */
describe('signing visit notes as a clinician', () => {
  let node: TestNode;
  const accounts: Record<string, NewAccount & { cookie: string; csrf: string }> = {};
  let patientRef: string;

  beforeAll(async () => {
    node = await startTestNode('pglite');
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    for (const [key, role, name] of [['doctor', 'clinician', 'Lucía Fernández'], ['colleague', 'clinician', 'Pablo Ruiz'], ['patient', 'patient', 'Tomás Romero']] as const) {
      const account = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: `${key}@clinica.example.org`, role, name, password: PASSWORD });
      const session = await node.ctx.sessions.create({ id: account.id, role: account.role }, { source: '127.0.0.1' });
      accounts[key] = { ...account, cookie: session.token, csrf: session.csrfToken };
    }
    patientRef = `Patient/${accounts.patient!.patientId}`;
    // Both clinicians see the patient: each has an appointment with them.
    await create(node, appointment(accounts.patient!.patientId!, accounts.doctor!.practitionerId!, '2027-02-01T09:00:00Z'));
    await create(node, appointment(accounts.patient!.patientId!, accounts.colleague!.practitionerId!, '2027-02-01T10:00:00Z'));
  });

  afterAll(async () => {
    await node?.stop();
  });

  const as = (who: string, method: 'POST' | 'PUT' | 'DELETE' | 'GET', url: string, payload?: unknown, ifMatch?: string) =>
    node.app.inject({
      method,
      url,
      ...(payload !== undefined ? { payload: payload as Record<string, unknown>, headers: { 'content-type': 'application/fhir+json', 'x-csrf-token': accounts[who]!.csrf, ...(ifMatch ? { 'if-match': ifMatch } : {}) } } : { headers: { 'x-csrf-token': accounts[who]!.csrf } }),
      cookies: { [SESSION_COOKIE]: accounts[who]!.cookie },
    });

  const practitioner = (who: string) => `Practitioner/${accounts[who]!.practitionerId}`;
  const note = (who: string, status: string, extra: Record<string, unknown> = {}) => ({
    resourceType: 'Composition',
    status,
    type: { coding: [{ system: LOINC, code: '11506-3' }] },
    subject: { reference: patientRef },
    date: new Date().toISOString(),
    author: [{ reference: practitioner(who) }],
    title: 'Nota de la visita',
    section: [{ title: 'Subjetivo', code: { coding: [{ system: LOINC, code: '61150-9' }] }, text: { status: 'additional', div: '<div xmlns="http://www.w3.org/1999/xhtml"><p>Tos seca</p></div>' } }],
    ...extra,
  });
  const signature = (who: string) => ({ attester: [{ mode: 'legal', time: new Date().toISOString(), party: { reference: practitioner(who) } }] });

  it('saves a draft, signs it in the clinician\'s name, then keeps it read-only and takes an addendum', async () => {
    const draft = await as('doctor', 'POST', '/fhir/R4/Composition', note('doctor', 'preliminary'));
    expect(draft.statusCode).toBe(201);
    const url = `/fhir/R4/Composition/${draft.json().id}`;
    const edited = await as('doctor', 'PUT', url, { ...(draft.json() as object), title: 'Nota (borrador)' }, 'W/"1"');
    expect(edited.statusCode).toBe(200);
    const signed = await as('doctor', 'PUT', url, { ...(edited.json() as object), status: 'final', ...signature('doctor') }, 'W/"2"');
    expect(signed.statusCode).toBe(200);
    expect(signed.json()).toMatchObject({ status: 'final', attester: [{ mode: 'legal', party: { reference: practitioner('doctor') } }] });

    const changed = await as('doctor', 'PUT', url, { ...(signed.json() as object), title: 'Nota cambiada después de firmar' }, 'W/"3"');
    expect(changed.statusCode).toBe(409);
    expect(changed.json().issue[0].diagnostics).toContain('addendum');
    expect((await as('doctor', 'DELETE', url)).statusCode).toBe(405);
    expect((await as('doctor', 'GET', url)).json().title).toBe('Nota (borrador)');

    // Another clinician caring for the patient may add an addendum, signed in their own name.
    const addendum = await as('colleague', 'POST', '/fhir/R4/Composition', note('colleague', 'final', { ...signature('colleague'), relatesTo: [{ code: 'appends', targetReference: { reference: `Composition/${draft.json().id}` } }] }));
    expect(addendum.statusCode).toBe(201);
  });

  it('refuses a note signed in another clinician\'s name, changing nothing, and audits the attempt', async () => {
    const forged = await as('colleague', 'POST', '/fhir/R4/Composition', note('doctor', 'final', signature('doctor')));
    expect(forged.statusCode).toBe(422);
    expect(forged.json().issue[0]).toMatchObject({ code: 'business-rule', expression: ['Composition.attester'] });
    expect(forged.json().issue[0].diagnostics).toContain(practitioner('colleague'));

    const draft = await as('doctor', 'POST', '/fhir/R4/Composition', note('doctor', 'preliminary'));
    const url = `/fhir/R4/Composition/${draft.json().id}`;
    const signedForAnother = await as('doctor', 'PUT', url, { ...(draft.json() as object), status: 'final', attester: [...signature('doctor').attester, ...signature('colleague').attester] }, 'W/"1"');
    expect(signedForAnother.statusCode).toBe(422);
    expect((await as('doctor', 'GET', url)).json().status).toBe('preliminary');

    await node.ctx.audit.drain();
    const denied = await node.ctx.store.db
      .selectFrom('audit_event')
      .select(['actor', 'action', 'patient', 'outcome'])
      .where('resource_type', '=', 'Composition')
      .where('outcome', '=', 'denied')
      .execute();
    expect(denied).toContainEqual({ actor: practitioner('colleague'), action: 'create', patient: patientRef, outcome: 'denied' });
    expect(denied).toContainEqual({ actor: practitioner('doctor'), action: 'update', patient: patientRef, outcome: 'denied' });
  });

  it('refuses to sign without a legal attester', async () => {
    const unsigned = await as('doctor', 'POST', '/fhir/R4/Composition', note('doctor', 'final'));
    expect(unsigned.statusCode).toBe(422);
    expect(unsigned.json().issue[0].diagnostics).toContain('attester');
  });
});
