import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../cli/main.js';
import { pgliteTemplateDir } from '../../test-support/paths.js';
import { ensureWebBuild } from '../../../test/browser/support/browser-node.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';
import { create, heartRate, patient } from '../../test-support/fixtures.js';
import { SYSTEM_ACTOR } from '../actor.js';
import { AuthTestClient } from '../auth-test-client.js';
import { createAccount, type NewAccount } from '../accounts/account-service.js';
import { currentTotpCode } from '../mfa/totp.js';
import { Repository } from '../../records/repository.js';
import { addClient, revokeClient, type NewAppClient } from './oauth-clients.js';
import { AUDIT_ACTOR_SYSTEM, toAuditEvent } from '../../audit/audit-event-fhir.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const REDIRECT = 'https://diario.example.org/callback';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** What an app makes before sending the user away: a secret verifier and its S256 challenge. */
function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

describe.each(STORE_KINDS)('SMART App Launch: authorization code with PKCE (%s)', (kind) => {
  let node: TestNode;
  let fhirBase: string;
  let app: NewAppClient;
  let confidentialApp: NewAppClient;
  let rosa: NewAccount;
  let clinician: NewAccount;
  let otherPatientId: string;
  let rosaObservationId: string;
  let source = 0;
  const nextSource = () => `10.19.0.${++source}`;

  beforeAll(async () => {
    // A public host name, as in production: the shield refuses URLs naming localhost in parameters (aud).
    node = await startTestNode(kind, { TELESALUD_PUBLIC_URL: 'https://telesalud.clinica.example' });
    fhirBase = `${node.config.publicUrl}/fhir/R4`;
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    rosa = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'rosa.app@example.org', role: 'patient', name: 'Rosa Aplicación', password: PASSWORD });
    clinician = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'dra.app@clinica.example.org', role: 'clinician', name: 'Inés Consulta', password: PASSWORD });
    otherPatientId = (await create(node, patient('Ajena', ['Paciente']))).id;
    rosaObservationId = (await create(node, heartRate(rosa.patientId!, 64, '2025-05-01T09:00:00Z'))).id;
    await create(node, heartRate(otherPatientId, 90, '2025-05-01T09:00:00Z'));
    app = (await addClient(node.ctx.store.db, { name: 'Diario de salud', scopes: 'launch/patient patient/*.read', redirectUris: [REDIRECT], public: true })) as NewAppClient;
    confidentialApp = (await addClient(node.ctx.store.db, { name: 'Portal del seguro', scopes: 'launch/patient patient/Patient.read user/*.read', redirectUris: ['https://seguro.example.org/cb'] })) as NewAppClient;
  });
  afterAll(async () => {
    await node?.stop();
  });

  // A TOTP code is good once: staff sign in once and keep the browser.
  const staffBrowsers = new Map<string, AuthTestClient>();
  const signedIn = async (account: NewAccount) => {
    if (account.totpSecret && staffBrowsers.has(account.id)) return staffBrowsers.get(account.id)!;
    const browser = new AuthTestClient(node);
    const res = await browser.signIn({ email: account.email, password: PASSWORD, ...(account.totpSecret ? { code: currentTotpCode(account.totpSecret) } : {}) });
    expect(res.statusCode).toBe(200);
    if (account.totpSecret) staffBrowsers.set(account.id, browser);
    return browser;
  };
  const authorizeParams = (overrides: Record<string, string | undefined> = {}, challenge = pkce().challenge) => {
    const params: Record<string, string> = {};
    const all = { response_type: 'code', client_id: app.client_id, redirect_uri: REDIRECT, scope: 'launch/patient patient/*.read openid fhirUser', state: randomBytes(16).toString('hex'), code_challenge: challenge, code_challenge_method: 'S256', aud: fhirBase, ...overrides };
    for (const [k, v] of Object.entries(all)) if (v !== undefined) params[k] = v;
    return params;
  };
  const authorize = (params: Record<string, string>) => node.app.inject({ method: 'GET', url: `/oauth2/authorize?${new URLSearchParams(params).toString()}`, remoteAddress: nextSource() });
  const token = (fields: Record<string, string>, headers: Record<string, string> = {}) =>
    node.app.inject({ method: 'POST', url: '/oauth2/token', headers: { ...FORM, ...headers }, payload: new URLSearchParams(fields).toString(), remoteAddress: nextSource() });
  const fhir = (accessToken: string, url: string) => node.app.inject({ method: 'GET', url: `/fhir/R4/${url}`, headers: { authorization: `Bearer ${accessToken}` } });
  const auditRows = (action: string) => sql<{ actor: string; outcome: string; patient: string | null; detail: any }>`select actor, outcome, patient, detail from audit_event where action = ${action} order by seq`.execute(node.ctx.store.db).then((r) => r.rows);
  const tokenCount = () => sql<{ n: number }>`select count(*)::int as n from oauth_access_token`.execute(node.ctx.store.db).then((r) => r.rows[0]!.n);

  /** The browser's part: authorize, land on the approval page, approve; answers the code the app receives. */
  async function approvedCode(browser: AuthTestClient, params: Record<string, string>): Promise<string> {
    const start = await authorize(params);
    expect(start.statusCode).toBe(303);
    const page = new URL(String(start.headers.location), node.config.publicUrl);
    expect(page.pathname).toBe('/authorize');
    const shown = await browser.get(`/api/oauth/authorization${page.search}`);
    expect(shown.statusCode).toBe(200);
    const approved = await browser.post('/api/oauth/authorization', { ...Object.fromEntries(page.searchParams), decision: 'approve' });
    expect(approved.statusCode).toBe(200);
    const back = new URL(approved.json().redirect);
    expect(`${back.origin}${back.pathname}`).toBe(params.redirect_uri);
    expect(back.searchParams.get('state')).toBe(params.state);
    return back.searchParams.get('code')!;
  }

  it('runs the whole standalone launch: a patient approves, the app redeems the code with its verifier and reads her own record only', async () => {
    const browser = await signedIn(rosa);
    const { verifier, challenge } = pkce();
    const params = authorizeParams({}, challenge);

    // The approval page is told who asks and for what, in terms it can put into words.
    const start = await authorize(params);
    const page = new URL(String(start.headers.location), node.config.publicUrl);
    const shown = (await browser.get(`/api/oauth/authorization${page.search}`)).json();
    expect(shown).toEqual({
      client: { name: 'Diario de salud', type: 'public', redirectOrigin: 'https://diario.example.org' },
      scopes: [{ level: 'patient', type: '*', interactions: ['r', 's'] }],
      launchPatient: true,
      offlineAccess: false,
      notGranted: ['openid', 'fhirUser'],
    });

    const code = await approvedCode(browser, params);
    const res = await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, client_id: app.client_id });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json();
    expect(body).toEqual({ access_token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), token_type: 'Bearer', expires_in: 600, scope: 'patient/*.read launch/patient', patient: rosa.patientId });

    const own = await fhir(body.access_token, `Patient/${rosa.patientId}`);
    expect(own.statusCode).toBe(200);
    expect(own.json().id).toBe(rosa.patientId);
    const observations = await fhir(body.access_token, `Observation?patient=${rosa.patientId}`);
    expect(observations.statusCode).toBe(200);
    expect(observations.json().entry.map((e: any) => e.resource.id)).toEqual([rosaObservationId]);
    // Another patient's record is not there for this token, whichever way it asks.
    expect((await fhir(body.access_token, `Patient/${otherPatientId}`)).statusCode).toBe(404);
    expect((await fhir(body.access_token, `Observation?patient=${otherPatientId}`)).json().entry ?? []).toEqual([]);
    const everyObservation = (await fhir(body.access_token, 'Observation')).json();
    expect(everyObservation.entry.every((e: any) => e.resource.subject.reference === `Patient/${rosa.patientId}`)).toBe(true);
    // Read scopes only: a write is refused even where the patient herself could write.
    const write = await node.app.inject({ method: 'POST', url: '/fhir/R4/Observation', headers: { authorization: `Bearer ${body.access_token}` }, payload: heartRate(rosa.patientId!, 70, '2025-05-02T09:00:00Z') });
    expect(write.statusCode).toBe(403);
    expect(write.json().issue[0].diagnostics).toContain('patient/Observation.write');
    // Nor does it open the account API.
    expect((await node.app.inject({ method: 'GET', url: '/api/auth/sessions', headers: { authorization: `Bearer ${body.access_token}` } })).statusCode).toBe(403);

    // Audited: the approval (in Rosa's own view of her record), the token, and the reads as Rosa.
    expect(await auditRows('app-authorized')).toContainEqual(expect.objectContaining({ actor: `Patient/${rosa.patientId}`, outcome: 'success', patient: `Patient/${rosa.patientId}`, detail: expect.objectContaining({ client: `client:${app.client_id}`, decision: 'approve' }) }));
    expect(await auditRows('token-issued')).toContainEqual(expect.objectContaining({ actor: `client:${app.client_id}`, outcome: 'success', detail: expect.objectContaining({ grant: 'authorization_code', account: rosa.id }) }));
    const reads = await sql<{ actor: string }>`select actor from audit_event where action = 'read' and resource_type = 'Patient' and resource_id = ${rosa.patientId!}`.execute(node.ctx.store.db);
    expect(reads.rows.map((r) => r.actor)).toContain(`Patient/${rosa.patientId}`);
  });

  it('names the app in the audit trail: every access under its token, the AuditEvent export, and the patient\'s own "who accessed my record"', async () => {
    const browser = await signedIn(rosa);
    const { verifier, challenge } = pkce();
    const params = authorizeParams({}, challenge);
    const code = await approvedCode(browser, params);
    const accessToken = (await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, client_id: app.client_id })).json().access_token;
    const readBy = await node.app.inject({ method: 'GET', url: `/fhir/R4/Observation/${rosaObservationId}`, headers: { authorization: `Bearer ${accessToken}` }, remoteAddress: '10.19.9.9' });
    expect(readBy.statusCode).toBe(200);
    await node.ctx.audit.settled();
    const rows = await sql<any>`select seq, actor, action, resource_type, resource_id, patient, outcome, source, request_id, detail, recorded from audit_event where action = 'read' and resource_type = 'Observation' and resource_id = ${rosaObservationId} and source = '10.19.9.9'`.execute(node.ctx.store.db);
    expect(rows.rows).toHaveLength(1);
    const row = rows.rows[0];
    // Rosa is who; the app is how: both are in the entry, under the hash chain (detail is covered).
    expect(row).toMatchObject({ actor: `Patient/${rosa.patientId}`, patient: `Patient/${rosa.patientId}`, detail: { client: `client:${app.client_id}` } });
    // A search under the token names it too (the search entry has its own detail).
    await fhir(accessToken, `Observation?patient=${rosa.patientId}`);
    await node.ctx.audit.settled();
    const searches = await auditRows('search');
    expect(searches.at(-1)).toMatchObject({ actor: `Patient/${rosa.patientId}`, detail: { client: `client:${app.client_id}` } });

    // The FHIR AuditEvent: Rosa the requestor, the app a second agent (DICOM Application) at the network address.
    const event = toAuditEvent(row) as any;
    expect(event.agent).toEqual([
      expect.objectContaining({ who: { reference: `Patient/${rosa.patientId}` }, requestor: true }),
      { type: { coding: [{ system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110150', display: 'Application' }] }, who: { identifier: { system: AUDIT_ACTOR_SYSTEM, value: `client:${app.client_id}` } }, requestor: false, network: { address: '10.19.9.9', type: '2' } },
    ]);
    expect(event.agent[0].network).toBeUndefined();
    expect(JSON.stringify(event.entity ?? [])).not.toContain('"client"');

    // Her own view lists what the app did in her name (her own direct accesses stay out).
    const own = await browser.get(`/fhir/R4/Observation/${rosaObservationId}`);
    expect(own.statusCode).toBe(200);
    const view = await browser.get('/api/me/record-access?_count=100');
    expect(view.statusCode).toBe(200);
    const entries = view.json().entries as any[];
    const viaApp = entries.filter((e) => e.through);
    expect(viaApp.length).toBeGreaterThan(0);
    expect(viaApp).toContainEqual(expect.objectContaining({ action: 'read', resource: `Observation/${rosaObservationId}`, who: { role: 'patient', kind: 'self', display: 'Rosa Aplicación' }, through: { client: `client:${app.client_id}`, name: 'Diario de salud' } }));
    expect(entries.every((e) => e.through || e.who.role !== 'patient')).toBe(true);
  });

  it('lets a confidential app redeem only with its secret', async () => {
    const browser = await signedIn(rosa);
    const { verifier, challenge } = pkce();
    const params = authorizeParams({ client_id: confidentialApp.client_id, redirect_uri: 'https://seguro.example.org/cb', scope: 'launch/patient patient/Patient.read' }, challenge);
    const code = await approvedCode(browser, params);
    const fields = { grant_type: 'authorization_code', code, redirect_uri: 'https://seguro.example.org/cb', code_verifier: verifier };
    const withoutSecret = await token({ ...fields, client_id: confidentialApp.client_id });
    expect(withoutSecret.statusCode).toBe(401);
    expect(withoutSecret.json().error).toBe('invalid_client');
    // Refused before the code was touched: the right client can still redeem it.
    const basic = `Basic ${Buffer.from(`${confidentialApp.client_id}:${confidentialApp.client_secret}`).toString('base64')}`;
    const res = await token(fields, { authorization: basic });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ scope: 'patient/Patient.read launch/patient', patient: rosa.patientId });
    const accessToken = res.json().access_token;
    expect((await fhir(accessToken, `Patient/${rosa.patientId}`)).statusCode).toBe(200);
    expect((await fhir(accessToken, `Observation?patient=${rosa.patientId}`)).statusCode).toBe(403);
    // An app client may not use client credentials to reach the record without a user.
    const direct = await token({ grant_type: 'client_credentials' }, { authorization: basic });
    expect(direct.json().error).toBe('unauthorized_client');
  });

  describe('refuses every broken redemption with the OAuth error and no token', () => {
    it.each([
      ['a wrong verifier', (f: Record<string, string>) => ({ ...f, code_verifier: pkce().verifier }), 'invalid_grant'],
      ['a missing verifier', (f: Record<string, string>) => ({ ...f, code_verifier: '' }), 'invalid_request'],
      ['a mismatched redirect_uri', (f: Record<string, string>) => ({ ...f, redirect_uri: 'https://diario.example.org/other' }), 'invalid_grant'],
      ['another client', (f: Record<string, string>) => ({ ...f, client_id: 'tsc-000000000000000000000000' }), 'invalid_client'],
      ['a made-up code', (f: Record<string, string>) => ({ ...f, code: randomBytes(32).toString('base64url') }), 'invalid_grant'],
    ])('%s', async (_what, alter, error) => {
      const browser = await signedIn(rosa);
      const { verifier, challenge } = pkce();
      const code = await approvedCode(browser, authorizeParams({}, challenge));
      const before = await tokenCount();
      const fields = alter({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, client_id: app.client_id });
      const res = await token(Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== '')));
      expect(res.json().error).toBe(error);
      expect(res.json().access_token).toBeUndefined();
      expect(await tokenCount()).toBe(before);
    });

    it('a reused code, which also revokes the token the first use gave', async () => {
      const browser = await signedIn(rosa);
      const { verifier, challenge } = pkce();
      const code = await approvedCode(browser, authorizeParams({}, challenge));
      const fields = { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, client_id: app.client_id };
      const first = await token(fields);
      expect(first.statusCode).toBe(200);
      const second = await token(fields);
      expect(second.statusCode).toBe(400);
      expect(second.json().error).toBe('invalid_grant');
      expect((await fhir(first.json().access_token, `Patient/${rosa.patientId}`)).statusCode).toBe(401);
      expect(await auditRows('token-refused')).toContainEqual(expect.objectContaining({ actor: `client:${app.client_id}`, outcome: 'denied', detail: { error: 'invalid_grant' } }));
    });

    it('an expired code (60 s)', async () => {
      const browser = await signedIn(rosa);
      const { verifier, challenge } = pkce();
      const code = await approvedCode(browser, authorizeParams({}, challenge));
      const lifetime = await sql<{ s: number }>`select extract(epoch from expires - issued)::int as s from oauth_authorization_code order by issued desc limit 1`.execute(node.ctx.store.db);
      expect(lifetime.rows[0]!.s).toBe(60);
      await sql`update oauth_authorization_code set expires = now() - interval '1 second', issued = now() - interval '61 seconds' where redeemed is null`.execute(node.ctx.store.db);
      const res = await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, client_id: app.client_id });
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toBe('invalid_grant');
    });
  });

  it('refuses authorization requests without S256 PKCE, with a wrong aud, or beyond the registered scopes, back to the app with the error', async () => {
    for (const [overrides, error, words] of [
      [{ code_challenge: undefined, code_challenge_method: undefined }, 'invalid_request', /PKCE is required/],
      [{ code_challenge_method: undefined }, 'invalid_request', /PKCE is required/],
      [{ code_challenge_method: 'plain' }, 'invalid_request', /S256/],
      [{ code_challenge: 'short' }, 'invalid_request', /code_challenge/],
      [{ aud: 'https://elsewhere.example.org/fhir' }, 'invalid_request', /aud/],
      [{ response_type: 'token' }, 'unsupported_response_type', /code/],
      [{ state: undefined }, 'invalid_request', /state/],
      [{ scope: 'launch/patient patient/*.write' }, 'invalid_scope', /exceeds/],
      [{ scope: 'system/Patient.read' }, 'invalid_scope', /system\//],
      [{ scope: 'patient/Spaceship.read' }, 'invalid_scope', /not a resource type/],
    ] as const) {
      const params = authorizeParams(overrides as Record<string, string | undefined>);
      const res = await authorize(params);
      expect(res.statusCode).toBe(302);
      const back = new URL(String(res.headers.location));
      expect(`${back.origin}${back.pathname}`).toBe(REDIRECT);
      expect(back.searchParams.get('error')).toBe(error);
      expect(back.searchParams.get('error_description')).toMatch(words);
      expect(back.searchParams.get('code')).toBeNull();
      if (params.state) expect(back.searchParams.get('state')).toBe(params.state);
    }
    // The page's API refuses the same requests even if someone goes straight to it: no code either way.
    const browser = await signedIn(rosa);
    const plain = await browser.post('/api/oauth/authorization', { ...authorizeParams({ code_challenge_method: 'plain' }), decision: 'approve' });
    expect(plain.statusCode).toBe(400);
    expect(plain.json().redirect).toBeUndefined();
    expect(await auditRows('app-authorized')).toContainEqual(expect.objectContaining({ actor: `client:${app.client_id}`, outcome: 'denied', detail: { error: 'invalid_request' } }));
  });

  it('never redirects to an unregistered client or redirect URI: the user is told on the page instead', async () => {
    for (const [overrides, problem] of [
      [{ client_id: 'tsc-000000000000000000000000' }, 'unknown-client'],
      [{ redirect_uri: 'https://attacker.example.net/callback' }, 'bad-redirect-uri'],
      [{ redirect_uri: `${REDIRECT}/more` }, 'bad-redirect-uri'],
      [{ redirect_uri: undefined }, 'bad-redirect-uri'],
    ] as const) {
      const res = await authorize(authorizeParams(overrides as Record<string, string | undefined>));
      expect(res.statusCode).toBe(303);
      expect(res.headers.location).toBe(`/authorize?problem=${problem}`);
    }
    const browser = await signedIn(rosa);
    const res = await browser.get(`/api/oauth/authorization?${new URLSearchParams(authorizeParams({ redirect_uri: 'https://attacker.example.net/callback' }))}`);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toBe('bad-redirect-uri');
  });

  it('sends the user who denies back to the app with access_denied, and issues nothing', async () => {
    const browser = await signedIn(rosa);
    const params = authorizeParams();
    const before = await sql<{ n: number }>`select count(*)::int as n from oauth_authorization_code`.execute(node.ctx.store.db);
    const denied = await browser.post('/api/oauth/authorization', { ...params, decision: 'deny' });
    expect(denied.statusCode).toBe(200);
    const back = new URL(denied.json().redirect);
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('state')).toBe(params.state);
    expect(back.searchParams.get('code')).toBeNull();
    const after = await sql<{ n: number }>`select count(*)::int as n from oauth_authorization_code`.execute(node.ctx.store.db);
    expect(after.rows[0]!.n).toBe(before.rows[0]!.n);
    expect(await auditRows('app-authorized')).toContainEqual(expect.objectContaining({ actor: `Patient/${rosa.patientId}`, outcome: 'denied', detail: expect.objectContaining({ decision: 'deny' }) }));
  });

  it('asks for a signed-in person with a CSRF token: no session, a bearer token, or a missing CSRF header get nothing', async () => {
    const params = authorizeParams();
    const anonymous = await node.app.inject({ method: 'GET', url: `/api/oauth/authorization?${new URLSearchParams(params)}` });
    expect(anonymous.statusCode).toBe(401);
    const admin = await node.request({ method: 'POST', url: '/api/oauth/authorization', payload: { ...params, decision: 'approve' } });
    expect(admin.statusCode).toBe(403);
    const browser = await signedIn(rosa);
    const noCsrf = await browser.post('/api/oauth/authorization', { ...params, decision: 'approve' }, { csrf: false });
    expect(noCsrf.statusCode).toBe(403);
    expect(noCsrf.json().redirect).toBeUndefined();
  });

  it('refuses launch/patient for staff (no patient picker), and says why before they approve', async () => {
    const browser = await signedIn(clinician);
    const params = authorizeParams();
    const shown = await browser.get(`/api/oauth/authorization?${new URLSearchParams(params)}`);
    expect(shown.json().problem).toBe('patient-context-needs-patient');
    const approved = await browser.post('/api/oauth/authorization', { ...params, decision: 'approve' });
    expect(approved.statusCode).toBe(403);
    expect(approved.json().error).toBe('patient-context-needs-patient');
    expect(approved.json().redirect).toBeUndefined();
  });

  it('gives a clinician user/ scopes over the patients in their care only', async () => {
    const browser = await signedIn(clinician);
    const { verifier, challenge } = pkce();
    const params = authorizeParams({ client_id: confidentialApp.client_id, redirect_uri: 'https://seguro.example.org/cb', scope: 'user/*.read' }, challenge);
    const code = await approvedCode(browser, params);
    const basic = `Basic ${Buffer.from(`${confidentialApp.client_id}:${confidentialApp.client_secret}`).toString('base64')}`;
    const res = await token({ grant_type: 'authorization_code', code, redirect_uri: 'https://seguro.example.org/cb', code_verifier: verifier }, { authorization: basic });
    expect(res.statusCode).toBe(200);
    expect(res.json().patient).toBeUndefined();
    // Nobody is in this clinician's care: the access policy shows no patient, whatever the scopes say.
    expect((await fhir(res.json().access_token, `Patient/${otherPatientId}`)).statusCode).toBe(404);
    expect((await fhir(res.json().access_token, `Observation?patient=${rosa.patientId}`)).json().entry ?? []).toEqual([]);
  });

  it('stops an app token when the account is disabled', async () => {
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const tomas = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'tomas.app@example.org', role: 'patient', name: 'Tomás Aplicación', password: PASSWORD });
    const browser = await signedIn(tomas);
    const { verifier, challenge } = pkce();
    const code = await approvedCode(browser, authorizeParams({}, challenge));
    const res = await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, client_id: app.client_id });
    const accessToken = res.json().access_token;
    expect((await fhir(accessToken, `Patient/${tomas.patientId}`)).statusCode).toBe(200);
    await sql`update account set status = 'disabled' where id = ${tomas.id}`.execute(node.ctx.store.db);
    expect((await fhir(accessToken, `Patient/${tomas.patientId}`)).statusCode).toBe(401);
  });

  it('keeps an offline_access app going with rotated refresh tokens, and ends the whole grant when one is replayed', async () => {
    const offline = (await addClient(node.ctx.store.db, { name: 'Diario sin conexión', scopes: 'launch/patient patient/*.read offline_access', redirectUris: [REDIRECT], public: true })) as NewAppClient;
    // An app not registered for offline_access can not get it.
    const refused = await authorize(authorizeParams({ scope: 'launch/patient patient/*.read offline_access' }));
    expect(new URL(String(refused.headers.location)).searchParams.get('error')).toBe('invalid_scope');

    const browser = await signedIn(rosa);
    const { verifier, challenge } = pkce();
    const params = authorizeParams({ client_id: offline.client_id, scope: 'launch/patient patient/*.read offline_access' }, challenge);
    const start = await authorize(params);
    const page = new URL(String(start.headers.location), node.config.publicUrl);
    expect((await browser.get(`/api/oauth/authorization${page.search}`)).json().offlineAccess).toBe(true);
    const code = await approvedCode(browser, params);
    const first = await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, client_id: offline.client_id });
    expect(first.json()).toMatchObject({ scope: 'patient/*.read launch/patient offline_access', patient: rosa.patientId, refresh_token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });

    const refreshed = await token({ grant_type: 'refresh_token', refresh_token: first.json().refresh_token, client_id: offline.client_id });
    expect(refreshed.statusCode).toBe(200);
    expect(refreshed.json()).toMatchObject({ scope: 'patient/*.read launch/patient offline_access', patient: rosa.patientId });
    expect(refreshed.json().refresh_token).not.toBe(first.json().refresh_token);
    expect((await fhir(refreshed.json().access_token, `Patient/${rosa.patientId}`)).statusCode).toBe(200);
    expect((await fhir(refreshed.json().access_token, `Patient/${otherPatientId}`)).statusCode).toBe(404);
    // Another client may not use it; the scope can not grow on a refresh.
    expect((await token({ grant_type: 'refresh_token', refresh_token: refreshed.json().refresh_token, client_id: app.client_id })).json().error).toBe('invalid_grant');

    // That spent the newest token: the rightful app's next refresh now looks like a replay, so the grant ends.
    const replay = await token({ grant_type: 'refresh_token', refresh_token: refreshed.json().refresh_token, client_id: offline.client_id });
    expect(replay.json().error).toBe('invalid_grant');
    expect((await fhir(refreshed.json().access_token, `Patient/${rosa.patientId}`)).statusCode).toBe(401);
    expect((await fhir(first.json().access_token, `Patient/${rosa.patientId}`)).statusCode).toBe(401);

    // A fresh grant, then the client revoked: its refresh tokens die with it.
    const again = pkce();
    const code2 = await approvedCode(browser, authorizeParams({ client_id: offline.client_id, scope: 'launch/patient patient/*.read offline_access' }, again.challenge));
    const second = await token({ grant_type: 'authorization_code', code: code2, redirect_uri: REDIRECT, code_verifier: again.verifier, client_id: offline.client_id });
    const wider = await token({ grant_type: 'refresh_token', refresh_token: second.json().refresh_token, client_id: offline.client_id, scope: 'patient/*.* launch/patient offline_access' });
    expect(wider.json().error).toBe('invalid_scope');
    const stillGood = (await sql<{ n: number }>`select count(*)::int as n from oauth_refresh_token where client_id = ${offline.client_id} and used is null`.execute(node.ctx.store.db)).rows[0]!.n;
    expect(stillGood).toBe(0);
    expect(await revokeClient(node.ctx.store.db, offline.client_id)).toBe(true);
    expect((await sql<{ n: number }>`select count(*)::int as n from oauth_refresh_token where client_id = ${offline.client_id}`.execute(node.ctx.store.db)).rows[0]!.n).toBe(0);
    expect((await token({ grant_type: 'refresh_token', refresh_token: second.json().refresh_token, client_id: offline.client_id })).json().error).toBe('invalid_client');
  });

  it('lands the browser on the approval page: the app page, through the shield, never cached, never leaking the request in a Referer', async () => {
    await ensureWebBuild();
    const start = await authorize(authorizeParams());
    const page = await node.app.inject({ method: 'GET', url: String(start.headers.location), headers: { accept: 'text/html' }, remoteAddress: nextSource() });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['cache-control']).toBe('no-cache');
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    expect(String(page.headers['content-security-policy'])).toContain("frame-ancestors 'none'");
  }, 150_000);

  it('announces authorization code, PKCE S256 and standalone patient launch in the SMART configuration', async () => {
    const conf = (await node.app.inject({ method: 'GET', url: '/.well-known/smart-configuration' })).json();
    expect(conf).toMatchObject({
      authorization_endpoint: `${node.config.publicUrl}/oauth2/authorize`,
      grant_types_supported: ['client_credentials', 'authorization_code', 'refresh_token'],
      code_challenge_methods_supported: ['S256'],
      response_types_supported: ['code'],
    });
    expect(conf.capabilities).toEqual(expect.arrayContaining(['launch-standalone', 'client-public', 'client-confidential-symmetric', 'context-standalone-patient', 'permission-patient', 'permission-user']));
    expect(conf.scopes_supported).toEqual(expect.arrayContaining(['launch/patient', 'patient/*.read', 'user/*.read']));
  });

  it('registers app clients with exact, safe redirect URIs only', async () => {
    await expect(addClient(node.ctx.store.db, { name: 'x', scopes: 'patient/*.read', redirectUris: ['http://app.example.org/cb'] })).rejects.toThrow(/use https/);
    await expect(addClient(node.ctx.store.db, { name: 'x', scopes: 'patient/*.read', redirectUris: ['https://app.example.org/cb#frag'] })).rejects.toThrow(/fragment/);
    await expect(addClient(node.ctx.store.db, { name: 'x', scopes: 'patient/*.read', redirectUris: ['javascript:alert(1)'] })).rejects.toThrow(/https/);
    await expect(addClient(node.ctx.store.db, { name: 'x', scopes: 'system/*.read', redirectUris: ['https://app.example.org/cb'] })).rejects.toThrow(/system\/ scopes are for client credentials/);
    await expect(addClient(node.ctx.store.db, { name: 'x', scopes: 'patient/*.read', public: true })).rejects.toThrow(/--public needs/);
    const native = await addClient(node.ctx.store.db, { name: 'móvil', scopes: 'launch/patient patient/Observation.rs', redirectUris: ['org.example.diario:/cb', 'https://diario.example.org/movil'], public: true });
    expect(native).toEqual({ client_id: expect.stringMatching(/^tsc-/), name: 'móvil', scope: 'patient/Observation.rs launch/patient', type: 'public', redirect_uris: ['org.example.diario:/cb', 'https://diario.example.org/movil'] });
  });

  it('lets a native app sign in through its loopback listener on any port (RFC 8252 §7.3), past the shield', async () => {
    // Loopback redirects are for public clients, over http at the address only (not "localhost").
    await expect(addClient(node.ctx.store.db, { name: 'x', scopes: 'patient/*.read', redirectUris: ['http://127.0.0.1/cb'] })).rejects.toThrow(/only a public client/);
    await expect(addClient(node.ctx.store.db, { name: 'x', scopes: 'patient/*.read', redirectUris: ['http://localhost/cb'], public: true })).rejects.toThrow(/use https/);
    const desktop = (await addClient(node.ctx.store.db, { name: 'Diario de escritorio', scopes: 'launch/patient patient/*.read', redirectUris: ['http://127.0.0.1/callback', 'http://[::1]/callback'], public: true })) as NewAppClient;
    const browser = await signedIn(rosa);
    for (const redirect of ['http://127.0.0.1:51723/callback', 'http://[::1]:40001/callback']) {
      const { verifier, challenge } = pkce();
      const params = authorizeParams({ client_id: desktop.client_id, redirect_uri: redirect, scope: 'launch/patient patient/*.read' }, challenge);
      const code = await approvedCode(browser, params);
      const res = await token({ grant_type: 'authorization_code', code, redirect_uri: redirect, code_verifier: verifier, client_id: desktop.client_id });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().patient).toBe(rosa.patientId);
    }
    // Only the port is free: another path is no registered URI; https or http to another address is not even let in.
    const otherPath = await authorize(authorizeParams({ client_id: desktop.client_id, redirect_uri: 'http://127.0.0.1:51723/other', scope: 'launch/patient patient/*.read' }));
    expect(otherPath.statusCode).toBe(303);
    expect(otherPath.headers.location).toBe('/authorize?problem=bad-redirect-uri');
    for (const redirect of ['https://127.0.0.1:51723/callback', 'http://127.0.0.2:51723/callback', 'http://169.254.169.254/callback']) {
      const start = await authorize(authorizeParams({ client_id: desktop.client_id, redirect_uri: redirect, scope: 'launch/patient patient/*.read' }));
      expect(start.statusCode, redirect).toBe(403);
      expect(start.headers['x-refused-by'], redirect).toBe('shield');
    }
    // The token endpoint's system scopes pass the shield too (the php-function-call rule read them as a call).
    const backend = await node.app.inject({ method: 'POST', url: '/oauth2/token', headers: FORM, payload: 'grant_type=client_credentials&scope=system%2F*.read', remoteAddress: nextSource() });
    expect(backend.headers['x-refused-by']).toBeUndefined();
    expect(backend.statusCode).toBe(401);
  });
});

describe('telesalud client add for apps (SMART App Launch)', () => {
  /** Runs the CLI in this process on a copy of the migrated template; answers exit code, stdout and stderr. */
  async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-smart-cli-'));
    await cp(pgliteTemplateDir(), path.join(dir, 'pg'), { recursive: true });
    const saved = { ...process.env };
    Object.assign(process.env, { TELESALUD_DATA_DIR: dir, TELESALUD_LOG_LEVEL: 'error' });
    let stdout = '';
    let stderr = '';
    const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((stdout += String(chunk)), true));
    const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((stderr += String(chunk)), true));
    try {
      return { code: await main(args), stdout, stderr };
    } finally {
      out.mockRestore();
      err.mockRestore();
      process.env = saved;
      await rm(dir, { recursive: true, force: true });
    }
  }

  it('registers a public app with its redirect URIs (no secret), and refuses unsafe ones with one line', async () => {
    const added = await cli(['client', 'add', '--name', 'Diario', '--scopes', 'launch/patient patient/*.read', '--redirect-uri', 'https://diario.example.org/cb', '--redirect-uri', 'org.example.diario:/cb', '--public']);
    expect(added.code).toBe(0);
    expect(JSON.parse(added.stdout)).toEqual({ client_id: expect.stringMatching(/^tsc-/), name: 'Diario', scope: 'patient/*.read launch/patient', type: 'public', redirect_uris: ['https://diario.example.org/cb', 'org.example.diario:/cb'] });

    const confidential = await cli(['client', 'add', '--name', 'Seguro', '--scopes', 'user/*.read', '--redirect-uri', 'https://seguro.example.org/cb']);
    expect(JSON.parse(confidential.stdout)).toMatchObject({ client_secret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), type: 'confidential' });

    const insecure = await cli(['client', 'add', '--name', 'x', '--scopes', 'patient/*.read', '--redirect-uri', 'http://diario.example.org/cb']);
    expect(insecure.code).toBe(1);
    expect(insecure.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^telesalud: --redirect-uri "http:\/\/diario\.example\.org\/cb" uses http/)]);
    const noUri = await cli(['client', 'add', '--name', 'x', '--scopes', 'patient/*.read']);
    expect(noUri.stderr).toMatch(/only system\/ scopes exist for client credentials \(an app users sign in to is registered with --redirect-uri\)/);
  }, 60_000);
});
