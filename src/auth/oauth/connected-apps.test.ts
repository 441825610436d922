import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';
import { create, heartRate } from '../../test-support/fixtures.js';
import { SYSTEM_ACTOR } from '../actor.js';
import { AuthTestClient } from '../auth-test-client.js';
import { createAccount, type NewAccount } from '../accounts/account-service.js';
import { Repository } from '../../records/repository.js';
import { addClient, type NewAppClient, type NewClient } from './oauth-clients.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const REDIRECT = 'https://diario.example.org/callback';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

describe.each(STORE_KINDS)('connected apps: a person lists and revokes the apps they authorized (%s)', (kind) => {
  let node: TestNode;
  let fhirBase: string;
  let diary: NewAppClient;
  let offline: NewAppClient;
  let rosa: NewAccount;
  let pablo: NewAccount;
  let source = 0;
  const nextSource = () => `10.23.0.${++source}`;

  beforeAll(async () => {
    node = await startTestNode(kind, { TELESALUD_PUBLIC_URL: 'https://telesalud.clinica.example' });
    fhirBase = `${node.config.publicUrl}/fhir/R4`;
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    rosa = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'rosa.apps@example.org', role: 'patient', name: 'Rosa Conectada', password: PASSWORD });
    pablo = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'pablo.apps@example.org', role: 'patient', name: 'Pablo Conectado', password: PASSWORD });
    await create(node, heartRate(rosa.patientId!, 64, '2025-05-01T09:00:00Z'));
    diary = (await addClient(node.ctx.store.db, { name: 'Diario de salud', scopes: 'launch/patient patient/*.read', redirectUris: [REDIRECT], public: true })) as NewAppClient;
    offline = (await addClient(node.ctx.store.db, { name: 'Tensión en casa', scopes: 'launch/patient patient/Observation.rs patient/Observation.c patient/Patient.read offline_access', redirectUris: [REDIRECT], public: true })) as NewAppClient;
  });
  afterAll(async () => {
    await node?.stop();
  });

  const signedIn = async (account: NewAccount) => {
    const browser = new AuthTestClient(node);
    expect((await browser.signIn({ email: account.email, password: PASSWORD })).statusCode).toBe(200);
    return browser;
  };
  const token = (fields: Record<string, string>) => node.app.inject({ method: 'POST', url: '/oauth2/token', headers: FORM, payload: new URLSearchParams(fields).toString(), remoteAddress: nextSource() });
  const fhir = (accessToken: string, url: string) => node.app.inject({ method: 'GET', url: `/fhir/R4/${url}`, headers: { authorization: `Bearer ${accessToken}` } });
  const auditRows = (action: string) => sql<{ actor: string; outcome: string; patient: string | null; detail: any }>`select actor, outcome, patient, detail from audit_event where action = ${action} order by seq`.execute(node.ctx.store.db).then((r) => r.rows);
  const rowsOf = (clientId: string, accountId: string) =>
    sql<{ n: number }>`select (select count(*) from oauth_access_token where client_id = ${clientId} and account_id = ${accountId}) + (select count(*) from oauth_refresh_token where client_id = ${clientId} and account_id = ${accountId}) + (select count(*) from oauth_authorization_code where client_id = ${clientId} and account_id = ${accountId} and redeemed is null) as n`
      .execute(node.ctx.store.db)
      .then((r) => Number(r.rows[0]!.n));

  /** Approves the app in this browser and answers the code (not yet redeemed) and its verifier. */
  async function approve(browser: AuthTestClient, app: NewAppClient, scope: string): Promise<{ code: string; verifier: string }> {
    const { verifier, challenge } = pkce();
    const params = { response_type: 'code', client_id: app.client_id, redirect_uri: REDIRECT, scope, state: randomBytes(8).toString('hex'), code_challenge: challenge, code_challenge_method: 'S256', aud: fhirBase };
    const approved = await browser.post('/api/oauth/authorization', { ...params, decision: 'approve' });
    expect(approved.statusCode).toBe(200);
    return { code: new URL(approved.json().redirect).searchParams.get('code')!, verifier };
  }
  /** Approves and redeems: the tokens the app holds. */
  async function connect(browser: AuthTestClient, app: NewAppClient, scope: string): Promise<{ access_token: string; refresh_token?: string }> {
    const { code, verifier } = await approve(browser, app, scope);
    const res = await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, client_id: app.client_id });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  }

  it('lists each app holding a grant, with what it may reach, since when, whether it keeps access offline; only to its owner', async () => {
    const browser = await signedIn(rosa);
    const before = Date.now();
    await connect(browser, diary, 'launch/patient patient/*.read');
    const kept = await connect(browser, offline, 'launch/patient patient/Observation.rs patient/Observation.c patient/Patient.read offline_access');
    // A refresh: used again later, still one app.
    const refreshed = await token({ grant_type: 'refresh_token', refresh_token: kept.refresh_token!, client_id: offline.client_id });
    expect(refreshed.statusCode).toBe(200);

    const res = await browser.get('/api/oauth/apps');
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const apps = res.json().apps as any[];
    expect(apps.map((a) => a.name).sort()).toEqual(['Diario de salud', 'Tensión en casa']);
    const home = apps.find((a) => a.clientId === offline.client_id);
    expect(home).toEqual({
      clientId: offline.client_id,
      name: 'Tensión en casa',
      scopes: [
        { level: 'patient', type: 'Observation', interactions: ['c', 'r', 's'] },
        { level: 'patient', type: 'Patient', interactions: ['r', 's'] },
      ],
      launchPatient: true,
      offlineAccess: true,
      approved: expect.any(String),
      lastUsed: expect.any(String),
      accessUntil: expect.any(String),
    });
    expect(Date.parse(home.approved)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(home.lastUsed)).toBeGreaterThanOrEqual(Date.parse(home.approved));
    // Offline access lasts the refresh family's 30 days; the other app's only its 10-minute token.
    expect(Date.parse(home.accessUntil) - Date.parse(home.approved)).toBeGreaterThan(29 * 86_400_000);
    const plain = apps.find((a) => a.clientId === diary.client_id);
    expect(plain).toMatchObject({ offlineAccess: false, launchPatient: true, scopes: [{ level: 'patient', type: '*', interactions: ['r', 's'] }] });
    expect(Date.parse(plain.accessUntil) - Date.now()).toBeLessThanOrEqual(600_000);

    // Another patient sees none of them; a token (the app's own, or the installation's) sees no list at all.
    expect((await (await signedIn(pablo)).get('/api/oauth/apps')).json()).toEqual({ apps: [] });
    const asApp = await node.app.inject({ method: 'GET', url: '/api/oauth/apps', headers: { authorization: `Bearer ${refreshed.json().access_token}` } });
    expect(asApp.statusCode).toBe(403);
    expect((await node.request({ method: 'GET', url: '/api/oauth/apps' })).statusCode).toBe(403);
  });

  it('revokes an app: its access and refresh tokens stop at once, it leaves the list, the revocation is audited; other apps keep working', async () => {
    const browser = await signedIn(rosa);
    const other = await connect(browser, diary, 'launch/patient patient/*.read');
    const held = await connect(browser, offline, 'launch/patient patient/Observation.rs patient/Patient.read offline_access');
    // A second device's grant for the same app, and an approval the app has not redeemed yet: all of it ends.
    const second = await connect(browser, offline, 'launch/patient patient/Observation.rs offline_access');
    const pending = await approve(browser, offline, 'launch/patient patient/Observation.rs');
    expect((await fhir(held.access_token, `Patient/${rosa.patientId}`)).statusCode).toBe(200);

    // A change: the session's CSRF token is required, as for ending a session.
    const forged = await browser.send('DELETE', `/api/oauth/apps/${offline.client_id}`, undefined, { csrf: false });
    expect(forged.statusCode).toBe(403);
    expect((await fhir(held.access_token, `Patient/${rosa.patientId}`)).statusCode).toBe(200);

    const revoked = await browser.send('DELETE', `/api/oauth/apps/${offline.client_id}`);
    expect(revoked.statusCode).toBe(204);
    for (const accessToken of [held.access_token, second.access_token]) expect((await fhir(accessToken, `Observation?patient=${rosa.patientId}`)).statusCode).toBe(401);
    for (const refreshToken of [held.refresh_token!, second.refresh_token!]) {
      const refresh = await token({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: offline.client_id });
      expect(refresh.statusCode).toBe(400);
      expect(refresh.json()).toMatchObject({ error: 'invalid_grant' });
      expect(refresh.json().access_token).toBeUndefined();
    }
    const late = await token({ grant_type: 'authorization_code', code: pending.code, redirect_uri: REDIRECT, code_verifier: pending.verifier, client_id: offline.client_id });
    expect(late.json().error).toBe('invalid_grant');
    expect(await rowsOf(offline.client_id, rosa.id)).toBe(0);
    expect(((await browser.get('/api/oauth/apps')).json().apps as any[]).map((a) => a.clientId)).toEqual([diary.client_id]);
    // The app stays registered for everyone else, and Rosa's other app is untouched.
    expect((await fhir(other.access_token, `Patient/${rosa.patientId}`)).statusCode).toBe(200);

    expect(await auditRows('app-revoked')).toContainEqual({ actor: `account:${rosa.id}`, outcome: 'success', patient: `Patient/${rosa.patientId}`, detail: { app: `client:${offline.client_id}`, grants: 4 } }); // the two here, the pending approval, and the first test's
    // Revoking again changes nothing and says so.
    expect((await browser.send('DELETE', `/api/oauth/apps/${offline.client_id}`)).statusCode).toBe(404);
  });

  it("never revokes another person's grant: 404, their tokens keep working, and the attempt is audited", async () => {
    const rosaBrowser = await signedIn(rosa);
    const rosas = await connect(rosaBrowser, offline, 'launch/patient patient/Observation.rs offline_access');
    const pablos = await connect(await signedIn(pablo), offline, 'launch/patient patient/Observation.rs offline_access');

    const pabloBrowser = await signedIn(pablo);
    // Pablo revokes the app for himself only: Rosa's grant of the same app stays.
    expect((await pabloBrowser.send('DELETE', `/api/oauth/apps/${offline.client_id}`)).statusCode).toBe(204);
    expect((await fhir(pablos.access_token, `Observation?patient=${pablo.patientId}`)).statusCode).toBe(401);
    expect((await fhir(rosas.access_token, `Observation?patient=${rosa.patientId}`)).statusCode).toBe(200);
    const rosaRefresh = await token({ grant_type: 'refresh_token', refresh_token: rosas.refresh_token!, client_id: offline.client_id });
    expect(rosaRefresh.statusCode).toBe(200);

    // Again: he holds no grant of it any more, so there is nothing of his to revoke — and nothing of Rosa's is reachable.
    const again = await pabloBrowser.send('DELETE', `/api/oauth/apps/${offline.client_id}`);
    expect(again.statusCode).toBe(404);
    expect(again.json().error).toBe('not-found');
    expect((await fhir(rosaRefresh.json().access_token, `Observation?patient=${rosa.patientId}`)).statusCode).toBe(200);
    expect(await auditRows('app-revoked')).toContainEqual(expect.objectContaining({ actor: `account:${pablo.id}`, outcome: 'denied', detail: { app: `client:${offline.client_id}`, refused: 'no-grant' } }));
    // A malformed id never reaches the database.
    expect((await pabloBrowser.send('DELETE', '/api/oauth/apps/not-a-client')).statusCode).toBe(400);
    expect(((await rosaBrowser.get('/api/oauth/apps')).json().apps as any[]).map((a) => a.clientId)).toContain(offline.client_id);
  });

  it('leaves no token alive when a refresh and the revocation race', async () => {
    const browser = await signedIn(rosa);
    for (let round = 0; round < 5; round++) {
      const held = await connect(browser, offline, 'launch/patient patient/Observation.rs offline_access');
      const [refresh, revoke] = await Promise.all([
        token({ grant_type: 'refresh_token', refresh_token: held.refresh_token!, client_id: offline.client_id }),
        browser.send('DELETE', `/api/oauth/apps/${offline.client_id}`),
      ]);
      expect(revoke.statusCode).toBe(204);
      // Whichever came first, what the refresh gave (if anything) is dead too.
      if (refresh.statusCode === 200) {
        expect((await fhir(refresh.json().access_token, `Observation?patient=${rosa.patientId}`)).statusCode).toBe(401);
        expect((await token({ grant_type: 'refresh_token', refresh_token: refresh.json().refresh_token, client_id: offline.client_id })).statusCode).toBe(400);
      } else expect(refresh.json().error).toBe('invalid_grant');
      expect(await rowsOf(offline.client_id, rosa.id)).toBe(0);
    }
  });

  it('names an integration that is no longer registered in the reader\'s language, not in English', async () => {
    const system = (await addClient(node.ctx.store.db, { name: 'Laboratorio central', scopes: 'system/Observation.read' })) as NewClient;
    const issued = await node.app.inject({ method: 'POST', url: '/oauth2/token', headers: FORM, payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: system.client_id, client_secret: system.client_secret }).toString(), remoteAddress: nextSource() });
    expect((await fhir(issued.json().access_token, `Observation?patient=${rosa.patientId}`)).statusCode).toBe(200);
    await node.ctx.audit.settled();
    // Gone from the database altogether (a restore from before it, a clean-up by hand): only the audit trail still names it.
    await sql`delete from oauth_access_token where client_id = ${system.client_id}`.execute(node.ctx.store.db);
    await sql`delete from oauth_client where id = ${system.client_id}`.execute(node.ctx.store.db);
    const browser = await signedIn(rosa);
    const entries = (await browser.get('/api/me/record-access?_count=100')).json().entries as any[];
    const gone = entries.filter((e) => e.who.role === 'integration');
    expect(gone.length).toBeGreaterThan(0);
    // No English fallback from the server: the page words it ("portal.access.kinds.integration").
    for (const entry of gone) expect(entry.who).toEqual({ role: 'integration', kind: 'integration' });
  });
});
