/**
 * Repeat offenders, fail2ban-style: each refusal adds its anomaly score to the source's tally
 * over a sliding window; past the threshold the source is banned, for longer each time.
 * Behind an interface so the farm can keep it in Redis (every node sees every ban); one node
 * keeps it in memory.
 */
export interface BanStore {
  /** When the source's ban ends (ms since epoch), or undefined when it is not banned. */
  bannedUntil(source: string, now?: number): Promise<number | undefined>;
  /** Count an offence; resolves to the end of the ban it caused, if it caused one. */
  offence(source: string, points: number, now?: number): Promise<number | undefined>;
  /** Sources banned right now (for /metrics); a store that cannot tell cheaply leaves it out. */
  activeBans?(now?: number): Promise<number>;
}

export interface BanPolicy {
  /** Points within `windowMs` that earn a ban (a blocked attack scores at least 5). */
  threshold: number;
  windowMs: number;
  /** First ban; each later ban of the same source doubles, up to `maxBanMs`. */
  banMs: number;
  maxBanMs: number;
}

export const DEFAULT_BAN_POLICY: BanPolicy = { threshold: 25, windowMs: 5 * 60_000, banMs: 10 * 60_000, maxBanMs: 24 * 60 * 60_000 };

interface Tally {
  /** Offences in the window: [time, points]. */
  recent: [number, number][];
  bans: number;
  until: number;
  lastSeen: number;
}

const MAX_SOURCES = 100_000;

export class InMemoryBanStore implements BanStore {
  private readonly tallies = new Map<string, Tally>();

  constructor(private readonly policy: BanPolicy = DEFAULT_BAN_POLICY) {}

  async bannedUntil(source: string, now = Date.now()): Promise<number | undefined> {
    const t = this.tallies.get(source);
    return t && t.until > now ? t.until : undefined;
  }

  async offence(source: string, points: number, now = Date.now()): Promise<number | undefined> {
    let t = this.tallies.get(source);
    if (!t) {
      if (this.tallies.size >= MAX_SOURCES) this.evict(now);
      t = { recent: [], bans: 0, until: 0, lastSeen: now };
      this.tallies.set(source, t);
    }
    t.lastSeen = now;
    t.recent = t.recent.filter(([at]) => now - at < this.policy.windowMs);
    t.recent.push([now, points]);
    const total = t.recent.reduce((sum, [, p]) => sum + p, 0);
    if (total < this.policy.threshold || t.until > now) return undefined;
    t.bans++;
    t.recent = [];
    t.until = now + Math.min(this.policy.maxBanMs, this.policy.banMs * 2 ** (t.bans - 1));
    return t.until;
  }

  async activeBans(now = Date.now()): Promise<number> {
    let n = 0;
    for (const t of this.tallies.values()) if (t.until > now) n++;
    return n;
  }

  /** Forget quiet, unbanned sources first, so a flood of addresses cannot exhaust memory. */
  private evict(now: number): void {
    for (const [source, t] of this.tallies) {
      if (t.until <= now && now - t.lastSeen > this.policy.windowMs) this.tallies.delete(source);
    }
    if (this.tallies.size >= MAX_SOURCES) {
      const oldest = [...this.tallies.entries()].sort((a, b) => a[1].lastSeen - b[1].lastSeen).slice(0, MAX_SOURCES / 10);
      for (const [source] of oldest) this.tallies.delete(source);
    }
  }
}
