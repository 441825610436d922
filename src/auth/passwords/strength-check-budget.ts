import type { RateLimiter } from '../../edge/rate-limiter.js';

/**
 * How often one subject (an invitation, an account) may have a password checked for live
 * feedback: at most `max` a minute — enough for someone typing (the page waits for a pause before
 * asking), too few to use the endpoint as a free strength oracle. Counted by the node's rate
 * limiter, so in a farm the budget is one for all nodes (Redis), not one per node — and exactly,
 * a round trip per check: a budget this small must not be passed by a burst split over the nodes.
 */
export class StrengthCheckBudget {
  constructor(
    private readonly limiter: RateLimiter,
    /** Names what the subjects are (`account`, `invitation`), so budgets of different kinds never mix. */
    private readonly kind: string,
    private readonly max = 40,
    private readonly windowMs = 60_000,
  ) {}

  /** Seconds to wait, or 0 when this check may run (and is counted). */
  async take(subject: string, now = Date.now()): Promise<number> {
    const decision = await this.limiter.hit([{ key: `password-check:${this.kind}:${subject}`, limit: this.max, windowMs: this.windowMs, exact: true }], now);
    return decision.allowed ? 0 : Math.max(1, Math.ceil(decision.counts[0]!.retryAfterMs / 1000));
  }
}
