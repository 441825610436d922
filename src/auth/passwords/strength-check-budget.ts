/**
 * How often one subject (an invitation, an account) may have a password checked for live
 * feedback: at most `max` per minute on this node — enough for someone typing (the page waits for
 * a pause before asking), too few to use the endpoint as a free strength oracle. Per node: in a
 * farm a subject gets this budget on each node, which still bounds it.
 */
export class StrengthCheckBudget {
  private readonly used = new Map<string, { windowStart: number; count: number }>();

  constructor(private readonly max = 40, private readonly windowMs = 60_000) {}

  /** Seconds to wait, or 0 when this check may run (and is counted). */
  take(subject: string, now = Date.now()): number {
    if (this.used.size > 10_000) for (const [id, u] of this.used) if (now - u.windowStart >= this.windowMs) this.used.delete(id);
    const entry = this.used.get(subject);
    if (!entry || now - entry.windowStart >= this.windowMs) {
      this.used.set(subject, { windowStart: now, count: 1 });
      return 0;
    }
    if (entry.count >= this.max) return Math.ceil((entry.windowStart + this.windowMs - now) / 1000);
    entry.count += 1;
    return 0;
  }
}
