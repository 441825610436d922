import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../actor.js';
import { AuthTestClient } from '../auth-test-client.js';
import { currentTotpCode } from '../mfa/totp.js';
import { Repository } from '../../records/repository.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';
import { createAccount, type NewAccount } from './account-service.js';

const PASSWORDS = [
  'lluvia-tranquila-sobre-Montevideo-42',
  'girasoles-bajo-la-tormenta-de-Salta-97',
  'caracoles-violetas-en-Asuncion-318',
  'tortugas-ambar-del-rio-Parana-55',
  'cometas-de-papel-en-Valparaiso-81',
  'murcielagos-curiosos-de-Quito-264',
];
const DAY = 86_400_000;

describe.each(STORE_KINDS)('password change and expiry (%s)', (kind) => {
  let node: TestNode;
  let patientAccount: NewAccount;
  let clinician: NewAccount;
  beforeAll(async () => {
    node = await startTestNode(kind);
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    patientAccount = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'tomas.romero@example.org', role: 'patient', name: 'Tomás Romero', password: PASSWORDS[0]! });
    clinician = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'doctora@clinica.example.org', role: 'clinician', name: 'Lucía Fernández', password: PASSWORDS[0]! });
  });
  afterAll(async () => {
    await node?.stop();
  });

  const signedIn = async (email: string, password: string) => {
    const client = new AuthTestClient(node);
    expect((await client.signIn({ email, password })).statusCode).toBe(200);
    return client;
  };
  const change = (client: AuthTestClient, currentPassword: string, newPassword: string) => client.post('/api/auth/password', { currentPassword, newPassword });

  it('ends every other session and replaces the current one', async () => {
    const here = await signedIn('tomas.romero@example.org', PASSWORDS[0]!);
    const elsewhere = await signedIn('tomas.romero@example.org', PASSWORDS[0]!);
    const oldCookie = here.cookie;
    const oldCsrf = here.csrf;
    const res = await change(here, PASSWORDS[0]!, PASSWORDS[1]!);
    expect(res.statusCode).toBe(200);
    expect(here.cookie).toBeDefined();
    expect(here.cookie).not.toBe(oldCookie);
    expect(here.csrf).not.toBe(oldCsrf);
    expect((await here.get('/api/auth/session')).statusCode).toBe(200);
    expect((await elsewhere.get('/api/auth/session')).statusCode).toBe(401);
    const stale = new AuthTestClient(node);
    stale.cookie = oldCookie;
    expect((await stale.get('/api/auth/session')).statusCode).toBe(401);
    expect((await new AuthTestClient(node).signIn({ email: 'tomas.romero@example.org', password: PASSWORDS[0]! })).statusCode).toBe(401);
    expect((await new AuthTestClient(node).signIn({ email: 'tomas.romero@example.org', password: PASSWORDS[1]! })).statusCode).toBe(200);
    const events = await node.ctx.store.db.selectFrom('audit_event').select(['action', 'detail']).where('actor', '=', `account:${patientAccount.id}`).where('action', '=', 'password-changed').execute();
    expect(events).toHaveLength(1);
    expect(events[0]!.detail).toMatchObject({ sessionsEnded: 2 });
  });

  it('refuses a wrong current password, a weak one, one with the user\'s own name, and the last five', async () => {
    const client = await signedIn('tomas.romero@example.org', PASSWORDS[1]!);
    const wrong = await change(client, 'not-my-password-at-all', PASSWORDS[2]!);
    expect(wrong.statusCode).toBe(403);
    const codes = async (res: { json(): any; statusCode: number }) => {
      expect(res.statusCode).toBe(400);
      return res.json().problems.map((p: { code: string }) => p.code);
    };
    expect(await codes(await change(client, PASSWORDS[1]!, 'password123'))).toEqual(expect.arrayContaining(['too-short', 'breached']));
    expect(await codes(await change(client, PASSWORDS[1]!, 'TomasRomero-de-Montevideo-1987'))).toContain('contains-personal-info');
    expect(await codes(await change(client, PASSWORDS[1]!, PASSWORDS[1]!))).toContain('reused');
    // Walk through four more: the first is then the sixth most recent and usable again.
    let current = PASSWORDS[1]!;
    for (const next of PASSWORDS.slice(2)) {
      expect((await change(client, current, next)).statusCode).toBe(200);
      current = next;
    }
    expect(await codes(await change(client, current, PASSWORDS[1]!))).toContain('reused');
    expect((await change(client, current, PASSWORDS[0]!)).statusCode).toBe(200);
  });

  it('gives an expired password a session that can only change it, and warns before expiry', async () => {
    const db = node.ctx.store.db;
    // 170 days ago: within the 14-day warning before the 180-day staff expiry.
    await db.updateTable('account').set({ password_changed_at: new Date(Date.now() - 170 * DAY) }).where('id', '=', clinician.id).execute();
    const warned = await new AuthTestClient(node).signIn({ email: 'doctora@clinica.example.org', password: PASSWORDS[0]!, code: currentTotpCode(clinician.totpSecret!) });
    expect(warned.statusCode).toBe(200);
    expect(warned.json().passwordExpired).toBeUndefined();
    expect(Date.parse(warned.json().passwordExpiresAt)).toBeGreaterThan(Date.now());

    await db.updateTable('account').set({ password_changed_at: new Date(Date.now() - 181 * DAY), totp_last_step: null }).where('id', '=', clinician.id).execute();
    const client = new AuthTestClient(node);
    const res = await client.signIn({ email: 'doctora@clinica.example.org', password: PASSWORDS[0]!, code: currentTotpCode(clinician.totpSecret!) });
    expect(res.statusCode).toBe(200);
    expect(res.json().passwordExpired).toBe(true);
    expect((await client.get('/api/auth/session')).json().passwordExpired).toBe(true);
    for (const refused of [await client.get('/fhir/R4/Patient'), await client.get('/api/auth/sessions'), await client.post('/api/invitations', { email: 'a@example.org', name: 'A' })]) {
      expect(refused.statusCode).toBe(403);
      expect(refused.body).toContain('password-expired');
    }
    const changed = await change(client, PASSWORDS[0]!, PASSWORDS[3]!);
    expect(changed.statusCode).toBe(200);
    expect(changed.json().passwordExpired).toBeUndefined();
    expect((await client.get('/fhir/R4/Patient')).statusCode).toBe(200);
  });

  it('never expires patients\' passwords by default', async () => {
    await node.ctx.store.db.updateTable('account').set({ password_changed_at: new Date(Date.now() - 3000 * DAY) }).where('id', '=', patientAccount.id).execute();
    const res = await new AuthTestClient(node).signIn({ email: 'tomas.romero@example.org', password: PASSWORDS[0]! });
    expect(res.statusCode).toBe(200);
    expect(res.json().passwordExpired).toBeUndefined();
    expect(res.json().passwordExpiresAt).toBeUndefined();
  });

  it('needs the CSRF token to change a password', async () => {
    const client = await signedIn('tomas.romero@example.org', PASSWORDS[0]!);
    expect((await client.post('/api/auth/password', { currentPassword: PASSWORDS[0]!, newPassword: PASSWORDS[4]! }, { csrf: false })).statusCode).toBe(403);
    expect((await node.app.inject({ method: 'POST', url: '/api/auth/password', payload: { currentPassword: PASSWORDS[0]!, newPassword: PASSWORDS[4]! } })).statusCode).toBe(401);
  });
});
