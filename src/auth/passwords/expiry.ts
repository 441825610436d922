/**
 * Password expiry per role. Days are fixed 24-hour periods counted from the moment of the change
 * (not calendar days), so the answer is the same in every time zone and across DST changes.
 */
import type { PasswordPolicy, PasswordRole } from './policy.js';

const DAY_MS = 86_400_000;

export interface PasswordExpiry {
  /** When the password stops being accepted for sign-in without a change; `null` never. */
  expiresAt: Date | null;
  /** The password must be changed before anything else is allowed. */
  expired: boolean;
  /** Within the warning period before expiry: tell the user, let them in. */
  warn: boolean;
  /** Whole days left, rounded up (1 on the last day); 0 once expired; `null` when it never expires. */
  daysLeft: number | null;
}

export function passwordExpiry(changedAt: Date, role: PasswordRole, policy: PasswordPolicy, now: Date = new Date()): PasswordExpiry {
  if (!Object.hasOwn(policy.expiryDays, role)) throw new RangeError(`no password expiry is configured for role "${role}"`);
  const days = policy.expiryDays[role];
  if (days === null) return { expiresAt: null, expired: false, warn: false, daysLeft: null };
  const expiresMs = changedAt.getTime() + days * DAY_MS;
  const leftMs = expiresMs - now.getTime();
  const expired = leftMs <= 0;
  return {
    expiresAt: new Date(expiresMs),
    expired,
    warn: !expired && leftMs <= policy.warningDays * DAY_MS,
    daysLeft: expired ? 0 : Math.ceil(leftMs / DAY_MS),
  };
}
