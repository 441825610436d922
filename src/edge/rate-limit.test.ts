import { randomBytes } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount } from '../auth/accounts/account-service.js';
import { AuthTestClient } from '../auth/auth-test-client.js';
import { addClient, issueAccessToken } from '../auth/oauth/oauth-clients.js';
import { ConfigError, loadConfig } from '../config/config.js';
import { Repository } from '../records/repository.js';
import { startTestNode, type TestNode } from '../test-support/test-node.js';
import { InMemoryRateLimiter, retryAfterMs } from './rate-limiter.js';

const PASSWORD = 'girasoles-bajo-la-tormenta-de-Salta-97';
/** Small limits, so a test reaches them in a handful of requests. */
const LIMITS = { TELESALUD_RATE_LIMIT_PER_SOURCE: '5', TELESALUD_RATE_LIMIT_PER_SOURCE_SIGNED_IN: '6', TELESALUD_RATE_LIMIT_PER_ACCOUNT: '4' };

const metadata = (node: TestNode, remoteAddress: string, headers: Record<string, string> = {}) => node.app.inject({ method: 'GET', url: '/fhir/R4/metadata', remoteAddress, headers });

async function rateLimitedEntries(node: TestNode) {
  return node.ctx.store.db.selectFrom('audit_event').select(['actor', 'source', 'outcome', 'detail']).where('action', '=', 'rate-limited').orderBy('seq').execute();
}

const detailOf = (entry: { detail: unknown }) => (typeof entry.detail === 'string' ? JSON.parse(entry.detail) : entry.detail) as Record<string, unknown>;

/** Moves the clock every limiter reads (Date only, still running: timers, the database and the sockets keep real time). */
function advanceClock(ms: number): void {
  vi.setSystemTime(Date.now() + ms);
}

/**
 * A clock a second into a window of its own, ahead of anything counted before: a test then
 * never straddles a window's edge (where the sliding window lets one more request through).
 */
function freshWindow(): void {
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
  vi.setSystemTime(Math.ceil(Date.now() / 60_000) * 60_000 + 120_000 + 1000);
}

describe('the sliding-window counter', () => {
  it('refuses past the limit, counts all limits or none, and lets the previous window fade', async () => {
    const limiter = new InMemoryRateLimiter();
    const a = { key: 'a', limit: 2, windowMs: 60_000 };
    const b = { key: 'b', limit: 3, windowMs: 60_000 };
    expect((await limiter.hit([a, b], 0)).allowed).toBe(true);
    expect((await limiter.hit([a, b], 1)).allowed).toBe(true);
    const refused = await limiter.hit([a, b], 2);
    expect(refused.allowed).toBe(false);
    expect(refused.counts[0]).toMatchObject({ remaining: 0 });
    expect(refused.counts[0]!.retryAfterMs).toBeGreaterThan(59_000);
    // `b` was not counted for the refused request: it still has one left.
    expect((await limiter.hit([b], 3)).counts[0]!.remaining).toBe(0);
    expect((await limiter.hit([b], 4)).allowed).toBe(false);
    // Next window: `a`'s two requests still weigh fully at its start, half of them half-way through.
    expect((await limiter.hit([a], 60_000)).allowed).toBe(false);
    // 2 × 0.49998 + 0, then + 1: under 2 both times; then 2 × 0.49995 + 2 is not.
    expect((await limiter.hit([a], 90_001)).allowed).toBe(true);
    expect((await limiter.hit([a], 90_002)).allowed).toBe(true);
    expect((await limiter.hit([a], 90_003)).allowed).toBe(false);
  });

  it('tells when a refused client may come back', () => {
    // Full window: back once the next one starts (the counted requests then fade).
    expect(retryAfterMs(10, { current: 10, previous: 0, elapsedMs: 15_000 }, 60_000)).toBe(45_001);
    // Held back by the previous window's weight: back as soon as enough of it has faded.
    const wait = retryAfterMs(10, { current: 5, previous: 10, elapsedMs: 15_000 }, 60_000);
    expect(wait).toBe(15_001);
    expect(10 * ((60_000 - 15_000 - wait) / 60_000) + 5).toBeLessThan(10);
  });
});

describe('the TELESALUD_RATE_LIMIT_* variables', () => {
  it('default to generous limits, take 0 as off, and refuse what is not a count', () => {
    expect(loadConfig({}).rateLimits).toEqual({ perSource: 600, perSourceSignedIn: 6000, perAccount: 1200 });
    expect(loadConfig({ TELESALUD_RATE_LIMIT_PER_SOURCE: '0', TELESALUD_RATE_LIMIT_PER_ACCOUNT: '0', TELESALUD_RATE_LIMIT_PER_SOURCE_SIGNED_IN: '0' }).rateLimits).toEqual({ perSource: 0, perSourceSignedIn: 0, perAccount: 0 });
    for (const [name, value] of [['TELESALUD_RATE_LIMIT_PER_SOURCE', 'lots'], ['TELESALUD_RATE_LIMIT_PER_ACCOUNT', '-1'], ['TELESALUD_RATE_LIMIT_PER_SOURCE_SIGNED_IN', '1.5']] as const) {
      expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
      expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^${name}: `));
    }
  });
});

describe('API rate limits on one node (counted in memory)', () => {
  let node: TestNode;
  let patientA: AuthTestClient;
  let patientB: AuthTestClient;

  beforeAll(async () => {
    node = await startTestNode('pglite', LIMITS);
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    for (const email of ['ana.rate@example.org', 'beto.rate@example.org']) await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email, role: 'patient', name: 'Paciente Prueba', password: PASSWORD });
    // Signed in from loopback (never limited as a source): the tests below use the sessions from elsewhere.
    patientA = new AuthTestClient(node);
    patientB = new AuthTestClient(node);
    expect((await patientA.signIn({ email: 'ana.rate@example.org', password: PASSWORD })).statusCode).toBe(200);
    expect((await patientB.signIn({ email: 'beto.rate@example.org', password: PASSWORD })).statusCode).toBe(200);
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(async () => node?.stop());

  /** The same browser session, seen from another address. */
  const from = (client: AuthTestClient, remoteAddress: string) => Object.assign(new AuthTestClient(node, remoteAddress), { cookie: client.cookie, csrf: client.csrf });

  it('limits anonymous requests per source: 429 with Retry-After and RateLimit headers, one security event, other sources and health checks untouched, and a fresh budget after the window', async () => {
    freshWindow();
    const source = '203.0.113.10';
    const answers: LightMyRequestResponse[] = [];
    for (let i = 0; i < 5; i++) answers.push(await metadata(node, source));
    expect(answers.map((r) => r.statusCode)).toEqual([200, 200, 200, 200, 200]);
    expect(answers.map((r) => r.headers['ratelimit-remaining'])).toEqual(['4', '3', '2', '1', '0']);
    expect(answers[0]!.headers['ratelimit-limit']).toBe('5');
    expect(answers[0]!.headers['ratelimit-policy']).toBe('5;w=60');

    // FHIR routes refuse with an OperationOutcome…
    const fhir = await metadata(node, source);
    expect(fhir.statusCode).toBe(429);
    expect(Number(fhir.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(fhir.headers['retry-after'])).toBeLessThanOrEqual(61);
    expect(fhir.headers['ratelimit-remaining']).toBe('0');
    expect(fhir.headers['content-type']).toContain('application/fhir+json');
    expect(fhir.json()).toEqual({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'throttled', diagnostics: expect.stringContaining('too many requests from this address') }] });
    // …the application API with its JSON error; a request without credentials counts as anonymous too.
    const api = await node.app.inject({ method: 'GET', url: '/api/auth/session', remoteAddress: source });
    expect(api.statusCode).toBe(429);
    expect(api.json()).toMatchObject({ error: 'rate-limited', retryAfterSeconds: Number(api.headers['retry-after']) });

    // Not limited: another address, health checks, the web app's own pages.
    expect((await metadata(node, '203.0.113.11')).statusCode).toBe(200);
    for (let i = 0; i < 10; i++) expect((await node.app.inject({ method: 'GET', url: '/healthz', remoteAddress: source })).statusCode).toBe(200);
    expect((await node.app.inject({ method: 'GET', url: '/readyz', remoteAddress: source })).statusCode).not.toBe(429);

    // One security event for the source however many requests were refused in the window.
    await node.ctx.audit.drain();
    const events = (await rateLimitedEntries(node)).filter((e) => e.source === source);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ actor: 'anonymous', outcome: 'denied' });
    expect(detailOf(events[0]!)).toMatchObject({ bucket: 'source', route: '/fhir/R4/metadata', method: 'GET', limit: 5, windowSeconds: 60, counting: 'local' });

    // Two windows on, the budget is whole again.
    advanceClock(120_000);
    expect((await metadata(node, source)).statusCode).toBe(200);
    expect((await metadata(node, source)).headers['ratelimit-remaining']).toBe('3');

    const metrics = (await node.request({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^telesalud_rate_limited_total\{bucket="source"\} [2-9]\d*$/m);
    expect(metrics).toMatch(/^telesalud_rate_limit_shared 0$/m);
  });

  it('counts signed-in requests per account wherever they come from, and per source with a higher ceiling; other accounts and addresses go on', async () => {
    freshWindow();
    const office = '203.0.113.20';
    const a = from(patientA, office);
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) codes.push((await a.get('/api/auth/session')).statusCode);
    expect(codes).toEqual([200, 200, 200, 200]);
    const refused = await a.get('/api/auth/session');
    expect(refused.statusCode).toBe(429);
    expect(refused.json().message).toContain('too many requests from this account');
    expect(refused.headers['ratelimit-limit']).toBe('4');
    // The same account from another address: the same budget, spent.
    expect((await from(patientA, '198.51.100.21').get('/api/auth/session')).statusCode).toBe(429);
    // Another account behind the same address: its own budget, up to the address's signed-in ceiling (6).
    const b = from(patientB, office);
    expect((await b.get('/api/auth/session')).statusCode).toBe(200);
    expect((await b.get('/api/auth/session')).statusCode).toBe(200);
    const full = await b.get('/api/auth/session');
    expect(full.statusCode).toBe(429);
    expect(full.json().message).toContain('too many requests from this address');
    expect(full.headers['ratelimit-limit']).toBe('6');
    // …while that account, elsewhere, still has its own two left.
    expect((await from(patientB, '198.51.100.22').get('/api/auth/session')).statusCode).toBe(200);

    await node.ctx.audit.drain();
    const accountId = (await node.ctx.store.db.selectFrom('account').select('id').where('email', '=', 'ana.rate@example.org').executeTakeFirstOrThrow()).id;
    const events = await rateLimitedEntries(node);
    const forA = events.filter((e) => e.actor === `account:${accountId}`);
    expect(forA).toHaveLength(1);
    expect(detailOf(forA[0]!)).toMatchObject({ bucket: 'account', route: '/api/auth/session' });
    expect(events.some((e) => e.source === office && detailOf(e).bucket === 'source-signed-in')).toBe(true);

    advanceClock(120_000);
    expect((await a.get('/api/auth/session')).statusCode).toBe(200);
  });

  it('counts an OAuth client as one account across addresses; the bootstrap token is counted per source only', async () => {
    freshWindow();
    const client = await addClient(node.ctx.store.db, { name: 'laboratorio', scopes: 'system/Patient.read' });
    const token = await node.app.inject({
      method: 'POST',
      url: '/oauth2/token',
      remoteAddress: '192.0.2.50',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `grant_type=client_credentials&client_id=${client.client_id}&client_secret=${client.client_secret}`,
    });
    expect(token.statusCode).toBe(200);
    const search = (remoteAddress: string) => node.app.inject({ method: 'GET', url: '/fhir/R4/Patient?_count=1', remoteAddress, headers: { authorization: `Bearer ${token.json().access_token}` } });
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push((await search(`192.0.2.${60 + i}`)).statusCode);
    expect(codes).toEqual([200, 200, 200, 200, 429]);
    expect((await search('192.0.2.70')).json().issue[0]).toMatchObject({ code: 'throttled', diagnostics: expect.stringContaining('this account') });

    // The operator's key from this machine: neither an account nor a limited source.
    for (let i = 0; i < 12; i++) expect((await node.request({ method: 'GET', url: '/fhir/R4/Patient?_count=1' })).statusCode).toBe(200);
    // From elsewhere it is counted per source, against the signed-in ceiling.
    const admin = (remoteAddress: string) => node.request({ method: 'GET', url: '/fhir/R4/Patient?_count=1', remoteAddress });
    for (let i = 0; i < 6; i++) expect((await admin('192.0.2.80')).statusCode).toBe(200);
    expect((await admin('192.0.2.80')).statusCode).toBe(429);
  });

  it('counts an app\'s token against the account it acts for (with that person\'s sessions) and against the app as a whole', async () => {
    freshWindow();
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const people: Awaited<ReturnType<typeof createAccount>>[] = [];
    for (const email of ['carla.rate@example.org', 'dani.rate@example.org', 'eva.rate@example.org']) people.push(await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email, role: 'patient', name: 'Paciente Prueba', password: PASSWORD }));
    const app = await addClient(node.ctx.store.db, { name: 'Diario de salud', scopes: 'launch/patient patient/*.read', redirectUris: ['https://diario.example.org/cb'], public: true });
    const tokenFor = async (person: (typeof people)[number]): Promise<string> => (await issueAccessToken(node.ctx.store.db, app.client_id, 'patient/*.read launch/patient', new Date(), { accountId: person.id, patient: person.patientId!, grantHash: randomBytes(32) })).token;
    const read = (token: string, remoteAddress: string) => node.app.inject({ method: 'GET', url: '/fhir/R4/Patient?_count=1', remoteAddress, headers: { authorization: `Bearer ${token}` } });
    const [carla, dani, eva] = people as [(typeof people)[number], (typeof people)[number], (typeof people)[number]];

    // Carla's browser and her app draw on one budget (4), wherever each of them is.
    const browser = new AuthTestClient(node);
    expect((await browser.signIn({ email: carla.email, password: PASSWORD })).statusCode).toBe(200);
    const carlaToken = await tokenFor(carla);
    expect((await from(browser, '198.51.100.30').get('/api/auth/session')).statusCode).toBe(200);
    expect((await from(browser, '198.51.100.30').get('/api/auth/session')).statusCode).toBe(200);
    expect((await read(carlaToken, '198.51.100.31')).statusCode).toBe(200);
    expect((await read(carlaToken, '198.51.100.32')).statusCode).toBe(200);
    const refused = await read(carlaToken, '198.51.100.33');
    expect(refused.statusCode).toBe(429);
    expect(refused.json().issue[0].diagnostics).toContain('this account');
    expect((await from(browser, '198.51.100.30').get('/api/auth/session')).statusCode).toBe(429);

    // The app as a whole, for everyone it acts for, from everywhere: the signed-in ceiling (6) —
    // Carla's two app requests, then Dani's four and Eva's first go over it.
    const daniToken = await tokenFor(dani);
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) codes.push((await read(daniToken, `198.51.100.${40 + i}`)).statusCode);
    expect(codes).toEqual([200, 200, 200, 200]);
    const appFull = await read(await tokenFor(eva), '198.51.100.50');
    expect(appFull.statusCode).toBe(429);
    expect(appFull.json().issue[0].diagnostics).toContain('this app');
    expect(appFull.headers['ratelimit-limit']).toBe('6');
    // Eva herself is not spent: signed in, she goes on.
    const evaBrowser = new AuthTestClient(node);
    expect((await evaBrowser.signIn({ email: eva.email, password: PASSWORD })).statusCode).toBe(200);
    expect((await from(evaBrowser, '198.51.100.51').get('/api/auth/session')).statusCode).toBe(200);

    await node.ctx.audit.drain();
    const events = await rateLimitedEntries(node);
    expect(events.filter((e) => e.actor === `account:${carla.id}`).map((e) => detailOf(e).bucket)).toEqual(['account']);
    expect(events.filter((e) => e.actor === `client:${app.client_id}`).map((e) => detailOf(e).bucket)).toEqual(['client']);
  });

  it('counts refused credentials like anonymous traffic, and then refuses that source before looking credentials up', async () => {
    freshWindow();
    const guesser = '203.0.113.40';
    const guess = (n: number) => node.app.inject({ method: 'GET', url: '/fhir/R4/Patient', remoteAddress: guesser, headers: { authorization: `Bearer not-a-token-${n}` } });
    const codes: number[] = [];
    for (let i = 0; i < 7; i++) codes.push((await guess(i)).statusCode);
    expect(codes).toEqual([401, 401, 401, 401, 401, 401, 429]);
    expect((await guess(99)).statusCode).toBe(429);
    // A real session from there is held back too (the address spent its budget), one from elsewhere is not.
    expect((await from(patientB, guesser).get('/api/auth/session')).statusCode).toBe(429);
    advanceClock(120_000);
    expect((await from(patientB, '203.0.113.41').get('/api/auth/session')).statusCode).toBe(200);
  });
});

describe('API rate limits behind a trusted proxy', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startTestNode('pglite', { ...LIMITS, TELESALUD_TRUSTED_PROXIES: '10.0.0.5' });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(async () => node?.stop());

  it('never limits the proxy as a source, limits the client it forwards, and ignores X-Forwarded-For from anyone else', async () => {
    freshWindow();
    // The proxy's own requests (no X-Forwarded-For): it is not the client.
    for (let i = 0; i < 12; i++) expect((await metadata(node, '10.0.0.5')).statusCode).toBe(200);
    // Clients it forwards: each limited on its own.
    const forwarded = (client: string) => metadata(node, '10.0.0.5', { 'x-forwarded-for': client });
    const codes: number[] = [];
    for (let i = 0; i < 6; i++) codes.push((await forwarded('203.0.113.30')).statusCode);
    expect(codes).toEqual([200, 200, 200, 200, 200, 429]);
    expect((await forwarded('203.0.113.31')).statusCode).toBe(200);
    await node.ctx.audit.drain();
    expect((await rateLimitedEntries(node)).map((e) => e.source)).toEqual(['203.0.113.30']);
    // Anyone else's X-Forwarded-For is just a header: the address counted is the connection's.
    const spoofer = (n: number) => metadata(node, '198.51.100.9', { 'x-forwarded-for': `203.0.113.${100 + n}` });
    const spoofed: number[] = [];
    for (let i = 0; i < 6; i++) spoofed.push((await spoofer(i)).statusCode);
    expect(spoofed).toEqual([200, 200, 200, 200, 200, 429]);
  });
});
