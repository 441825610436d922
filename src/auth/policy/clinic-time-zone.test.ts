import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config.js';
import { Repository } from '../../records/repository.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';
import { SYSTEM_ACTOR } from '../actor.js';
import { createAccount } from '../accounts/account-service.js';
import { AuthTestClient } from '../auth-test-client.js';
import { currentTotpCode } from '../mfa/totp.js';
import { canonicalTimeZone } from './clinic-time-zone.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';

describe('clinic time zone names', () => {
  it('accepts IANA names in their canonical spelling and refuses anything else', () => {
    expect(canonicalTimeZone('America/Mexico_City')).toBe('America/Mexico_City');
    expect(canonicalTimeZone('america/mexico_city')).toBe('America/Mexico_City');
    expect(canonicalTimeZone('UTC')).toBe('UTC');
    // Three-part names too (ICU may answer with its own canonical alias).
    expect(canonicalTimeZone('America/Argentina/Buenos_Aires')).toMatch(/^America\/(Argentina\/)?Buenos_Aires$/);
    for (const bad of ['', 'Mars/Olympus', '+05:00', 'GMT+5 ', 'Europe/Madrid; drop table', 'Europe/../etc/passwd', 'x'.repeat(80), 'Europe/Madrid\n']) expect(canonicalTimeZone(bad), bad).toBeUndefined();
    expect(canonicalTimeZone(42)).toBeUndefined();
    expect(canonicalTimeZone(null)).toBeUndefined();
  });

  it('takes the installation default from TELESALUD_CLINIC_TIME_ZONE, checked at start, else UTC', () => {
    expect(loadConfig({}).clinicTimeZone).toBe('UTC');
    expect(loadConfig({ TELESALUD_CLINIC_TIME_ZONE: 'europe/madrid' }).clinicTimeZone).toBe('Europe/Madrid');
    expect(() => loadConfig({ TELESALUD_CLINIC_TIME_ZONE: 'Madrid' })).toThrow(/^TELESALUD_CLINIC_TIME_ZONE: "Madrid" is not an IANA time zone name/);
    expect(() => loadConfig({ TELESALUD_CLINIC_TIME_ZONE: '+02:00' })).toThrow(/TELESALUD_CLINIC_TIME_ZONE/);
  });
});

describe.each(STORE_KINDS)('clinic time zone in the policy (%s)', (kind) => {
  let node: TestNode;
  let adminClient: AuthTestClient;
  let doctor: AuthTestClient;
  let patient: AuthTestClient;
  beforeAll(async () => {
    node = await startTestNode(kind, { TELESALUD_CLINIC_TIME_ZONE: 'Europe/Madrid' });
    const db = node.ctx.store.db;
    const records = new Repository(db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const admin = await createAccount(db, records, node.ctx.keyRing, { email: 'admin@clinica.example.org', role: 'admin', name: 'Marta Ruiz', password: PASSWORD });
    const clinician = await createAccount(db, records, node.ctx.keyRing, { email: 'doctora@clinica.example.org', role: 'clinician', name: 'Lucía Fernández', password: PASSWORD });
    await createAccount(db, records, node.ctx.keyRing, { email: 'paciente@example.org', role: 'patient', name: 'Tomás Romero', password: PASSWORD });
    adminClient = new AuthTestClient(node);
    expect((await adminClient.signIn({ email: admin.email, password: PASSWORD, code: currentTotpCode(admin.totpSecret!) })).statusCode).toBe(200);
    doctor = new AuthTestClient(node);
    expect((await doctor.signIn({ email: clinician.email, password: PASSWORD, code: currentTotpCode(clinician.totpSecret!) })).statusCode).toBe(200);
    patient = new AuthTestClient(node);
    expect((await patient.signIn({ email: 'paciente@example.org', password: PASSWORD })).statusCode).toBe(200);
  });
  afterAll(async () => {
    await node?.stop();
  });

  const zoneSeenBy = async (client: AuthTestClient) => (await client.get('/api/auth/session')).json().clinic.timeZone;
  const policyChanges = () => node.ctx.store.db.selectFrom('audit_event').select(['outcome', 'detail']).where('action', '=', 'policy-changed').orderBy('seq').execute();

  it('gives every signed-in user the installation default until an admin sets one', async () => {
    expect(await zoneSeenBy(patient)).toBe('Europe/Madrid');
    expect(await zoneSeenBy(doctor)).toBe('Europe/Madrid');
    const policy = (await adminClient.get('/api/admin/policy')).json();
    expect(policy.clinic).toEqual({ timeZone: null });
    expect(policy.installationDefaults).toEqual({ clinicTimeZone: 'Europe/Madrid' });
  });

  it('refuses a zone that is not an IANA name with 400, naming the field, and changes nothing', async () => {
    const before = (await adminClient.get('/api/admin/policy')).json();
    const auditBefore = (await policyChanges()).length;
    for (const bad of ['Mars/Olympus', '+05:00', 42, { name: 'UTC' }]) {
      const res = await adminClient.send('PUT', '/api/admin/policy', { clinic: { timeZone: bad }, mfaRequired: { patient: true } });
      expect(res.statusCode).toBe(400);
      expect(res.json().issues.map((i: { field: string }) => i.field)).toEqual(['clinic.timeZone']);
    }
    const unknown = await adminClient.send('PUT', '/api/admin/policy', { clinic: { zone: 'UTC' } });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().issues.map((i: { field: string }) => i.field)).toEqual(['clinic.zone']);
    // Nothing changed, not even the valid part of a refused change; each refusal audited as failed.
    expect((await adminClient.get('/api/admin/policy')).json()).toEqual(before);
    expect(await zoneSeenBy(patient)).toBe('Europe/Madrid');
    const audit = await policyChanges();
    expect(audit.slice(auditBefore).map((a) => a.outcome)).toEqual(['failed', 'failed', 'failed', 'failed', 'failed']);
    // Only an admin sets it.
    expect((await doctor.send('PUT', '/api/admin/policy', { clinic: { timeZone: 'UTC' } })).statusCode).toBe(403);
  });

  it('applies an admin’s zone for everyone at once, in canonical spelling, audited; null goes back to the default', async () => {
    const res = await adminClient.send('PUT', '/api/admin/policy', { clinic: { timeZone: 'america/mexico_city' } });
    expect(res.statusCode).toBe(200);
    expect(res.json().clinic).toEqual({ timeZone: 'America/Mexico_City' });
    expect(await zoneSeenBy(patient)).toBe('America/Mexico_City');
    expect(await zoneSeenBy(doctor)).toBe('America/Mexico_City');
    expect(await zoneSeenBy(adminClient)).toBe('America/Mexico_City');
    expect((await policyChanges()).at(-1)).toMatchObject({ outcome: 'success', detail: { changed: ['clinic.timeZone'] } });
    // Other sections keep their values.
    expect(res.json().mfaRequired).toMatchObject({ patient: false, clinician: true, admin: true });

    const back = await adminClient.send('PUT', '/api/admin/policy', { clinic: { timeZone: null } });
    expect(back.statusCode).toBe(200);
    expect(back.json().clinic).toEqual({ timeZone: null });
    expect(await zoneSeenBy(patient)).toBe('Europe/Madrid');
  });
});
