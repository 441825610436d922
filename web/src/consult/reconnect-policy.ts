/** What a reconnection policy is asked: how many tries so far and since when we are cut off. */
export interface ReconnectContext {
  retryCount: number;
  elapsedMs: number;
}

/** Returns the delay before the next try, or null to give up. */
export interface ReconnectPolicy {
  nextRetryDelayMs(context: ReconnectContext): number | null;
}

/**
 * Quick first tries (a socket dropped by a load balancer or a Wi-Fi hand-over comes back at
 * once), then every two seconds so a call resumes within seconds of the network returning,
 * with jitter so a restarted node is not hit by every client at the same instant. Gives up
 * after ten minutes: by then the clinician has ended or moved on.
 */
export class DefaultReconnectPolicy implements ReconnectPolicy {
  constructor(
    private readonly delays: readonly number[] = [0, 250, 500, 1000, 1500],
    private readonly steadyMs = 2000,
    private readonly giveUpAfterMs = 10 * 60_000,
  ) {}

  nextRetryDelayMs({ retryCount, elapsedMs }: ReconnectContext): number | null {
    if (elapsedMs > this.giveUpAfterMs) return null;
    const base = this.delays[retryCount] ?? this.steadyMs;
    return base === 0 ? 0 : Math.round(base * (0.8 + Math.random() * 0.4));
  }
}
