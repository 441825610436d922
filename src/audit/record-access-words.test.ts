import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount, type NewAccount } from '../auth/accounts/account-service.js';
import { SESSION_COOKIE } from '../auth/sessions/session-store.js';
import { Repository } from '../records/repository.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import { portalEn, portalEs } from '../../web/src/portal/messages.js';
import type { AuditAction } from './audit-log.js';

const PASSWORD = 'pradera-luminosa-junto-al-Paraná-77';
const UNREGISTERED_APP = 'client:tsc-0123456789abcdef01234567';

/**
 * Every audit action, and whether an entry of it can name a patient (and so reach their
 * "who accessed my record" page). A new action does not type-check here until someone decides.
 */
const REACHES_A_PATIENT: Record<AuditAction, boolean> = {
  read: true, vread: true, search: true, history: true, create: true, update: true, delete: true, download: true, upload: true, seed: true,
  'sign-in': true, 'sign-in-failed': true, 'account-locked': true, 'sign-out': true, 'sessions-ended': true, 'password-changed': true, 'password-change-refused': true,
  'mfa-enrolled': true, 'mfa-disabled': true, 'mfa-reset': true, 'recovery-codes-generated': true, 'passkey-registered': true, 'passkey-removed': true,
  'invitation-created': true, 'invitation-accepted': true, 'invitation-revoked': true, 'account-unlocked': true, 'account-disabled': true, 'account-enabled': true,
  'consult-join': true, 'consult-admit': true, 'consult-decline': true, 'consult-remove': true, 'consult-end': true, 'consult-invite': true, 'consult-guest-link': true,
  'notification-sent': true, 'app-authorized': true, 'app-revoked': true, 'audit-search': true, 'break-glass': true, 'emergency-lookup': true,
  'care-assigned': true, 'care-unassigned': true, 'shield-block': true, export: true, 'consent-recorded': true,
  // Installation-wide: never about one patient's record.
  'policy-changed': false, 'token-issued': false, 'token-refused': false, 'client-added': false, 'client-revoked': false, 'audit-export': false,
  'shield-ban': false, 'rate-limited': false, 'audit-truncated': false, 'key-rotation-started': false, 'key-rotation-finished': false, 'key-retired': false, 'audit-key-rotated': false,
};

describe('the portal words every action a patient can see, in Spanish and English', () => {
  const shown = (Object.keys(REACHES_A_PATIENT) as AuditAction[]).filter((a) => REACHES_A_PATIENT[a]);
  it.each(shown)('%s', (action) => {
    const en = (portalEn.access.actions as Record<string, string>)[action];
    const es = (portalEs.access.actions as Record<string, string>)[action];
    expect(en, 'English').toBeTruthy();
    expect(es, 'Spanish').toBeTruthy();
    expect(es).not.toBe(en);
  });
});

describe.each(STORE_KINDS)('who accessed my record: kinds, never English fallback words (%s)', (kind) => {
  let node: TestNode;
  let ana: NewAccount;
  let staff: NewAccount;
  let cookie: string;

  beforeAll(async () => {
    node = await startTestNode(kind);
    const db = node.ctx.store.db;
    const records = new Repository(db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    // Neither has a name on record: the page must still say who, in the reader's language.
    ana = await createAccount(db, records, node.ctx.keyRing, { email: 'ana@example.org', role: 'patient', password: PASSWORD });
    staff = await createAccount(db, records, node.ctx.keyRing, { email: 'sin-nombre@clinica.example.org', role: 'clinician', password: PASSWORD });
    const res = await node.app.inject({ method: 'POST', url: '/api/auth/sign-in', payload: { email: ana.email, password: PASSWORD }, remoteAddress: '10.20.0.1' });
    expect(res.statusCode).toBe(200);
    cookie = res.cookies.find((c) => c.name === SESSION_COOKIE)!.value;
    const patient = `Patient/${ana.patientId}`;
    const at = { outcome: 'success' as const, patient, source: '10.20.0.9', requestId: 'words' };
    await node.ctx.audit.record({ ...at, actor: 'admin-token', action: 'mfa-reset', resourceType: 'Account', resourceId: ana.id });
    await node.ctx.audit.record({ ...at, actor: 'anonymous', action: 'shield-block' });
    await node.ctx.audit.record({ ...at, actor: `Practitioner/${staff.practitionerId}`, action: 'read', resourceType: 'Patient', resourceId: ana.patientId! });
    await node.ctx.audit.record({ ...at, actor: `account:${staff.id}`, action: 'consult-invite' });
    await node.ctx.audit.record({ ...at, actor: UNREGISTERED_APP, action: 'read', resourceType: 'Observation', resourceId: ana.patientId! });
    await node.ctx.audit.record({ ...at, actor: patient, action: 'app-authorized', detail: { client: UNREGISTERED_APP } });
    await node.ctx.audit.record({ ...at, actor: 'system:mail', action: 'notification-sent' });
    await node.ctx.audit.drain();
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('sends a kind for every actor it can not name, and no words of its own', async () => {
    const res = await node.app.inject({ method: 'GET', url: '/api/me/record-access?_count=100', cookies: { [SESSION_COOKIE]: cookie } });
    expect(res.statusCode).toBe(200);
    const entries = res.json().entries as { action: string; who: Record<string, unknown>; through?: unknown }[];
    const who = (action: string) => entries.find((e) => e.action === action)?.who;
    expect(who('mfa-reset')).toEqual({ role: 'admin', kind: 'installation-token' });
    expect(who('shield-block')).toEqual({ role: 'other', kind: 'unknown' });
    expect(entries.find((e) => e.action === 'read' && e.who.kind === 'staff')?.who).toEqual({ role: 'clinician', kind: 'staff', reference: `Practitioner/${staff.practitionerId}` });
    expect(who('consult-invite')).toEqual({ role: 'clinician', kind: 'staff' });
    expect(entries.find((e) => e.action === 'read' && e.who.kind === 'integration')?.who).toEqual({ role: 'integration', kind: 'integration' });
    expect(entries.find((e) => e.action === 'app-authorized')).toMatchObject({ who: { role: 'patient', kind: 'self' }, through: { client: UNREGISTERED_APP } });
    expect(who('app-authorized')).not.toHaveProperty('display');
    expect(who('notification-sent')).toEqual({ role: 'system', kind: 'system', display: 'telesalud' });
    for (const word of ['administrator (installation token)', '"other"', '"clinician"', '"patient"']) {
      expect(JSON.stringify(entries.map((e) => e.who.display ?? null)), word).not.toContain(word);
    }
    // Every action the page got has words in both catalogues.
    for (const e of entries) {
      expect((portalEn.access.actions as Record<string, string>)[e.action], e.action).toBeTruthy();
      expect((portalEs.access.actions as Record<string, string>)[e.action], e.action).toBeTruthy();
      expect((portalEs.access.kinds as Record<string, string>)[e.who.kind as string], String(e.who.kind)).toBeTruthy();
    }
  });
});
