/**
 * Hard limits no admin setting can cross, in one place for the service that enforces them and
 * the admin page that names them (web/src/admin/PolicyPage.tsx): no imports, so the browser
 * bundle takes it as it is.
 *
 * Passwords: the floors follow NIST SP 800-63B (at least 8 characters, accept at least 64) and
 * keep the zxcvbn and history checks meaningful; the ceilings bound the CPU one request can cost.
 */
export const PASSWORD_POLICY_LIMITS = {
  minLength: { min: 8, max: 64 },
  maxLength: { min: 64, max: 1024 },
  minScore: { min: 2, max: 4 },
  historySize: { min: 0, max: 24 },
  expiryDays: { min: 1, max: 3650 },
  warningDays: { min: 0, max: 90 },
  contextWords: { maxCount: 200, maxWordLength: 64 },
} as const;

/** Sessions: idle timeout in minutes, absolute lifetime in hours. */
export const SESSION_POLICY_LIMITS = { idleMinutes: { min: 2, max: 240 }, absoluteHours: { min: 1, max: 72 } } as const;
