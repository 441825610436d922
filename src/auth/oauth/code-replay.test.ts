import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';
import { create, heartRate } from '../../test-support/fixtures.js';
import { SYSTEM_ACTOR } from '../actor.js';
import { AuthTestClient } from '../auth-test-client.js';
import { createAccount, type NewAccount } from '../accounts/account-service.js';
import { Repository } from '../../records/repository.js';
import { lockGrant } from './connected-apps.js';
import { addClient, digest, type NewAppClient } from './oauth-clients.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const REDIRECT = 'https://diario.example.org/callback';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const SCOPE = 'launch/patient patient/Observation.rs offline_access';

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

describe.each(STORE_KINDS)('a replayed authorization code ends its grant, even mid-redemption (%s)', (kind) => {
  let node: TestNode;
  let fhirBase: string;
  let app: NewAppClient;
  let rosa: NewAccount;
  let source = 0;
  const nextSource = () => `10.24.0.${++source}`;

  beforeAll(async () => {
    node = await startTestNode(kind, { TELESALUD_PUBLIC_URL: 'https://telesalud.clinica.example' });
    fhirBase = `${node.config.publicUrl}/fhir/R4`;
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    rosa = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'rosa.replay@example.org', role: 'patient', name: 'Rosa Repetida', password: PASSWORD });
    await create(node, heartRate(rosa.patientId!, 64, '2025-05-01T09:00:00Z'));
    app = (await addClient(node.ctx.store.db, { name: 'Tensión en casa', scopes: SCOPE, redirectUris: [REDIRECT], public: true })) as NewAppClient;
  });
  afterAll(async () => {
    await node?.stop();
  });

  const token = (fields: Record<string, string>) => node.app.inject({ method: 'POST', url: '/oauth2/token', headers: FORM, payload: new URLSearchParams(fields).toString(), remoteAddress: nextSource() });
  const fhir = (accessToken: string) => node.app.inject({ method: 'GET', url: `/fhir/R4/Observation?patient=${rosa.patientId}`, headers: { authorization: `Bearer ${accessToken}` } });
  const grantRows = (family: Buffer) =>
    sql<{ n: number }>`select (select count(*) from oauth_access_token where grant_hash = ${family}) + (select count(*) from oauth_refresh_token where family = ${family}) as n`
      .execute(node.ctx.store.db)
      .then((r) => Number(r.rows[0]!.n));

  /** Rosa approves the app: the code (not yet redeemed) and the token request that redeems it. */
  async function approvedCode(): Promise<{ code: string; redeem: Record<string, string> }> {
    const browser = new AuthTestClient(node);
    expect((await browser.signIn({ email: rosa.email, password: PASSWORD })).statusCode).toBe(200);
    const { verifier, challenge } = pkce();
    const params = { response_type: 'code', client_id: app.client_id, redirect_uri: REDIRECT, scope: SCOPE, state: randomBytes(8).toString('hex'), code_challenge: challenge, code_challenge_method: 'S256', aud: fhirBase };
    const approved = await browser.post('/api/oauth/authorization', { ...params, decision: 'approve' });
    expect(approved.statusCode).toBe(200);
    const code = new URL(approved.json().redirect).searchParams.get('code')!;
    return { code, redeem: { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, client_id: app.client_id } };
  }

  it('refuses the first redemption\'s access token and refresh token after a replay, and every later use of the code', async () => {
    const { code, redeem } = await approvedCode();
    const first = await token(redeem);
    expect(first.statusCode, first.body).toBe(200);
    const { access_token, refresh_token } = first.json();
    expect(refresh_token).toEqual(expect.any(String));
    expect((await fhir(access_token)).statusCode).toBe(200);

    const replay = await token(redeem);
    expect(replay.statusCode).toBe(400);
    expect(replay.json().error).toBe('invalid_grant');

    expect((await fhir(access_token)).statusCode).toBe(401);
    const refreshed = await token({ grant_type: 'refresh_token', refresh_token, client_id: app.client_id });
    expect(refreshed.statusCode).toBe(400);
    expect(refreshed.json().error).toBe('invalid_grant');
    const again = await token(redeem);
    expect(again.statusCode).toBe(400);
    expect(again.json().error).toBe('invalid_grant');
    expect(await grantRows(digest(code))).toBe(0);
  });

  // Only PostgreSQL has other connections to wait on a held lock (PGlite is one connection): the
  // case exists for it alone, rather than as a skipped test on PGlite.
  if (kind === 'postgres') it('leaves no token alive when the replay arrives while the first redemption is still issuing', async () => {
    const db = node.ctx.store.db;
    const { code, redeem } = await approvedCode();
    const family = digest(code);
    // Requests waiting for this grant's lock (pg_locks is the whole server's: other databases' tests too).
    const waiters = () =>
      sql<{ n: number }>`select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted and objsubid = 2
          and database = (select oid from pg_database where datname = current_database()) and objid = ${family.readInt32BE(0)}::int4::oid`
        .execute(db)
        .then((r) => r.rows[0]!.n);
    const until = async (done: () => Promise<boolean>) => {
      for (let i = 0; i < 500 && !(await done()); i++) await new Promise((r) => setTimeout(r, 10));
    };

    // Hold the grant's lock, so the first redemption marks the code spent and then waits to issue.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const lockHeld = new Promise<void>((r) => (locked = r));
    const holder = db.transaction().execute(async (tx) => {
      await lockGrant(tx, family);
      locked();
      await released;
    });
    await lockHeld;
    const baseline = await waiters();
    const firstPending = token(redeem);
    await until(async () => (await waiters()) > baseline);
    expect(await waiters()).toBe(baseline + 1);

    // The replay: it must wait for the same lock rather than revoke around the pending issue.
    let replayDone = false;
    const replayPending = token(redeem).finally(() => (replayDone = true));
    await until(async () => replayDone || (await waiters()) > baseline + 1);
    release();
    await holder;
    const [first, replay] = await Promise.all([firstPending, replayPending]);

    expect(replay.statusCode).toBe(400);
    expect(replay.json().error).toBe('invalid_grant');
    // Whichever took the lock first, whatever the first redemption got is dead.
    if (first.statusCode === 200) {
      expect((await fhir(first.json().access_token)).statusCode).toBe(401);
      const refreshed = await token({ grant_type: 'refresh_token', refresh_token: first.json().refresh_token, client_id: app.client_id });
      expect(refreshed.statusCode).toBe(400);
    } else expect(first.json().error).toBe('invalid_grant');
    expect(await grantRows(family)).toBe(0);
  });
});
