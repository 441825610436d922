import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../logging/logger.js';
import { safeError } from '../logging/safe-error.js';
import type { Bus, BusStatus } from './bus.js';

/** Reconnect forever, backing off to at most this. */
const MAX_RECONNECT_DELAY_MS = 2000;
/** A command Redis doesn't answer in this long fails (a hung Redis must not hang a request). */
const COMMAND_TIMEOUT_MS = 2000;
/** While Redis stays down, say so in the log this often, not on every retry. */
const DOWN_LOG_EVERY_MS = 30_000;

export interface RedisBusOptions {
  /** Put before every key and channel: several deployments (or test runs) can share one Redis. */
  prefix: string;
  logger: Logger;
}

/**
 * The farm's bus: Redis pub/sub behind the Bus interface, plus the command connection the
 * cluster's shared state (consultation presence) uses. Two connections, because a Redis
 * connection in subscriber mode can run nothing else. Both reconnect by themselves; while
 * either is down, status() says `down` and commands fail at once (no offline queue: a
 * signaling message queued for seconds is worse than one refused).
 *
 * Publishing and the shared state go over the same connection, so Redis executes a node's
 * state changes and the messages that announce them in the order the node issued them.
 */
export class RedisBus implements Bus {
  /** Keys and commands of the shared state; every key must start with `prefix`. */
  readonly redis: Redis;
  readonly prefix: string;
  private readonly subscriber: Redis;
  private readonly handlers = new Map<string, Set<(message: unknown) => void>>();
  private readonly logger: Logger;
  private state: { up: boolean; since: number } = { up: false, since: Date.now() };
  private lastDownLog = 0;
  private closed = false;
  /** The subscriber connection has every channel of `handlers` subscribed again since it last (re)connected. */
  private subscribed = false;
  private readonly listeners = new Set<(up: boolean) => void>();

  constructor(url: string, options: RedisBusOptions) {
    this.prefix = options.prefix;
    this.logger = options.logger;
    const common: RedisOptions = {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: COMMAND_TIMEOUT_MS,
      connectTimeout: COMMAND_TIMEOUT_MS,
      retryStrategy: (times) => Math.min(100 * times, MAX_RECONNECT_DELAY_MS),
      // Subscriptions are ours to restore (see onReady): ioredis would need its offline queue for it.
      autoResubscribe: false,
      connectionName: 'telesalud',
    };
    this.redis = new Redis(url, common);
    this.subscriber = new Redis(url, common);
    for (const client of [this.redis, this.subscriber]) {
      client.on('ready', () => this.onReady(client));
      client.on('close', () => {
        if (client === this.subscriber) this.subscribed = false;
        this.update();
      });
      // Without a listener ioredis prints every failed reconnect; the status says it instead.
      client.on('error', (err: unknown) => this.onError(err));
    }
    this.subscriber.on('message', (channel: string, raw: string) => this.deliver(channel, raw));
  }

  /** Resolves when both connections are up, or after `timeoutMs` (the node starts degraded then). */
  async ready(timeoutMs: number): Promise<boolean> {
    if (this.connected()) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      const listener = (up: boolean) => {
        if (!up) return;
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve(true);
      };
      this.listeners.add(listener);
    });
  }

  /** Up means both connections ready and every subscription restored: only then can a node count on hearing the others. */
  connected(): boolean {
    return this.redis.status === 'ready' && this.subscriber.status === 'ready' && this.subscribed;
  }

  /** Called with true when Redis comes back (after being down) and false when it goes. */
  onChange(listener: (up: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  status(): BusStatus {
    return { redis: this.state.up ? 'connected' : 'down', since: new Date(this.state.since).toISOString() };
  }

  async publish(channel: string, message: unknown): Promise<void> {
    if (this.closed) return;
    await this.redis.publish(this.prefix + channel, JSON.stringify(message));
  }

  async subscribe(channel: string, handler: (message: unknown) => void): Promise<() => Promise<void>> {
    const name = this.prefix + channel;
    let set = this.handlers.get(name);
    if (!set) {
      set = new Set();
      this.handlers.set(name, set);
      // Down now: restoreSubscriptions subscribes when the connection comes (back).
      if (this.subscriber.status === 'ready') await this.subscriber.subscribe(name);
    }
    set.add(handler);
    return async () => {
      const current = this.handlers.get(name);
      if (!current?.delete(handler) || current.size > 0) return;
      this.handlers.delete(name);
      if (this.subscriber.status === 'ready') await this.subscriber.unsubscribe(name).catch(() => undefined);
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handlers.clear();
    this.listeners.clear();
    await Promise.all([this.redis, this.subscriber].map((c) => c.quit().catch(() => c.disconnect())));
  }

  private onReady(client: Redis): void {
    if (client === this.subscriber) void this.restoreSubscriptions();
    else this.update();
  }

  /**
   * After a (re)connect the subscriber connection has no subscriptions: subscribe every channel
   * again before saying the bus is up, retrying while the connection stays ready (a refused
   * SUBSCRIBE right after a restart would otherwise leave this node deaf while it looks healthy).
   */
  private async restoreSubscriptions(): Promise<void> {
    for (let attempt = 1; !this.closed && this.subscriber.status === 'ready'; attempt++) {
      try {
        const channels = [...this.handlers.keys()];
        if (channels.length > 0) await this.subscriber.subscribe(...channels);
        this.subscribed = true;
        this.update();
        return;
      } catch (err) {
        this.logger.warn({ err: safeError(err), attempt }, 'redis subscriptions not restored; retrying');
        await new Promise((r) => setTimeout(r, Math.min(50 * attempt, 1000)));
      }
    }
  }

  private update(): void {
    if (this.closed) return;
    const up = this.connected();
    if (up === this.state.up) return;
    this.state = { up, since: Date.now() };
    if (up) this.logger.info({ redis: 'connected' }, 'redis connected');
    else {
      this.lastDownLog = Date.now();
      this.logger.warn({ redis: 'down' }, 'redis unreachable: consultation signaling across nodes is degraded until it returns');
    }
    for (const listener of [...this.listeners]) listener(up);
  }

  private onError(err: unknown): void {
    if (this.closed) return;
    const now = Date.now();
    if (this.state.up || now - this.lastDownLog < DOWN_LOG_EVERY_MS) return this.update();
    this.lastDownLog = now;
    this.logger.warn({ err: safeError(err), downSince: new Date(this.state.since).toISOString() }, 'redis still unreachable');
  }

  private deliver(channel: string, raw: string): void {
    const set = this.handlers.get(channel);
    if (!set) return;
    let message: unknown;
    try {
      message = JSON.parse(raw);
    } catch {
      this.logger.warn({ channel: channel.slice(this.prefix.length) }, 'bus message is not JSON; dropped');
      return;
    }
    for (const handler of set) {
      try {
        handler(message);
      } catch (err) {
        this.logger.error({ err: safeError(err), channel: channel.slice(this.prefix.length) }, 'bus handler failed');
      }
    }
  }
}
