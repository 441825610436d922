import { describe, expect, it } from 'vitest';
import { InProcessBus } from './bus.js';

describe('in-process bus', () => {
  it('delivers to every subscriber of the channel, a copy each, and nothing to other channels', async () => {
    const bus = new InProcessBus();
    const a: unknown[] = [];
    const b: unknown[] = [];
    const other: unknown[] = [];
    await bus.subscribe('room:1', (m) => a.push(m));
    await bus.subscribe('room:1', (m) => b.push(m));
    await bus.subscribe('room:2', (m) => other.push(m));
    const message = { kind: 'joined', participant: 'Practitioner/1' };
    await bus.publish('room:1', message);
    await new Promise((r) => setTimeout(r, 0));
    expect(a).toEqual([message]);
    expect(b).toEqual([message]);
    expect(a[0]).not.toBe(message);
    expect(other).toEqual([]);
  });

  it('stops delivering after unsubscribe and after close', async () => {
    const bus = new InProcessBus();
    const got: unknown[] = [];
    const unsubscribe = await bus.subscribe('c', (m) => got.push(m));
    await bus.publish('c', 1);
    await new Promise((r) => setTimeout(r, 0));
    await unsubscribe();
    await bus.publish('c', 2);
    await bus.subscribe('c', (m) => got.push(m));
    await bus.close();
    await bus.publish('c', 3);
    await new Promise((r) => setTimeout(r, 0));
    expect(got).toEqual([1]);
  });
});
