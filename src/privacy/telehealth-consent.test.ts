import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount } from '../auth/accounts/account-service.js';
import { AuthTestClient } from '../auth/auth-test-client.js';
import { currentTotpCode } from '../auth/mfa/totp.js';
import { Repository } from '../records/repository.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import { PRIVACY_NOTICE_VERSION } from './privacy-notice.js';
import { hasTelehealthConsent } from './telehealth-consent.js';

const PASSWORD = 'acuerdo-claro-junto-al-Titicaca-19';

describe.each(STORE_KINDS)('telehealth consent (%s)', (kind) => {
  let node: TestNode;
  let patient: AuthTestClient;
  let patientRef: string;
  let clinician: AuthTestClient;
  beforeAll(async () => {
    node = await startTestNode(kind);
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const p = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'rosa.consiente@example.org', role: 'patient', name: 'Rosa Consiente', password: PASSWORD });
    const c = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'dr.consulta@clinica.example.org', role: 'clinician', name: 'Diego Consulta', password: PASSWORD });
    patientRef = `Patient/${p.patientId}`;
    patient = new AuthTestClient(node);
    expect((await patient.signIn({ email: 'rosa.consiente@example.org', password: PASSWORD })).statusCode).toBe(200);
    clinician = new AuthTestClient(node);
    expect((await clinician.signIn({ email: 'dr.consulta@clinica.example.org', password: PASSWORD, code: currentTotpCode(c.totpSecret!) })).statusCode).toBe(200);
  });
  afterAll(async () => node?.stop());

  const consentRows = () => node.ctx.store.db.selectFrom('telehealth_consent').selectAll().where('patient_ref', '=', patientRef).execute();
  const consentAudit = () => node.ctx.store.db.selectFrom('audit_event').selectAll().where('action', '=', 'consent-recorded').orderBy('seq').execute();

  it('round trip: asked for until given, recorded once with its audit entry, the first acceptance standing', async () => {
    const first = await patient.get('/api/me/consent');
    expect(first.statusCode).toBe(200);
    expect(first.json()).toEqual({ currentVersion: PRIVACY_NOTICE_VERSION, consent: null, required: true });
    expect(await hasTelehealthConsent(node.ctx.store.db, patientRef)).toBe(false);

    const given = await patient.post('/api/me/consent', { noticeVersion: PRIVACY_NOTICE_VERSION });
    expect(given.statusCode).toBe(201);
    const acceptedAt = given.json().consent.acceptedAt as string;
    expect(given.json()).toEqual({ currentVersion: PRIVACY_NOTICE_VERSION, consent: { noticeVersion: PRIVACY_NOTICE_VERSION, acceptedAt }, required: false });
    expect((await patient.get('/api/me/consent')).json()).toEqual({ currentVersion: PRIVACY_NOTICE_VERSION, consent: { noticeVersion: PRIVACY_NOTICE_VERSION, acceptedAt }, required: false });

    const again = await patient.post('/api/me/consent', { noticeVersion: PRIVACY_NOTICE_VERSION });
    expect(again.statusCode).toBe(200);
    expect(again.json().consent.acceptedAt).toBe(acceptedAt);

    const rows = await consentRows();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ notice_version: PRIVACY_NOTICE_VERSION, source: '127.0.0.1' });
    const audit = await consentAudit();
    expect(audit.map((a) => [a.actor, a.patient, a.outcome, (a.detail as any).noticeVersion, (a.detail as any).alreadyGiven])).toEqual([
      [patientRef, patientRef, 'success', PRIVACY_NOTICE_VERSION, false],
      [patientRef, patientRef, 'success', PRIVACY_NOTICE_VERSION, true],
    ]);

    expect(await hasTelehealthConsent(node.ctx.store.db, patientRef)).toBe(true);
    expect(await hasTelehealthConsent(node.ctx.store.db, patientRef, PRIVACY_NOTICE_VERSION)).toBe(true);
    // A new notice version asks again; another patient's consent is theirs alone.
    expect(await hasTelehealthConsent(node.ctx.store.db, patientRef, '2099-01-01')).toBe(false);
    expect(await hasTelehealthConsent(node.ctx.store.db, 'Patient/00000000-0000-4000-8000-000000000000')).toBe(false);
  });

  it('refuses an outdated notice, a missing CSRF token, bad bodies and anyone but a patient, recording nothing', async () => {
    const rowsBefore = (await consentRows()).length;
    const auditBefore = (await consentAudit()).length;
    const outdated = await patient.post('/api/me/consent', { noticeVersion: '2020-01-01' });
    expect(outdated.statusCode).toBe(409);
    expect(outdated.json().error).toBe('notice-outdated');
    expect((await patient.post('/api/me/consent', { noticeVersion: PRIVACY_NOTICE_VERSION }, { csrf: false })).statusCode).toBe(403);
    expect((await patient.post('/api/me/consent', {})).statusCode).toBe(400);
    expect((await patient.post('/api/me/consent', { noticeVersion: PRIVACY_NOTICE_VERSION, extra: true })).statusCode).toBe(400);
    expect((await clinician.get('/api/me/consent')).statusCode).toBe(403);
    expect((await clinician.post('/api/me/consent', { noticeVersion: PRIVACY_NOTICE_VERSION })).statusCode).toBe(403);
    expect((await node.request({ method: 'POST', url: '/api/me/consent', payload: { noticeVersion: PRIVACY_NOTICE_VERSION } })).statusCode).toBe(403);
    expect((await node.app.inject({ method: 'GET', url: '/api/me/consent' })).statusCode).toBe(401);
    expect(await consentRows()).toHaveLength(rowsBefore);
    expect(await consentAudit()).toHaveLength(auditBefore);
  });
});
