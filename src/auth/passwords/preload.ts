import { preloadDummyHash } from './argon2id.js';
import { preloadBreachedList, type BreachedListStats } from './breached-list.js';
import { preloadStrengthEstimator } from './strength.js';

export interface PasswordPreloadStats {
  breachedList: BreachedListStats;
  strengthEstimatorMs: number;
}

/**
 * Loads the breached list and zxcvbn's dictionaries and computes the unknown-account dummy hash,
 * so the first sign-in or password change pays none of it (~0.5 s of start-up here). Optional:
 * everything also loads lazily on first use.
 */
export async function preloadPasswordChecks(): Promise<PasswordPreloadStats> {
  const breachedList = preloadBreachedList();
  const started = performance.now();
  preloadStrengthEstimator();
  const strengthEstimatorMs = performance.now() - started;
  await preloadDummyHash();
  return { breachedList, strengthEstimatorMs };
}
