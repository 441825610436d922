import type { TFunction } from 'i18next';
import { ApiError } from './api-error.js';

/** From this wait on, it is said in minutes: "about 3 minutes" reads better than "172 seconds". */
const MINUTES_FROM_SECONDS = 90;

/**
 * A "too many requests" refusal (429, from the rate limits or a sign-in throttle) in the words
 * every area shows — portal, clinic, admin, sign-in — with the wait the server named in
 * Retry-After; undefined for any other failure, which the area words itself. The page keeps what
 * the user typed: only the message changes, so they can send it again once the wait is over.
 */
export function tooManyRequestsText(t: TFunction, err: unknown): string | undefined {
  if (!(err instanceof ApiError) || err.status !== 429) return undefined;
  return waitText(t, err.retryAfterSeconds);
}

/** "Please wait N seconds / about N minutes / a moment, then try again." */
export function waitText(t: TFunction, seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds <= 0) return t('app.tooManyRequests.moment');
  const whole = Math.ceil(seconds);
  if (whole < MINUTES_FROM_SECONDS) return t('app.tooManyRequests.seconds', { count: whole });
  return t('app.tooManyRequests.minutes', { count: Math.ceil(whole / 60) });
}
