import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { testLogger } from '../test-support/test-node.js';
import { RedisBanStore } from './redis-ban-store.js';
import { RedisBus } from './redis-bus.js';
import { startThrowawayRedis, TEST_REDIS_URL } from './throwaway-redis.js';

const policy = { threshold: 10, windowMs: 60_000, banMs: 1000, maxBanMs: 3000 };
const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

async function node(url: string, prefix: string): Promise<RedisBanStore> {
  const bus = new RedisBus(url, { prefix, logger: testLogger() });
  closers.push(() => bus.close());
  expect(await bus.ready(5000)).toBe(true);
  const store = new RedisBanStore(bus, testLogger(), policy);
  await store.start();
  closers.push(() => store.close());
  return store;
}

describe('bans shared across the farm (Redis)', () => {
  it('adds up offences from every node, and a ban on one node is a ban on all, longer each time', async () => {
    const prefix = `telesalud-test:${randomBytes(6).toString('hex')}:`;
    const [a, b] = await Promise.all([node(TEST_REDIS_URL, prefix), node(TEST_REDIS_URL, prefix)]);
    const source = '203.0.113.7';
    const now = Date.now();
    expect(await a.offence(source, 5, now)).toBeUndefined();
    // The second half of the points arrives at the other node.
    const first = await b.offence(source, 5, now + 1);
    expect(first).toBe(now + 1 + 1000);
    expect(await b.bannedUntil(source, now + 2)).toBe(first);
    const deadline = Date.now() + 2000;
    while ((await a.bannedUntil(source, now + 2)) === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(await a.bannedUntil(source, now + 2)).toBe(first);
    expect(await a.bannedUntil('198.51.100.1', now + 2)).toBeUndefined();
    // Over, then again: twice as long, never past the maximum.
    expect(await a.bannedUntil(source, now + 1002)).toBeUndefined();
    expect(await a.offence(source, 10, now + 2000)).toBe(now + 2000 + 2000);
    expect(await a.offence(source, 10, now + 5000)).toBe(now + 5000 + 3000);
    // A node started later learns the active ban from Redis.
    const c = await node(TEST_REDIS_URL, prefix);
    expect(await c.bannedUntil(source, now + 5001)).toBe(now + 8000);
  });

  it('bans on its own while Redis is down, and refuses no request for want of Redis', async () => {
    const server = await startThrowawayRedis();
    closers.push(() => server.stop());
    const store = await node(server.url, 'outage:');
    await server.stop();
    await new Promise((r) => setTimeout(r, 200));
    const now = Date.now();
    expect(await store.bannedUntil('203.0.113.9', now)).toBeUndefined();
    expect(await store.offence('203.0.113.9', 10, now)).toBe(now + 1000);
    expect(await store.bannedUntil('203.0.113.9', now + 1)).toBe(now + 1000);
  });
});
