import { randomBytes } from 'node:crypto';
import { DEFAULT_BAN_POLICY, InMemoryBanStore, type BanPolicy, type BanStore } from '../edge/ban-store.js';
import type { Logger } from '../logging/logger.js';
import { safeError } from '../logging/safe-error.js';
import type { RedisBus } from './redis-bus.js';

/**
 * The offence tally and the ban, in one step on Redis: drop the window's old offences, add this
 * one, and ban (for twice as long as last time, up to the maximum) when the points add up.
 * Members are `time:random:points`, so two offences in the same millisecond both count.
 */
const OFFENCE = `
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[3])
redis.call('zremrangebyscore', KEYS[1], '-inf', now - window)
redis.call('zadd', KEYS[1], now, ARGV[1] .. ':' .. ARGV[8] .. ':' .. ARGV[2])
redis.call('pexpire', KEYS[1], window)
local total = 0
for _, member in ipairs(redis.call('zrange', KEYS[1], 0, -1)) do
  total = total + tonumber(string.match(member, ':(%d+)$'))
end
local current = tonumber(redis.call('hget', KEYS[3], ARGV[7]) or '0')
if total < tonumber(ARGV[4]) or current > now then return 0 end
local bans = redis.call('incr', KEYS[2])
redis.call('pexpire', KEYS[2], tonumber(ARGV[6]) * 2)
local ms = math.min(tonumber(ARGV[6]), tonumber(ARGV[5]) * 2 ^ (bans - 1))
local untilAt = now + ms
redis.call('hset', KEYS[3], ARGV[7], untilAt)
redis.call('del', KEYS[1])
return untilAt
`;

/**
 * Bans shared by every node of a farm (the shield's BanStore over Redis). An attacker banned on
 * one node is refused by all of them, and the tally adds up whichever node the requests hit.
 *
 * Asking whether a source is banned happens on every request, so it never waits for Redis:
 * each node keeps the active bans in memory, loaded from Redis when it connects and kept up
 * to date by the `bans` channel. Offences (refused requests only) go to Redis. While Redis is
 * down the node tallies and bans on its own (the in-memory store), and says so in its logs.
 */
export class RedisBanStore implements BanStore {
  private readonly banned = new Map<string, number>();
  private readonly fallback: InMemoryBanStore;
  private unsubscribe: (() => Promise<void>) | undefined;
  private stopListening: (() => void) | undefined;

  constructor(
    private readonly bus: RedisBus,
    private readonly logger: Logger,
    private readonly policy: BanPolicy = DEFAULT_BAN_POLICY,
  ) {
    this.fallback = new InMemoryBanStore(policy);
  }

  async start(): Promise<void> {
    this.unsubscribe = await this.bus.subscribe('bans', (m) => {
      const { source, until } = (m ?? {}) as { source?: unknown; until?: unknown };
      if (typeof source === 'string' && typeof until === 'number') this.note(source, until);
    });
    this.stopListening = this.bus.onChange((up) => {
      if (up) void this.load();
    });
    if (this.bus.connected()) await this.load();
  }

  async close(): Promise<void> {
    this.stopListening?.();
    await this.unsubscribe?.().catch(() => undefined);
  }

  async bannedUntil(source: string, now = Date.now()): Promise<number | undefined> {
    const until = Math.max(this.banned.get(source) ?? 0, (await this.fallback.bannedUntil(source, now)) ?? 0);
    if (until > now) return until;
    this.banned.delete(source);
    return undefined;
  }

  async offence(source: string, points: number, now = Date.now()): Promise<number | undefined> {
    if (!this.bus.connected()) return this.fallback.offence(source, points, now);
    try {
      const key = (name: string) => `${this.bus.prefix}ban:${name}:${source}`;
      const result = Number(
        await this.bus.redis.eval(OFFENCE, 3, key('tally'), key('count'), `${this.bus.prefix}bans`, now, Math.round(points), this.policy.windowMs, this.policy.threshold, this.policy.banMs, this.policy.maxBanMs, source, randomBytes(4).toString('hex')),
      );
      if (!result) return undefined;
      this.note(source, result);
      await this.bus.publish('bans', { source, until: result });
      return result;
    } catch (err) {
      this.logger.warn({ err: safeError(err) }, 'shared ban store unreachable; counting this offence on this node');
      return this.fallback.offence(source, points, now);
    }
  }

  private note(source: string, until: number): void {
    if (until > (this.banned.get(source) ?? 0)) this.banned.set(source, until);
  }

  /** Active bans from Redis (after a start or a reconnect); expired ones are dropped there. */
  private async load(): Promise<void> {
    try {
      const all = await this.bus.redis.hgetall(`${this.bus.prefix}bans`);
      const now = Date.now();
      const expired: string[] = [];
      for (const [source, until] of Object.entries(all)) {
        if (Number(until) > now) this.note(source, Number(until));
        else expired.push(source);
      }
      if (expired.length) await this.bus.redis.hdel(`${this.bus.prefix}bans`, ...expired);
    } catch (err) {
      this.logger.warn({ err: safeError(err) }, 'active bans not loaded from redis');
    }
  }
}
