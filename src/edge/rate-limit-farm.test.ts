import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount } from '../auth/accounts/account-service.js';
import { AuthTestClient } from '../auth/auth-test-client.js';
import { RedisRateLimiter, SYNC_INTERVAL_MS } from '../cluster/redis-rate-limiter.js';
import { startThrowawayRedis, TEST_REDIS_URL, type ThrowawayRedis } from '../cluster/throwaway-redis.js';
import { Repository } from '../records/repository.js';
import { startTestNode, type TestNode } from '../test-support/test-node.js';

const PASSWORD = 'girasoles-bajo-la-tormenta-de-Salta-97';
const LIMITS = { TELESALUD_RATE_LIMIT_PER_SOURCE: '5', TELESALUD_RATE_LIMIT_PER_SOURCE_SIGNED_IN: '50', TELESALUD_RATE_LIMIT_PER_ACCOUNT: '4' };

const metadata = (node: TestNode, remoteAddress: string) => node.app.inject({ method: 'GET', url: '/fhir/R4/metadata', remoteAddress });

/** A second into a window of its own (Date only, still running), so no test straddles a window's edge. */
function freshWindow(): void {
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
  vi.setSystemTime(Math.ceil(Date.now() / 60_000) * 60_000 + 120_000 + 1000);
}

const limiterOf = (node: TestNode) => node.ctx.rateLimiter as RedisRateLimiter;

/** Each node in turn shares its counts and learns the farm's (a sync that starts after the call); how long it took. */
async function synced(...nodes: TestNode[]): Promise<number> {
  const started = performance.now();
  for (const node of nodes) await limiterOf(node).nextSync();
  return performance.now() - started;
}

/** The INFO commandstats calls of every command, and those of scripts (one round trip each). */
async function commandCalls(redis: Redis): Promise<{ all: number; scripts: number }> {
  const info = (await redis.info('commandstats')) as string;
  let all = 0;
  let scripts = 0;
  for (const m of info.matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm)) {
    all += Number(m[2]);
    if (m[1]!.startsWith('eval')) scripts += Number(m[2]);
  }
  return { all, scripts };
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Two nodes of one farm: one PostgreSQL database and one Redis (the machine's, under a key prefix
 * of this run only), each node with its own in-process state — as behind a load balancer.
 */
describe.skipIf(!process.env.TELESALUD_TEST_DATABASE_URL)('rate limits shared by the nodes of a farm (Redis)', () => {
  let a: TestNode;
  let b: TestNode;
  const shared = {
    ...LIMITS,
    TELESALUD_REDIS_URL: TEST_REDIS_URL,
    TELESALUD_REDIS_PREFIX: `telesalud-test:rate:${randomBytes(5).toString('hex')}:`,
    TELESALUD_MASTER_KEY: randomBytes(32).toString('base64'),
  };

  beforeAll(async () => {
    a = await startTestNode('postgres', shared);
    // The second node on the first one's database, with the same admin token.
    b = await startTestNode('pglite', { ...shared, TELESALUD_DATABASE_URL: a.config.databaseUrl!, TELESALUD_ADMIN_TOKEN: a.token });
    const records = new Repository(a.ctx.store.db, a.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    await createAccount(a.ctx.store.db, records, a.ctx.keyRing, { email: 'carla.farm@example.org', role: 'patient', name: 'Paciente Prueba', password: PASSWORD });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(async () => {
    await b?.stop();
    await a?.stop();
  });

  it('adds up one source\'s requests whichever node they reach after a sync, and once one node refuses, all do', async () => {
    freshWindow();
    const source = '203.0.113.50';
    const limit = { key: `source:${source}`, limit: 5, windowMs: 60_000 };
    const codes: number[] = [];
    for (const node of [a, a, a]) codes.push((await metadata(node, source)).statusCode);
    // Counted on each node at once; shared within a sync interval: a's three pushed, then b, touching
    // the key, learns the four. (A node refreshes the keys it touched since its last sync: b's own
    // timer may sync its request before this test does, so the order of touch and syncs is fixed here.)
    expect(await synced(a)).toBeLessThan(2 * SYNC_INTERVAL_MS + 1000);
    codes.push((await metadata(b, source)).statusCode);
    expect(codes).toEqual([200, 200, 200, 200]);
    expect(await synced(b)).toBeLessThan(2 * SYNC_INTERVAL_MS + 1000);
    expect(limiterOf(b).peek([limit]).counts[0]!.remaining).toBe(0);
    expect((await metadata(b, source)).statusCode).toBe(200);
    expect((await metadata(b, source)).statusCode).toBe(429);
    // a counted three and has not synced the key since: the trip announced by b is what it refuses on.
    await until(() => !limiterOf(a).peek([limit]).allowed);
    expect((await metadata(a, source)).statusCode).toBe(429);
    // Another address: its own budget on either node.
    expect((await metadata(b, '203.0.113.51')).statusCode).toBe(200);

    await Promise.all([a.ctx.audit.drain(), b.ctx.audit.drain()]);
    const events = await a.ctx.store.db.selectFrom('audit_event').select(['source', 'detail']).where('action', '=', 'rate-limited').where('source', '=', source).execute();
    expect(events).toHaveLength(1);
    const detail = typeof events[0]!.detail === 'string' ? JSON.parse(events[0]!.detail) : events[0]!.detail;
    expect(detail).toMatchObject({ bucket: 'source', counting: 'shared', route: '/fhir/R4/metadata' });

    const metrics = (await a.request({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^telesalud_rate_limit_shared 1$/m);
  });

  it('adds up one account\'s requests whichever node and address they come from', async () => {
    freshWindow();
    const patient = new AuthTestClient(a);
    expect((await patient.signIn({ email: 'carla.farm@example.org', password: PASSWORD })).statusCode).toBe(200);
    const on = (node: TestNode, remoteAddress: string) => Object.assign(new AuthTestClient(node, remoteAddress), { cookie: patient.cookie, csrf: patient.csrf });
    const codes: number[] = [];
    codes.push((await on(a, '198.51.100.1').get('/api/auth/session')).statusCode);
    await synced(a);
    codes.push((await on(b, '198.51.100.2').get('/api/auth/session')).statusCode);
    await synced(b);
    for (const address of ['198.51.100.3', '198.51.100.4']) codes.push((await on(b, address).get('/api/auth/session')).statusCode);
    expect(codes).toEqual([200, 200, 200, 200]);
    const refused = await on(b, '198.51.100.5').get('/api/auth/session');
    expect(refused.statusCode).toBe(429);
    expect(refused.json().message).toContain('this account');
  });

  it('keeps one live password-check budget per invitation for the whole farm, not one per node', async () => {
    freshWindow();
    const invited = await a.request({ method: 'POST', url: '/api/invitations', payload: { email: 'dario.farm@example.org', role: 'clinician' } });
    expect(invited.statusCode).toBe(201);
    const token = String(invited.json().url).split('#')[1]!;
    // Each check from an address of its own: the budget is the invitation's, whoever asks.
    const check = (node: TestNode, i: number) => node.app.inject({ method: 'POST', url: '/api/invitations/password-check', payload: { token, password: `clave${i}` }, remoteAddress: `192.0.2.${i + 1}` });
    const codes: number[] = [];
    for (let i = 0; i < 40; i++) codes.push((await check(i % 2 === 0 ? a : b, i)).statusCode);
    expect(codes.every((c) => c === 200)).toBe(true);
    // Forty on two nodes: the forty-first is refused on either (per node it would be 20 + 20 of 40 each).
    const refusedA = await check(a, 40);
    const refusedB = await check(b, 41);
    expect([refusedA.statusCode, refusedB.statusCode]).toEqual([429, 429]);
    expect(Number(refusedB.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(refusedB.json()).toMatchObject({ error: 'throttled' });
  });
});

describe('rate limits while Redis is down', () => {
  let redis: ThrowawayRedis;
  let node: TestNode;
  beforeAll(async () => {
    redis = await startThrowawayRedis();
    await redis.start();
    node = await startTestNode('pglite', { ...LIMITS, TELESALUD_REDIS_URL: redis.url, TELESALUD_REDIS_PREFIX: 'outage:' });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(async () => {
    await node?.stop();
    await redis?.stop();
  });

  it('does not wait on a Redis that hangs, and says it counts alone once a sync is stuck', async () => {
    freshWindow();
    const limiter = limiterOf(node);
    expect((await metadata(node, '203.0.113.63')).statusCode).toBe(200);
    await limiter.nextSync();
    expect(limiter.mode()).toBe('shared');
    const fallbacks = limiter.fallbacks();
    const admin = new Redis(redis.url, { lazyConnect: false });
    try {
      // Redis holds every client's commands for 3 s (the bus would wait 2 s for each).
      await admin.call('client', 'pause', '3000', 'ALL');
      const started = performance.now();
      const res = await metadata(node, '203.0.113.63');
      const ms = performance.now() - started;
      expect(res.statusCode).toBe(200);
      // No request waits on Redis (the old per-request count waited 500 ms before giving up).
      expect(ms).toBeLessThan(450);
      // The sync carrying that request hangs: after half a second the node says it counts alone.
      await until(() => limiter.mode() === 'local', 2500);
      expect((await metadata(node, '203.0.113.63')).statusCode).toBe(200);
      expect(limiter.fallbacks()).toBeGreaterThan(fallbacks);
    } finally {
      await admin.call('client', 'unpause').catch(() => undefined);
      admin.disconnect();
    }
    await until(() => limiter.mode() === 'shared', 6000);
  });

  it('keeps serving, counting on this node alone (failing open), and says so in the metrics', async () => {
    freshWindow();
    expect((await metadata(node, '203.0.113.60')).statusCode).toBe(200);
    await redis.stop();
    await until(() => node.ctx.bus.status().redis === 'down');
    const source = '203.0.113.61';
    const codes: number[] = [];
    for (let i = 0; i < 6; i++) codes.push((await metadata(node, source)).statusCode);
    // Served as usual, and still limited: by this node's own count.
    expect(codes).toEqual([200, 200, 200, 200, 200, 429]);
    expect((await metadata(node, '203.0.113.62')).statusCode).toBe(200);
    const metrics = (await node.request({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^telesalud_rate_limit_shared 0$/m);
    expect(Number(/^telesalud_rate_limit_fallbacks_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(7);
  });
});

describe('rate limits in a farm cost no Redis round trip per request', () => {
  let redis: ThrowawayRedis;
  let node: TestNode;
  let admin: Redis;
  beforeAll(async () => {
    // A Redis of this test's own, so its command counts are this node's alone.
    redis = await startThrowawayRedis();
    await redis.start();
    node = await startTestNode('pglite', { TELESALUD_RATE_LIMIT_PER_SOURCE: '1000', TELESALUD_REDIS_URL: redis.url, TELESALUD_REDIS_PREFIX: 'cost:' });
    admin = new Redis(redis.url);
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(async () => {
    admin?.disconnect();
    await node?.stop();
    await redis?.stop();
  });

  it('counts 200 requests with a few syncs, not 200 commands, and the farm\'s count has them all', async () => {
    freshWindow();
    const limiter = limiterOf(node);
    await limiter.nextSync();
    const before = await commandCalls(admin);
    const started = performance.now();
    const sources = ['203.0.113.70', '203.0.113.71'];
    for (let i = 0; i < 200; i++) expect((await metadata(node, sources[i % 2]!)).statusCode).toBe(200);
    await limiter.nextSync();
    const elapsed = performance.now() - started;
    const after = await commandCalls(admin);
    // At most one script per sync interval (plus the one awaited), each adding to and reading
    // two keys (three commands at most); the INFO call itself and bus traffic are the rest.
    const syncs = after.scripts - before.scripts;
    expect(syncs).toBeLessThanOrEqual(Math.ceil(elapsed / SYNC_INTERVAL_MS) + 2);
    expect(after.all - before.all).toBeLessThan(Math.min(200, 8 * syncs + 20));
    const index = Math.floor(Date.now() / 60_000);
    const shared = await Promise.all(sources.map((s) => admin.get(`cost:rate:60000:source:${s}:${index}`)));
    expect(shared.map(Number)).toEqual([100, 100]);
  });
});
