import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testLogger } from '../test-support/test-node.js';
import { RedisBus } from './redis-bus.js';
import { RedisRateLimiter } from './redis-rate-limiter.js';
import { startThrowawayRedis, TEST_REDIS_URL, type ThrowawayRedis } from './throwaway-redis.js';

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Two nodes' limiters on one Redis (a key prefix of this run's own), as in a farm. */
describe('the farm\'s local-first rate limiter', () => {
  const prefix = `telesalud-test:rate-unit:${randomBytes(5).toString('hex')}:`;
  let busA: RedisBus;
  let busB: RedisBus;
  let a: RedisRateLimiter;
  let b: RedisRateLimiter;
  beforeAll(async () => {
    busA = new RedisBus(TEST_REDIS_URL, { prefix, logger: testLogger() });
    busB = new RedisBus(TEST_REDIS_URL, { prefix, logger: testLogger() });
    expect(await busA.ready(5000)).toBe(true);
    expect(await busB.ready(5000)).toBe(true);
    a = new RedisRateLimiter(busA, testLogger());
    b = new RedisRateLimiter(busB, testLogger());
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    const keys = await busA.redis.keys(`${prefix}*`);
    if (keys.length > 0) await busA.redis.del(...keys);
    await busA?.close();
    await busB?.close();
  });

  it('counts its own requests at once and the other node\'s after a sync; overshoots by no more than the bound', async () => {
    const limit = { key: 'source:198.51.100.20', limit: 10, windowMs: 60_000 };
    // One instant for every count: no test straddles a window's edge.
    const t = Math.floor(Date.now() / 60_000) * 60_000 + 1000;
    const now = () => t;
    for (let i = 0; i < 6; i++) expect(a.hitNow([limit], now()).allowed).toBe(true);
    // b has not heard of a's six yet: it decides on its own four.
    for (let i = 0; i < 4; i++) expect(b.hitNow([limit], now()).allowed).toBe(true);
    await a.nextSync();
    await b.nextSync();
    // b touched the key and synced after a: it knows the farm's ten.
    expect(b.hitNow([limit], now()).allowed).toBe(false);
    // a has not read the key since b counted: one more from it is the overshoot the design allows
    // (what a node admits for a key in the one interval before it learns the farm's count) …
    expect(a.hitNow([limit], now()).allowed).toBe(true);
    await a.nextSync();
    // … and then it refuses too.
    expect(a.hitNow([limit], now()).allowed).toBe(false);
    expect(Number(await busA.redis.get(`${prefix}rate:60000:${limit.key}:${Math.floor(t / 60_000)}`))).toBe(11);
  });

  it('counts a request against every limit or none, on the node as in Redis', async () => {
    const tight = { key: 'account:tight', limit: 1, windowMs: 60_000 };
    const loose = { key: 'source:198.51.100.21', limit: 100, windowMs: 60_000 };
    const t = Math.floor(Date.now() / 60_000) * 60_000 + 1000;
    expect(a.hitNow([loose, tight], t).allowed).toBe(true);
    const refused = a.hitNow([loose, tight], t);
    expect(refused.allowed).toBe(false);
    expect(refused.counts[1]!.retryAfterMs).toBeGreaterThan(0);
    await a.nextSync();
    expect(Number(await busA.redis.get(`${prefix}rate:60000:${loose.key}:${Math.floor(t / 60_000)}`))).toBe(1);
    expect(a.peek([loose], t).counts[0]!.remaining).toBe(98);
  });

  it('weighs the previous window by what the farm counted in it, learnt at the first sync', async () => {
    const windowMs = 2000;
    const limit = { key: 'source:198.51.100.22', limit: 4, windowMs };
    // Early in a window, so that the next one starts well after a's sync.
    await new Promise((r) => setTimeout(r, windowMs - (Date.now() % windowMs) + 50));
    for (let i = 0; i < 4; i++) expect(a.hitNow([limit]).allowed).toBe(true);
    await a.nextSync();
    await new Promise((r) => setTimeout(r, windowMs - (Date.now() % windowMs) + 50));
    // b, in the next window, has never seen the key: it learns the previous window's four at its sync.
    b.hitNow([limit]);
    await b.nextSync();
    expect(b.peek([limit]).allowed).toBe(false);
  });
});

describe('the farm\'s local-first rate limiter while Redis is down', () => {
  let redis: ThrowawayRedis;
  let bus: RedisBus;
  let limiter: RedisRateLimiter;
  beforeAll(async () => {
    redis = await startThrowawayRedis();
    await redis.start();
    bus = new RedisBus(redis.url, { prefix: 'down:', logger: testLogger() });
    expect(await bus.ready(5000)).toBe(true);
    limiter = new RedisRateLimiter(bus, testLogger());
  });
  afterAll(async () => {
    await limiter?.close();
    await bus?.close();
    await redis?.stop();
  });

  it('decides alone, keeps what it let through, and shares it once Redis is back', async () => {
    const limit = { key: 'source:198.51.100.30', limit: 3, windowMs: 60_000 };
    await redis.stop();
    await until(() => !bus.connected());
    expect(limiter.mode()).toBe('local');
    const before = limiter.fallbacks();
    const t = Math.floor(Date.now() / 60_000) * 60_000 + 1000;
    expect([1, 2, 3, 4].map(() => limiter.hitNow([limit], t).allowed)).toEqual([true, true, true, false]);
    expect(limiter.fallbacks()).toBe(before + 4);
    await limiter.nextSync();
    expect(limiter.mode()).toBe('local');

    await redis.start();
    await until(() => bus.connected(), 10_000);
    limiter.hitNow([limit], t);
    await limiter.nextSync();
    expect(limiter.mode()).toBe('shared');
    // The three counted while Redis was down reached it (a restarted Redis had nothing).
    expect(Number(await bus.redis.get(`down:rate:60000:${limit.key}:${Math.floor(t / 60_000)}`))).toBe(3);
  });
});
