import { EventEmitter } from 'node:events';

/**
 * Cross-node messaging. A message published on one node reaches the subscribers of that
 * channel on every node. One node uses the in-process bus; the farm swaps in Redis pub/sub
 * behind the same interface. Messages carry ids, never health data.
 */
export interface Bus {
  publish(channel: string, message: unknown): Promise<void>;
  /** Returns a function that ends the subscription. */
  subscribe(channel: string, handler: (message: unknown) => void): Promise<() => Promise<void>>;
  /** What /readyz and the admin status report about the bus. */
  status(): BusStatus;
  close(): Promise<void>;
}

/**
 * `single-node`: no Redis configured. `connected`: farm mode working. `down`: Redis is
 * configured but unreachable since `since` (ISO time): sign-in and the record keep working,
 * consultation signaling falls back to rooms on each node.
 */
export type BusStatus = { redis: 'none' } | { redis: 'connected'; since: string } | { redis: 'down'; since: string };

export class InProcessBus implements Bus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  async publish(channel: string, message: unknown): Promise<void> {
    // Deliver a copy, as a remote bus would: subscribers never share the publisher's object.
    const copy = structuredClone(message);
    queueMicrotask(() => this.emitter.emit(channel, copy));
  }

  async subscribe(channel: string, handler: (message: unknown) => void): Promise<() => Promise<void>> {
    this.emitter.on(channel, handler);
    return async () => {
      this.emitter.off(channel, handler);
    };
  }

  status(): BusStatus {
    return { redis: 'none' };
  }

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}
