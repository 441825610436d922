/**
 * Counting requests against limits: a sliding-window counter per key (the count of the current
 * fixed window plus the previous window's, weighted by how much of it still overlaps the sliding
 * window). Two integers per key, no list of timestamps, and no burst of twice the limit at a
 * window's edge as a plain fixed window allows.
 *
 * One node keeps the counters in memory (InMemoryRateLimiter); a farm shares them through Redis
 * (RedisRateLimiter, src/cluster/redis-rate-limiter.ts) so a client gets one budget whichever node
 * its requests reach — counted on the node and shared in the background, or, for a limit marked
 * `exact`, in Redis on every request. Both behind this interface.
 */
export interface RateLimit {
  /** What is counted, e.g. `source:203.0.113.7` or `account:<id>`; no health data. */
  key: string;
  /** Requests allowed per window; a limit of 0 is never asked for (it means "off"). */
  limit: number;
  windowMs: number;
  /**
   * In a farm, count this limit in Redis on every request (one round trip) instead of on the node
   * with the farm's count learnt in the background: for small budgets, where the background
   * counting's overshoot (what the other nodes admit in a sync interval or two) would be a large
   * share of the budget. The node-local limiter is exact anyway and ignores it.
   */
  exact?: boolean;
}

export interface RateCount {
  limit: RateLimit;
  /** Requests left in the sliding window after this one (0 when refused). */
  remaining: number;
  /** Milliseconds until the current fixed window ends (the RateLimit-Reset header). */
  resetMs: number;
  /** Milliseconds until a request would be allowed again; 0 when this one was. */
  retryAfterMs: number;
}

export interface RateDecision {
  allowed: boolean;
  /** One per limit asked for, in the same order. */
  counts: RateCount[];
}

export interface RateLimiter {
  /**
   * Counts one request against every limit, all or nothing: when any limit is reached the request
   * is refused and counted against none (a refused request does not push the wait further out).
   */
  hit(limits: RateLimit[], now?: number): Promise<RateDecision>;
  /**
   * True only for the first refusal of `key` in its current window (farm-wide when shared): what
   * is worth a security event, so a flood does not write one entry per refused request.
   */
  firstRefusal(key: string, windowMs: number, now?: number): Promise<boolean>;
  /** `shared`: counted farm-wide through Redis; `local`: on this node (no Redis, or Redis down and failing open). */
  mode(): 'shared' | 'local';
  /** How often counting fell back to this node since it started (Redis unreachable). */
  fallbacks(): number;
  close?(): Promise<void>;
}

/** The current and previous fixed windows' counts and how far into the current one `now` is. */
export interface WindowCounts {
  current: number;
  previous: number;
  elapsedMs: number;
}

/** The sliding window's estimate: all of this window plus the still-overlapping part of the last. */
export function estimate(counts: WindowCounts, windowMs: number): number {
  return counts.previous * ((windowMs - counts.elapsedMs) / windowMs) + counts.current;
}

/** Whether one more request fits, and what to tell the client either way. */
export function decide(limit: RateLimit, counts: WindowCounts): { allowed: boolean; count: RateCount } {
  const { windowMs } = limit;
  const used = estimate(counts, windowMs);
  const resetMs = windowMs - counts.elapsedMs;
  if (used < limit.limit) {
    // `used` does not include this request yet; after it, this many are left.
    return { allowed: true, count: { limit, remaining: Math.max(0, Math.floor(limit.limit - used - 1)), resetMs, retryAfterMs: 0 } };
  }
  return { allowed: false, count: { limit, remaining: 0, resetMs, retryAfterMs: retryAfterMs(limit.limit, counts, windowMs) } };
}

/**
 * When the estimate drops below the limit again, assuming no more requests are counted: within this
 * window as the previous window's weight fades, or else after it ends, as this window's count
 * (then the previous one) fades in turn.
 */
export function retryAfterMs(limit: number, counts: WindowCounts, windowMs: number): number {
  const { current, previous, elapsedMs } = counts;
  const left = windowMs - elapsedMs;
  if (current < limit) {
    // previous * (left - t) / window + current < limit
    const t = left - ((limit - current) * windowMs) / previous;
    return Math.max(1, Math.ceil(t) + 1);
  }
  // Next window: current * (window - t') / window < limit
  const t = windowMs * (1 - limit / current);
  return Math.max(1, Math.ceil(left + t) + 1);
}

/** Split a time into its window's index and how far into that window it is. */
export function windowOf(now: number, windowMs: number): { index: number; elapsedMs: number } {
  const index = Math.floor(now / windowMs);
  return { index, elapsedMs: now - index * windowMs };
}

interface Counter {
  windowMs: number;
  index: number;
  current: number;
  previous: number;
}

/** Keys a limiter keeps before quiet ones are dropped, so a flood of addresses cannot exhaust memory. */
export const MAX_KEYS = 200_000;

/** The node-local limiter: one node's counters, in memory. Also the farm's fallback while Redis is down. */
export class InMemoryRateLimiter implements RateLimiter {
  private readonly counters = new Map<string, Counter>();
  private readonly refusals = new Map<string, number>();

  async hit(limits: RateLimit[], now = Date.now()): Promise<RateDecision> {
    return this.hitNow(limits, now);
  }

  /** The same as hit(), synchronously. */
  hitNow(limits: RateLimit[], now = Date.now()): RateDecision {
    if (this.counters.size >= MAX_KEYS) this.evict(now);
    const counters = limits.map((limit) => this.counter(limit, now));
    const decisions = limits.map((limit, i) => decide(limit, { current: counters[i]!.current, previous: counters[i]!.previous, elapsedMs: windowOf(now, limit.windowMs).elapsedMs }));
    const allowed = decisions.every((d) => d.allowed);
    if (allowed) for (const c of counters) c.current++;
    return { allowed, counts: decisions.map((d) => d.count) };
  }

  async firstRefusal(key: string, windowMs: number, now = Date.now()): Promise<boolean> {
    const index = windowOf(now, windowMs).index;
    if (this.refusals.size >= MAX_KEYS) for (const [k, i] of this.refusals) if (i < index) this.refusals.delete(k);
    if (this.refusals.get(key) === index) return false;
    this.refusals.set(key, index);
    return true;
  }

  mode(): 'shared' | 'local' {
    return 'local';
  }

  fallbacks(): number {
    return 0;
  }

  /** The key's counter moved on to the window `now` falls in. */
  private counter(limit: RateLimit, now: number): Counter {
    const index = windowOf(now, limit.windowMs).index;
    let c = this.counters.get(limit.key);
    if (!c) {
      c = { windowMs: limit.windowMs, index, current: 0, previous: 0 };
      this.counters.set(limit.key, c);
    } else if (c.index !== index) {
      c.previous = c.index === index - 1 ? c.current : 0;
      c.current = 0;
      c.index = index;
    }
    return c;
  }

  private evict(now: number): void {
    // A key whose current and previous windows are both over counts nothing any more.
    for (const [key, c] of this.counters) if ((c.index + 2) * c.windowMs <= now) this.counters.delete(key);
    // Still full: a flood of live keys. Forgetting them all errs towards serving, never towards refusing.
    if (this.counters.size >= MAX_KEYS) this.counters.clear();
  }
}
