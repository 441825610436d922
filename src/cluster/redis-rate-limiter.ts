import type { Redis } from 'ioredis';
import { decide, InMemoryRateLimiter, MAX_KEYS, windowOf, type RateCount, type RateDecision, type RateLimit, type RateLimiter } from '../edge/rate-limiter.js';
import type { Logger } from '../logging/logger.js';
import { safeError } from '../logging/safe-error.js';
import type { RedisBus } from './redis-bus.js';

/**
 * One sync: for each key, add what this node counted (0 for a key only read) and answer the
 * key's farm-wide count. A window's key expires once it can no longer be anyone's previous
 * window (set by whoever creates it). KEYS: window keys. ARGV per key: amount to add, time to live (ms).
 */
const SYNC = `
local out = {}
for i = 1, #KEYS do
  local add = tonumber(ARGV[2 * i - 1])
  if add > 0 then
    local count = redis.call('incrby', KEYS[i], add)
    if count == add then redis.call('pexpire', KEYS[i], ARGV[2 * i]) end
    out[i] = count
  else
    out[i] = tonumber(redis.call('get', KEYS[i]) or '0')
  end
end
return out
`;

/**
 * The exact path: every limit of one request in one round trip, atomically: read each key's
 * current and previous window, and only when all of them leave room, count the request in each
 * current window. Returns, per limit, the current and previous counts as they were before this
 * request; the decision and the headers are worked out from them in TypeScript (the same code as
 * the node-local limiter). KEYS: current, previous window key for each limit. ARGV per limit:
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

type RedisWithScripts = Redis & {
  telesaludRateHit(...args: (string | number)[]): Promise<number[]>;
  telesaludRateSync(...args: (string | number)[]): Promise<number[]>;
};

/** How often a node shares its counts and learns the farm's: the overshoot bound above scales with it. */
export const SYNC_INTERVAL_MS = 200;

/**
 * A window over for this long has its farm-wide count final (every node has synced its last
 * requests in it): it is read once more, then no longer. A node that was cut off from Redis longer
 * and shares them later is not seen here; it errs towards serving, by what that node let through.
 */
const SETTLE_MS = 3 * SYNC_INTERVAL_MS + 500;

/** A sync unanswered this long: the node counts as deciding alone (the bus's own timeout, 2 s, then fails it). */
const SYNC_STALL_MS = 500;

/** Keys one sync covers at most, so one script never holds Redis for long; the rest wait for the next. */
const MAX_KEYS_PER_SYNC = 2000;

/**
 * An exact count Redis has not answered in this long is made on this node instead: the request
 * waits for it, and a hung Redis must not add the bus's whole command timeout (2 s) to it.
 */
const HIT_TIMEOUT_MS = 500;

/** While Redis stays unreachable, say so in the log this often, not on every request or sync. */
const WARN_EVERY_MS = 30_000;

/** One fixed window of one key, as this node knows it. */
interface WindowSlot {
  index: number;
  /** When the window is over (ms since the epoch). */
  endsAt: number;
  redisKey: string;
  /** Over long enough ago that its farm-wide count will not change any more (SETTLE_MS), and read since. */
  settled: boolean;
  /** The farm-wide count Redis last answered (this node's shared increments included). */
  farm: number;
  /** This node's increments in the sync now on its way to Redis. */
  sending: number;
  /** This node's increments not sent yet. */
  unsent: number;
  /** At least this many in the window farm-wide: what the node where the limit tripped counted (TRIPPED_CHANNEL). */
  floor: number;
}

/** A key's last two windows (the sliding window needs no more). */
interface SharedCounter {
  key: string;
  windowMs: number;
  /** The newest window this node has counted in, and the one just before it. */
  current?: WindowSlot;
  previous?: WindowSlot;
}

const total = (slot: WindowSlot | undefined) => (slot ? Math.max(slot.farm + slot.sending + slot.unsent, slot.floor) : 0);

/**
 * Where a node says that a limit tripped, with its counts, once per key and window farm-wide (when
 * it writes the security event): every node then refuses that key at once, not after its next sync.
 */
const TRIPPED_CHANNEL = 'rate-limit:tripped';

interface TrippedMessage {
  key: string;
  windowMs: number;
  index: number;
  current: number;
  previous: number;
}

function isTrippedMessage(m: unknown): m is TrippedMessage {
  const t = m as Partial<TrippedMessage> | null;
  return typeof t?.key === 'string' && [t.windowMs, t.index, t.current, t.previous].every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) && t.windowMs! > 0;
}

/**
 * The farm's rate limiter. A client gets one budget whichever node its requests reach, without a
 * Redis round trip on any request's path: each node decides from its own view of every key — the
 * farm-wide count Redis last told it plus its own increments not shared yet — and shares its
 * increments in the background, in one script per node per sync interval (SYNC_INTERVAL_MS) that
 * adds what the node counted to every key it touched since the last sync and answers those keys'
 * farm-wide counts. The cost of a request in a farm is then the node-local limiter's (a few µs of
 * CPU), and Redis sees a handful of commands a second per node instead of one per request.
 *
 * What this trades: the count is farm-wide after a delay, not at once. A node counts its own
 * admissions exactly and learns the other nodes' within two sync intervals while it keeps seeing
 * the key (theirs wait up to one interval to be shared, and its own read of the key is up to one
 * interval old). So across N nodes a limit can be overshot by at most what the other N−1 nodes
 * admit for that key in two sync intervals (0.4 s at 200 ms) — and, on a node that had not seen
 * the key in its last sync, what that node admits in one interval before it learns the farm's
 * count. Steady traffic at a 600-a-minute limit overshoots by about 4 requests; a flood spread
 * over three nodes gets at most 0.4 s of their throughput past the limit. And once a limit trips
 * on one node, every node refuses the key within a bus hop: the node that writes the refusal's
 * security event (once per key and window, farm-wide) also publishes the counts that tripped it.
 *
 * Limits marked `exact` (the live password checks' budgets, src/auth/passwords/
 * strength-check-budget.ts) are counted in Redis on every request instead (HIT below): their
 * budgets are small (40 a minute), so a burst split over the nodes could pass them twice or
 * three times over before a sync — exactly what such a budget is there to stop — and they are
 * human-paced (one check per pause in typing), so a round trip each costs nothing that matters.
 *
 * Redis is here for speed, not truth: while it is down (or a sync fails, or hangs for longer than
 * SYNC_STALL_MS) every node goes on deciding from its own view, its increments kept for the next
 * sync that works, and /metrics says so (`telesalud_rate_limit_shared` 0,
 * `telesalud_rate_limit_fallbacks_total` counting the requests decided that way).
 */
export class RedisRateLimiter implements RateLimiter {
  /** The exact path's fallback while Redis is down. */
  private readonly local = new InMemoryRateLimiter();
  private readonly counters = new Map<string, SharedCounter>();
  /** Counters touched since their last sync, in the order they were first touched. */
  private dirty = new Set<SharedCounter>();
  private readonly timer: NodeJS.Timeout;
  /** When the sync on its way to Redis was sent; undefined when none is. */
  private syncSentAt: number | undefined;
  private syncing: Promise<void> | undefined;
  /** Callers of nextSync(), waiting for a sync to start (and then to end). */
  private waitingForStart: (() => void)[] = [];
  private fallbackCount = 0;
  private lastWarning = 0;
  /** The last sync (or exact count) failed: deciding alone until one works. */
  private usingLocal = false;
  private closed = false;
  private readonly unsubscribe: Promise<(() => Promise<void>) | undefined>;

  constructor(
    private readonly bus: RedisBus,
    private readonly logger: Logger,
    private readonly syncIntervalMs = SYNC_INTERVAL_MS,
  ) {
    // EVALSHA, with ioredis sending a script itself only when Redis does not know it yet.
    if (!('telesaludRateHit' in bus.redis)) bus.redis.defineCommand('telesaludRateHit', { lua: HIT });
    if (!('telesaludRateSync' in bus.redis)) bus.redis.defineCommand('telesaludRateSync', { lua: SYNC });
    this.timer = setInterval(() => void this.sync(), syncIntervalMs);
    this.timer.unref();
    this.unsubscribe = bus.subscribe(TRIPPED_CHANNEL, (message) => this.onTripped(message)).catch(() => undefined);
  }

  async hit(limits: RateLimit[], now = Date.now()): Promise<RateDecision> {
    if (limits.length === 0) return { allowed: true, counts: [] };
    if (limits.some((l) => l.exact)) return this.hitExact(limits, now);
    return this.hitNow(limits, now);
  }

  /** hit() for limits that are not `exact`: decided here and now, shared at the next sync. */
  hitNow(limits: RateLimit[], now = Date.now()): RateDecision {
    if (this.mode() === 'local') this.fallbackCount++;
    if (this.counters.size >= MAX_KEYS) this.evict(now);
    const slots: (WindowSlot | undefined)[] = [];
    const counts: RateCount[] = [];
    let allowed = true;
    for (const limit of limits) {
      const counter = this.counter(limit);
      const { index, elapsedMs } = windowOf(now, limit.windowMs);
      // The window is made even for a refused request, which is synced too: its view then catches up with the farm.
      const slot = this.slot(counter, index, true);
      const decision = decide(limit, { current: total(slot), previous: total(this.slot(counter, index - 1, false)), elapsedMs });
      allowed &&= decision.allowed;
      slots.push(slot);
      counts.push(decision.count);
      this.dirty.add(counter);
    }
    if (allowed) for (const slot of slots) if (slot) slot.unsent++;
    return { allowed, counts };
  }

  /** What this node would answer for these limits now, without counting (nor syncing) anything. */
  peek(limits: RateLimit[], now = Date.now()): RateDecision {
    const counts = limits.map((limit) => {
      const counter = this.counters.get(this.mapKey(limit));
      const { index, elapsedMs } = windowOf(now, limit.windowMs);
      return decide(limit, { current: total(counter && this.slot(counter, index, false)), previous: total(counter && this.slot(counter, index - 1, false)), elapsedMs });
    });
    return { allowed: counts.every((d) => d.allowed), counts: counts.map((d) => d.count) };
  }

  async firstRefusal(key: string, windowMs: number, now = Date.now()): Promise<boolean> {
    // Its own round trip: it is asked only when a limit refuses, off the request's path.
    if (!this.bus.connected()) return this.local.firstRefusal(key, windowMs, now);
    const { index } = windowOf(now, windowMs);
    try {
      const first = (await this.bus.redis.set(`${this.bus.prefix}rate:refused:${key}:${index}`, '1', 'PX', windowMs, 'NX')) === 'OK';
      if (first) this.announceTrip(key, windowMs, index);
      return first;
    } catch {
      return this.local.firstRefusal(key, windowMs, now);
    }
  }

  mode(): 'shared' | 'local' {
    const stalled = this.syncSentAt !== undefined && Date.now() - this.syncSentAt > SYNC_STALL_MS;
    return this.usingLocal || stalled || !this.bus.connected() ? 'local' : 'shared';
  }

  fallbacks(): number {
    return this.fallbackCount;
  }

  /** Resolves once a sync that started after this call has ended (shared, or failed): the farm's counts are then known. */
  nextSync(): Promise<void> {
    return new Promise((resolve) => this.waitingForStart.push(resolve));
  }

  /** Stops the syncs, sharing what is left to share first (the bus must still be open). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await (await this.unsubscribe)?.().catch(() => undefined);
    await this.syncing;
    await this.runSync();
    for (const resolve of this.waitingForStart.splice(0)) resolve();
  }

  /** Tell the other nodes this key's limit tripped here, with the counts that tripped it. */
  private announceTrip(key: string, windowMs: number, index: number): void {
    const counter = this.counters.get(this.mapKey({ key, windowMs }));
    if (!counter) return;
    const message: TrippedMessage = { key, windowMs, index, current: total(this.slot(counter, index, false)), previous: total(this.slot(counter, index - 1, false)) };
    this.bus.publish(TRIPPED_CHANNEL, message).catch(() => undefined);
  }

  /** Another node's limit tripped: its counts are a floor for this node's view of that key. */
  private onTripped(message: unknown): void {
    if (this.closed || !isTrippedMessage(message)) return;
    if (this.counters.size >= MAX_KEYS) this.evict(Date.now());
    const counter = this.counter(message);
    for (const [index, count] of [[message.index, message.current], [message.index - 1, message.previous]] as const) {
      const slot = this.slot(counter, index, true);
      if (slot) slot.floor = Math.max(slot.floor, count);
    }
  }

  /** The timer's tick: one sync at a time; a tick while one is on its way is skipped. */
  private async sync(): Promise<void> {
    if (this.syncing || this.closed) return;
    this.syncing = this.runSync();
    try {
      await this.syncing;
    } finally {
      this.syncing = undefined;
    }
  }

  private async runSync(): Promise<void> {
    const waiting = this.waitingForStart.splice(0);
    try {
      await this.shareAndLearn();
    } finally {
      for (const resolve of waiting) resolve();
    }
  }

  /** Send this node's increments of the keys touched since the last sync; learn those keys' farm-wide counts. */
  private async shareAndLearn(): Promise<void> {
    if (this.dirty.size === 0) {
      // Nothing to share: a connected bus is as good a sign as any that Redis is back.
      if (this.bus.connected()) this.usingLocal = false;
      return;
    }
    if (!this.bus.connected()) {
      // Kept, not dropped: shared once Redis is back, so the farm's count includes what this node let through meanwhile.
      this.usingLocal = true;
      return;
    }
    const batch: SharedCounter[] = [];
    for (const c of this.dirty) {
      if (batch.length === MAX_KEYS_PER_SYNC) break;
      batch.push(c);
    }
    if (batch.length === this.dirty.size) this.dirty = new Set();
    else for (const c of batch) this.dirty.delete(c);
    // Per counter, its newest window, and the one before until that one's count has settled.
    // A slot left behind by a window's roll while its sync is on the way is updated harmlessly: no one reads it.
    const slots: WindowSlot[] = [];
    const amounts: number[] = [];
    const keys: string[] = [];
    const args: number[] = [];
    const sentAt = Date.now();
    for (const counter of batch) {
      if (!counter.current) continue;
      for (const slot of [counter.current, this.slot(counter, counter.current.index - 1, true)!]) {
        const amount = slot.unsent;
        if (slot.settled && amount === 0) continue;
        slot.sending += amount;
        slot.unsent = 0;
        slots.push(slot);
        amounts.push(amount);
        keys.push(slot.redisKey);
        args.push(amount, counter.windowMs * 2);
      }
    }
    if (keys.length === 0) return;
    this.syncSentAt = sentAt;
    let reply: number[];
    try {
      reply = (await (this.bus.redis as RedisWithScripts).telesaludRateSync(keys.length, ...keys, ...args)).map(Number);
    } catch (err) {
      // Not known to be counted: sent again next time. A sync that timed out may have been counted after all
      // (a paused Redis runs it later), and is then counted twice: too strict for a window, never too lenient.
      slots.forEach((slot, i) => {
        slot.sending -= amounts[i]!;
        slot.unsent += amounts[i]!;
      });
      for (const counter of batch) if (this.counters.get(this.mapKey(counter)) === counter) this.dirty.add(counter);
      this.usingLocal = true;
      this.warn(err);
      return;
    } finally {
      this.syncSentAt = undefined;
    }
    slots.forEach((slot, i) => {
      // The answer includes what was sent: it moves from `sending` into `farm`.
      slot.sending -= amounts[i]!;
      slot.farm = reply[i] ?? 0;
      if (sentAt >= slot.endsAt + SETTLE_MS) slot.settled = true;
    });
    this.usingLocal = false;
  }

  /** The exact path: one round trip that counts and decides in Redis, falling back to this node's own count. */
  private async hitExact(limits: RateLimit[], now: number): Promise<RateDecision> {
    if (!this.bus.connected()) return this.fallBack(limits, now);
    const keys: string[] = [];
    const args: number[] = [];
    const windows = limits.map((limit) => windowOf(now, limit.windowMs));
    limits.forEach((limit, i) => {
      const { index, elapsedMs } = windows[i]!;
      keys.push(this.redisKey(limit, index), this.redisKey(limit, index - 1));
      args.push(limit.limit, limit.windowMs, elapsedMs);
    });
    let reply: number[];
    let timer: NodeJS.Timeout | undefined;
    try {
      const counted = (this.bus.redis as RedisWithScripts).telesaludRateHit(keys.length, ...keys, ...args);
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
    const decisions = limits.map((limit, i) => decide(limit, { current: reply[1 + 2 * i]!, previous: reply[2 + 2 * i]!, elapsedMs: windows[i]!.elapsedMs }));
    return { allowed: reply[0] === 0, counts: decisions.map((d) => d.count) };
  }

  private fallBack(limits: RateLimit[], now: number, err?: unknown): RateDecision {
    this.fallbackCount++;
    this.warn(err);
    return this.local.hitNow(limits, now);
  }

  private warn(err: unknown): void {
    if (Date.now() - this.lastWarning < WARN_EVERY_MS) return;
    this.lastWarning = Date.now();
    this.logger.warn({ ...(err ? { err: safeError(err) } : {}), redis: 'down' }, 'rate limits counted on this node only: redis unreachable (failing open to the node-local count)');
  }

  private redisKey(limit: { key: string; windowMs: number }, index: number): string {
    return `${this.bus.prefix}rate:${limit.windowMs}:${limit.key}:${index}`;
  }

  private mapKey(limit: { key: string; windowMs: number }): string {
    return `${limit.windowMs}:${limit.key}`;
  }

  private counter(limit: { key: string; windowMs: number }): SharedCounter {
    const mapKey = this.mapKey(limit);
    let c = this.counters.get(mapKey);
    if (!c) {
      c = { key: limit.key, windowMs: limit.windowMs };
      this.counters.set(mapKey, c);
    }
    return c;
  }

  /** The counter's slot for a window; with `create`, made if missing (rolling the counter on to a newer window). */
  private slot(counter: SharedCounter, index: number, create: boolean): WindowSlot | undefined {
    const { current, previous } = counter;
    if (current?.index === index) return current;
    if (previous?.index === index) return previous;
    if (!create) return undefined;
    if (!current || index > current.index) {
      counter.previous = current?.index === index - 1 ? current : undefined;
      return (counter.current = this.newSlot(counter, index));
    }
    if (index === current.index - 1) return (counter.previous = this.newSlot(counter, index));
    return undefined; // older than the previous window: counts for nothing any more
  }

  private newSlot(counter: SharedCounter, index: number): WindowSlot {
    return { index, endsAt: (index + 1) * counter.windowMs, redisKey: this.redisKey(counter, index), settled: false, farm: 0, sending: 0, unsent: 0, floor: 0 };
  }

  private evict(now: number): void {
    // A key whose newest window is over, and the one after it too, counts nothing any more.
    for (const [mapKey, c] of this.counters) {
      if (!c.current || c.current.endsAt + c.windowMs <= now) {
        this.counters.delete(mapKey);
        this.dirty.delete(c);
      }
    }
    // Still full: a flood of live keys. Forgetting them all errs towards serving, never towards refusing.
    if (this.counters.size >= MAX_KEYS) {
      this.counters.clear();
      this.dirty = new Set();
    }
  }
}
