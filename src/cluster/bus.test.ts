import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { testLogger } from '../test-support/test-node.js';
import { InProcessBus, type Bus } from './bus.js';
import { RedisBus } from './redis-bus.js';
import { startThrowawayRedis, TEST_REDIS_URL } from './throwaway-redis.js';


const made: Bus[] = [];
afterAll(async () => {
  for (const bus of made) await bus.close();
});

/** Each Redis bus of this run under its own prefix, so runs and files never hear each other. */
async function redisBus(prefix = `telesalud-test:${randomBytes(6).toString('hex')}:`): Promise<RedisBus> {
  const bus = new RedisBus(TEST_REDIS_URL, { prefix, logger: testLogger() });
  made.push(bus);
  if (!(await bus.ready(5000))) throw new Error(`Redis at ${TEST_REDIS_URL} is not reachable (npm test starts it)`);
  return bus;
}

const IMPLEMENTATIONS: [string, () => Promise<Bus>][] = [
  ['in-process', async () => new InProcessBus()],
  ['redis', () => redisBus()],
];

/** Waits until `list` has `n` entries (a remote bus delivers asynchronously). */
async function until(list: unknown[], n: number, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (list.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
}

describe.each(IMPLEMENTATIONS)('%s bus', (_name, make) => {
  it('delivers to every subscriber of the channel, a copy each, and nothing to other channels', async () => {
    const bus = await make();
    const a: unknown[] = [];
    const b: unknown[] = [];
    const other: unknown[] = [];
    await bus.subscribe('room:1', (m) => a.push(m));
    await bus.subscribe('room:1', (m) => b.push(m));
    await bus.subscribe('room:2', (m) => other.push(m));
    const message = { kind: 'joined', participant: 'Practitioner/1' };
    await bus.publish('room:1', message);
    await until(a, 1);
    await until(b, 1);
    expect(a).toEqual([message]);
    expect(b).toEqual([message]);
    expect(a[0]).not.toBe(message);
    expect(other).toEqual([]);
  });

  it('keeps the order of one publisher', async () => {
    const bus = await make();
    const got: unknown[] = [];
    await bus.subscribe('ordered', (m) => got.push(m));
    for (let i = 0; i < 200; i++) void bus.publish('ordered', i);
    await until(got, 200);
    expect(got).toEqual([...Array(200).keys()]);
  });

  it('stops delivering after unsubscribe and after close', async () => {
    const bus = await make();
    const got: unknown[] = [];
    const marks: unknown[] = [];
    await bus.subscribe('mark', (m) => marks.push(m));
    const unsubscribe = await bus.subscribe('c', (m) => got.push(m));
    await bus.publish('c', 1);
    await until(got, 1);
    await unsubscribe();
    await bus.publish('c', 2);
    // The mark is published after 2: once it arrives, 2 would have too.
    await bus.publish('mark', 'after-2');
    await until(marks, 1);
    await bus.subscribe('c', (m) => got.push(m));
    await bus.close();
    await bus.publish('c', 3);
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual([1]);
  });
});

describe('redis bus', () => {
  it('reaches the other nodes of the same prefix and only them', async () => {
    const prefix = `telesalud-test:${randomBytes(6).toString('hex')}:`;
    const [a, b, stranger] = await Promise.all([redisBus(prefix), redisBus(prefix), redisBus()]);
    const onB: unknown[] = [];
    const onStranger: unknown[] = [];
    await b.subscribe('node:b', (m) => onB.push(m));
    await stranger.subscribe('node:b', (m) => onStranger.push(m));
    await a.publish('node:b', { to: 'p1', message: { type: 'reconnect' } });
    await until(onB, 1);
    expect(onB).toEqual([{ to: 'p1', message: { type: 'reconnect' } }]);
    expect(onStranger).toEqual([]);
    expect(a.status()).toMatchObject({ redis: 'connected' });
    expect(new InProcessBus().status()).toEqual({ redis: 'none' });
  });

  it('says down while Redis is unreachable, and reconnects and resubscribes by itself when it returns', async () => {
    const server = await startThrowawayRedis();
    try {
      const bus = new RedisBus(server.url, { prefix: 'outage:', logger: testLogger() });
      made.push(bus);
      expect(await bus.ready(5000)).toBe(true);
      const got: unknown[] = [];
      await bus.subscribe('c', (m) => got.push(m));
      await server.stop();
      const end = Date.now() + 5000;
      while (bus.status().redis !== 'down' && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      expect(bus.status().redis).toBe('down');
      // Refused at once, not queued for later.
      const started = Date.now();
      await expect(bus.publish('c', 'lost')).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(500);

      await server.start();
      expect(await bus.ready(10_000)).toBe(true);
      expect(bus.status().redis).toBe('connected');
      await bus.publish('c', 'back');
      await until(got, 1);
      expect(got).toEqual(['back']);
    } finally {
      await server.stop();
    }
  });
});
