import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';
import { create, heartRate, patient } from '../../test-support/fixtures.js';
import { addClient, revokeClient, type NewClient } from './oauth-clients.js';
import { TOKEN_LIMITS } from './token-service.js';

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

describe.each(STORE_KINDS)('OAuth 2.0 client credentials for the FHIR API (%s)', (kind) => {
  let node: TestNode;
  let reader: NewClient;
  let patientsOnly: NewClient;
  let patientId: string;
  let source = 0;
  // Each test its own source address, so the failure throttle of one does not spill into another.
  const nextSource = () => `10.9.0.${++source}`;

  beforeAll(async () => {
    node = await startTestNode(kind);
    reader = await addClient(node.ctx.store.db, { name: 'lab interface', scopes: 'system/Patient.read system/Observation.read' });
    patientsOnly = await addClient(node.ctx.store.db, { name: 'registry', scopes: 'system/Patient.rs' });
    patientId = (await create(node, patient('Scopes', ['Cliente']))).id;
    await create(node, heartRate(patientId, 70, '2025-04-01T10:00:00Z'));
  });
  afterAll(async () => {
    await node?.stop();
  });

  const tokenRequest = (fields: Record<string, string>, headers: Record<string, string> = {}, remoteAddress = nextSource()) =>
    node.app.inject({ method: 'POST', url: '/oauth2/token', headers: { ...FORM, ...headers }, payload: form(fields), remoteAddress });
  const tokenFor = async (client: NewClient, scope?: string) => {
    const res = await tokenRequest({ grant_type: 'client_credentials', ...(scope ? { scope } : {}) }, { authorization: basic(client.client_id, client.client_secret) });
    expect(res.statusCode).toBe(200);
    return res.json().access_token as string;
  };
  const fhir = (token: string, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
    node.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload ? { payload: payload as object } : {}) });
  const auditRows = (action: string) => sql<{ actor: string; outcome: string; detail: any }>`select actor, outcome, detail from audit_event where action = ${action} order by seq`.execute(node.ctx.store.db).then((r) => r.rows);

  it('issues a bearer token to client_secret_basic and to client_secret_post, with no-store', async () => {
    const viaBasic = await tokenRequest({ grant_type: 'client_credentials' }, { authorization: basic(reader.client_id, reader.client_secret) });
    expect(viaBasic.statusCode).toBe(200);
    expect(viaBasic.headers['cache-control']).toBe('no-store');
    expect(viaBasic.headers['content-type']).toMatch(/^application\/json/);
    const body = viaBasic.json();
    expect(body).toEqual({ access_token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), token_type: 'Bearer', expires_in: 600, scope: 'system/Patient.read system/Observation.read' });

    const viaPost = await tokenRequest({ grant_type: 'client_credentials', client_id: reader.client_id, client_secret: reader.client_secret, scope: 'system/Patient.read' });
    expect(viaPost.statusCode).toBe(200);
    expect(viaPost.json().scope).toBe('system/Patient.read');
    expect(viaPost.json().access_token).not.toBe(body.access_token);

    // Only digests are stored: the token itself is nowhere in the database.
    const stored = await sql<{ n: number }>`select count(*)::int as n from oauth_access_token where encode(token_hash, 'escape') like ${`%${body.access_token}%`}`.execute(node.ctx.store.db);
    expect(stored.rows[0]!.n).toBe(0);
    expect((await auditRows('token-issued')).map((r) => r.actor)).toContain(`client:${reader.client_id}`);
  });

  it('answers a wrong secret with invalid_client 401, WWW-Authenticate, and a security event; a secret never reaches the audit', async () => {
    const wrong = await tokenRequest({ grant_type: 'client_credentials' }, { authorization: basic(reader.client_id, 'not-the-secret') });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers['www-authenticate']).toMatch(/^Basic realm="telesalud"/);
    expect(wrong.json()).toEqual({ error: 'invalid_client', error_description: expect.any(String) });
    const unknown = await tokenRequest({ grant_type: 'client_credentials', client_id: 'tsc-000000000000000000000000', client_secret: 'x' });
    expect(unknown.statusCode).toBe(401);
    expect(unknown.json().error).toBe('invalid_client');
    // Someone pastes the secret into client_id: recorded as anonymous, the value itself nowhere.
    await tokenRequest({ grant_type: 'client_credentials', client_id: reader.client_secret, client_secret: reader.client_id });

    const refused = await auditRows('token-refused');
    expect(refused).toContainEqual(expect.objectContaining({ actor: `client:${reader.client_id}`, outcome: 'denied', detail: { error: 'invalid_client' } }));
    const all = JSON.stringify(await sql`select * from audit_event`.execute(node.ctx.store.db).then((r) => r.rows));
    expect(all).not.toContain(reader.client_secret);
    expect(all).not.toContain('not-the-secret');
  });

  it('answers the other RFC 6749 errors', async () => {
    const auth = { authorization: basic(reader.client_id, reader.client_secret) };
    expect((await tokenRequest({ grant_type: 'password' }, auth)).json().error).toBe('unsupported_grant_type');
    expect((await tokenRequest({}, auth)).json().error).toBe('invalid_request');
    const wider = await tokenRequest({ grant_type: 'client_credentials', scope: 'system/Patient.write' }, auth);
    expect(wider.statusCode).toBe(400);
    expect(wider.json().error).toBe('invalid_scope');
    expect((await tokenRequest({ grant_type: 'client_credentials', scope: 'system/Nothing.read' }, auth)).json().error).toBe('invalid_scope');
    // Both methods at once, a repeated parameter, JSON instead of a form.
    const both = await tokenRequest({ grant_type: 'client_credentials', client_secret: reader.client_secret }, auth);
    expect(both.json().error).toBe('invalid_request');
    const repeated = await node.app.inject({ method: 'POST', url: '/oauth2/token', headers: { ...FORM, ...auth }, payload: 'grant_type=client_credentials&grant_type=client_credentials' });
    expect(repeated.json().error).toBe('invalid_request');
    const json = await node.app.inject({ method: 'POST', url: '/oauth2/token', headers: auth, payload: { grant_type: 'client_credentials' } });
    expect(json.statusCode).toBe(400);
    expect(json.json().error).toBe('invalid_request');
  });

  it('throttles a source after repeated failures, without locking out the client elsewhere', async () => {
    const address = '10.99.0.1';
    for (let i = 0; i < TOKEN_LIMITS.sourceLimit; i++) await tokenRequest({ grant_type: 'client_credentials' }, { authorization: basic(reader.client_id, `guess-${i}`) }, address);
    const blocked = await tokenRequest({ grant_type: 'client_credentials' }, { authorization: basic(reader.client_id, reader.client_secret) }, address);
    expect(blocked.statusCode).toBe(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    expect((await tokenRequest({ grant_type: 'client_credentials' }, { authorization: basic(reader.client_id, reader.client_secret) })).statusCode).toBe(200);
  });

  it('lets a token read what its scopes grant, and refuses with a 403 OperationOutcome (audited) what they do not', async () => {
    const token = await tokenFor(reader);
    expect((await fhir(token, 'GET', `/fhir/R4/Patient/${patientId}`)).statusCode).toBe(200);
    expect((await fhir(token, 'GET', `/fhir/R4/Observation?patient=${patientId}`)).json().entry).toHaveLength(1);

    const write = await fhir(token, 'POST', '/fhir/R4/Patient', patient('Nunca', ['Escrito']));
    expect(write.statusCode).toBe(403);
    expect(write.json()).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'forbidden', diagnostics: expect.stringContaining('system/Patient.write') }] });
    const denied = await sql<{ actor: string; action: string }>`select actor, action from audit_event where outcome = 'denied' and resource_type = 'Patient' and action = 'create'`.execute(node.ctx.store.db);
    expect(denied.rows).toContainEqual({ actor: `client:${reader.client_id}`, action: 'create' });
    expect((await sql<{ n: number }>`select count(*)::int as n from patient where content->'name'->0->>'family' = 'Nunca'`.execute(node.ctx.store.db)).rows[0]!.n).toBe(0);

    const patientToken = await tokenFor(patientsOnly);
    expect((await fhir(patientToken, 'GET', `/fhir/R4/Patient?_id=${patientId}`)).statusCode).toBe(200);
    expect((await fhir(patientToken, 'GET', `/fhir/R4/Observation?patient=${patientId}`)).statusCode).toBe(403);
    const observationId = (await node.request({ method: 'GET', url: `/fhir/R4/Observation?patient=${patientId}` })).json().entry[0].resource.id;
    expect((await fhir(patientToken, 'GET', `/fhir/R4/Observation/${observationId}`)).statusCode).toBe(403);
    expect((await fhir(patientToken, 'GET', `/fhir/R4/Observation/${observationId}/_history`)).statusCode).toBe(403);
    // A narrowed token loses what it did not ask for, even though its client has it.
    const narrowed = await tokenFor(reader, 'system/Patient.read');
    expect((await fhir(narrowed, 'GET', `/fhir/R4/Observation/${observationId}`)).statusCode).toBe(403);
    // _include may not smuggle in a type the scopes do not cover.
    const include = await fhir(await tokenFor(reader), 'GET', `/fhir/R4/Observation?patient=${patientId}&_include=Observation:encounter`);
    expect(include.statusCode).toBe(403);
    expect((await fhir(await tokenFor(reader), 'GET', `/fhir/R4/Observation?patient=${patientId}&_include=Observation:patient`)).statusCode).toBe(200);
  });

  it('keeps access tokens to the FHIR API: the audit and the account API refuse them', async () => {
    const token = await tokenFor(reader);
    for (const url of ['/api/audit/events', '/api/auth/sessions', `/api/documents/${patientId}/content`]) {
      const res = await node.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
      expect(res.statusCode).toBe(403);
      expect(res.json().message).toBe('OAuth access tokens are accepted by the FHIR API only');
    }
  });

  it('refuses forged, expired and revoked tokens with 401, and keeps the bootstrap admin token working', async () => {
    const url = `/fhir/R4/Patient/${patientId}`;
    const forged = await fhir('Zm9yZ2VkLXRva2VuLXRoYXQtbmV2ZXItd2FzLWlzc3VlZA', 'GET', url);
    expect(forged.statusCode).toBe(401);
    expect(forged.headers['www-authenticate']).toMatch(/^Bearer/);

    const expiring = await tokenFor(reader);
    await sql`update oauth_access_token set expires = now() - interval '1 second' where expires > now() and client_id = ${reader.client_id}`.execute(node.ctx.store.db);
    expect((await fhir(expiring, 'GET', url)).statusCode).toBe(401);

    const client = await addClient(node.ctx.store.db, { name: 'to revoke', scopes: 'system/*.read' });
    const token = await tokenFor(client);
    expect((await fhir(token, 'GET', url)).statusCode).toBe(200);
    expect(await revokeClient(node.ctx.store.db, client.client_id)).toBe(true);
    expect((await fhir(token, 'GET', url)).statusCode).toBe(401);
    expect((await tokenRequest({ grant_type: 'client_credentials' }, { authorization: basic(client.client_id, client.client_secret) })).statusCode).toBe(401);

    expect((await node.request({ method: 'GET', url })).statusCode).toBe(200);
  });

  it('publishes the SMART configuration without authentication', async () => {
    const res = await node.app.inject({ method: 'GET', url: '/.well-known/smart-configuration' });
    expect(res.statusCode).toBe(200);
    const conf = res.json();
    expect(conf).toMatchObject({
      token_endpoint: `${node.config.publicUrl}/oauth2/token`,
      grant_types_supported: ['client_credentials', 'authorization_code', 'refresh_token'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
      capabilities: expect.arrayContaining(['client-confidential-symmetric']),
    });
    expect(conf.scopes_supported).toEqual(expect.arrayContaining(['system/*.read', 'system/Patient.read', 'system/Appointment.write']));
  });
});
