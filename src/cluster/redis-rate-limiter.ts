import type { Redis } from 'ioredis';
import { decide, InMemoryRateLimiter, windowOf, type RateDecision, type RateLimit, type RateLimiter } from '../edge/rate-limiter.js';
import type { Logger } from '../logging/logger.js';
import { safeError } from '../logging/safe-error.js';
import type { RedisBus } from './redis-bus.js';

/**
 * Every limit of one request in one round trip, atomically: read each key's current and previous
 * window, and only when all of them leave room, count the request in each current window (which
 * expires once it can no longer be anyone's previous window). Returns, per limit, the current and
 * previous counts as they were before this request; the decision and the headers are worked out
 * from them in TypeScript (the same code as the node-local limiter).
 *
 * KEYS: current, previous window key for each limit. ARGV: now-independent figures per limit:
 * limit, window ms, elapsed ms in the current window.
 */
const HIT = `
local n = #KEYS / 2
local out = {0}
local refused = 0
for i = 1, n do
  local current = tonumber(redis.call('get', KEYS[2 * i - 1]) or '0')
  local previous = tonumber(redis.call('get', KEYS[2 * i]) or '0')
  out[2 * i] = current
  out[2 * i + 1] = previous
  local limit = tonumber(ARGV[3 * i - 2])
  local window = tonumber(ARGV[3 * i - 1])
  local elapsed = tonumber(ARGV[3 * i])
  if previous * ((window - elapsed) / window) + current >= limit then refused = 1 end
end
if refused == 0 then
  for i = 1, n do
    redis.call('incr', KEYS[2 * i - 1])
    redis.call('pexpire', KEYS[2 * i - 1], tonumber(ARGV[3 * i - 1]) * 2)
  end
end
out[1] = refused
return out
`;

type RedisWithHit = Redis & { telesaludRateHit(...args: (string | number)[]): Promise<number[]> };

/**
 * A count Redis has not answered in this long is made on this node instead: every API request
 * waits for it, and a hung Redis must not add the bus's whole command timeout (2 s) to each one.
 */
const HIT_TIMEOUT_MS = 500;

/** While Redis stays unreachable, say so in the log this often, not on every request. */
const WARN_EVERY_MS = 30_000;

/**
 * The farm's rate limiter: counters in Redis, so a client's budget is the same whichever node
 * its requests reach. Redis is here for speed, not truth: when it is down (or a command fails)
 * the request is counted by this node's own limiter instead — the service keeps serving, each
 * node then enforcing the limits on its own share of the traffic — and /metrics says so
 * (`telesalud_rate_limit_shared` 0, `telesalud_rate_limit_fallbacks_total`).
 */
export class RedisRateLimiter implements RateLimiter {
  private readonly local = new InMemoryRateLimiter();
  private fallbackCount = 0;
  private lastWarning = 0;
  private usingLocal = false;

  constructor(
    private readonly bus: RedisBus,
    private readonly logger: Logger,
  ) {
    // EVALSHA, with ioredis sending the script itself only when Redis does not know it yet.
    if (!('telesaludRateHit' in bus.redis)) bus.redis.defineCommand('telesaludRateHit', { lua: HIT });
  }

  async hit(limits: RateLimit[], now = Date.now()): Promise<RateDecision> {
    if (limits.length === 0) return { allowed: true, counts: [] };
    if (!this.bus.connected()) return this.fallBack(limits, now);
    const keys: string[] = [];
    const args: number[] = [];
    const windows = limits.map((limit) => windowOf(now, limit.windowMs));
    limits.forEach((limit, i) => {
      const { index, elapsedMs } = windows[i]!;
      keys.push(this.key(limit, index), this.key(limit, index - 1));
      args.push(limit.limit, limit.windowMs, elapsedMs);
    });
    let reply: number[];
    let timer: NodeJS.Timeout | undefined;
    try {
      const counted = (this.bus.redis as RedisWithHit).telesaludRateHit(keys.length, ...keys, ...args);
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`redis did not answer the rate count within ${HIT_TIMEOUT_MS} ms`)), HIT_TIMEOUT_MS);
      });
      counted.catch(() => undefined); // a late failure, once the race is lost, is no one's to handle
      reply = (await Promise.race([counted, late])).map(Number);
    } catch (err) {
      return this.fallBack(limits, now, err);
    } finally {
      clearTimeout(timer);
    }
    this.usingLocal = false;
    const decisions = limits.map((limit, i) => decide(limit, { current: reply[1 + 2 * i]!, previous: reply[2 + 2 * i]!, elapsedMs: windows[i]!.elapsedMs }));
    return { allowed: reply[0] === 0, counts: decisions.map((d) => d.count) };
  }

  async firstRefusal(key: string, windowMs: number, now = Date.now()): Promise<boolean> {
    if (!this.bus.connected()) return this.local.firstRefusal(key, windowMs, now);
    const { index } = windowOf(now, windowMs);
    try {
      return (await this.bus.redis.set(`${this.bus.prefix}rate:refused:${key}:${index}`, '1', 'PX', windowMs, 'NX')) === 'OK';
    } catch {
      return this.local.firstRefusal(key, windowMs, now);
    }
  }

  mode(): 'shared' | 'local' {
    return this.usingLocal || !this.bus.connected() ? 'local' : 'shared';
  }

  fallbacks(): number {
    return this.fallbackCount;
  }

  private key(limit: RateLimit, index: number): string {
    return `${this.bus.prefix}rate:${limit.windowMs}:${limit.key}:${index}`;
  }

  private fallBack(limits: RateLimit[], now: number, err?: unknown): RateDecision {
    this.fallbackCount++;
    this.usingLocal = true;
    if (Date.now() - this.lastWarning >= WARN_EVERY_MS) {
      this.lastWarning = Date.now();
      this.logger.warn({ ...(err ? { err: safeError(err) } : {}), redis: 'down' }, 'rate limits counted on this node only: redis unreachable (failing open to the node-local limiter)');
    }
    return this.local.hitNow(limits, now);
  }
}
