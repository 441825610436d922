import { ROLES, type Role } from '../roles.js';
import { PASSWORD_POLICY_LIMITS } from '../policy/policy-limits.js';

/**
 * The password policy: every value an admin may change, its defaults (issue 3), and the floors
 * below which an admin-provided policy is refused rather than silently weakened.
 */

/** The account roles whose passwords may expire. */
export type PasswordRole = Role;

export const PASSWORD_ROLES: readonly PasswordRole[] = ROLES;

export interface PasswordPolicy {
  /** Shortest accepted password, in Unicode code points after NFKC normalisation. */
  readonly minLength: number;
  /** Longest accepted password (same unit). Argon2 and zxcvbn on megabyte inputs are a DoS. */
  readonly maxLength: number;
  /** Lowest accepted zxcvbn score (0–4). */
  readonly minScore: 0 | 1 | 2 | 3 | 4;
  /** How many of the account's most recent passwords (the current one included) may not be reused. */
  readonly historySize: number;
  /** Days after a change at which the password expires, per role; `null` never expires. */
  readonly expiryDays: Readonly<Record<PasswordRole, number | null>>;
  /** Days before expiry during which the user is warned. */
  readonly warningDays: number;
  /**
   * Words specific to this installation (hospital name, city, product names) that make a
   * password guessable; checked by zxcvbn like the user's own name. Built-in service words
   * (telesalud, contraseña, hospital, …) are always checked.
   */
  readonly contextWords: readonly string[];
}

export const DEFAULT_PASSWORD_POLICY: PasswordPolicy = deepFreeze({
  minLength: 12,
  maxLength: 128,
  minScore: 3,
  historySize: 5,
  expiryDays: { patient: null, clinician: 180, reception: 180, admin: 180 },
  warningDays: 14,
  contextWords: [],
});

export { PASSWORD_POLICY_LIMITS } from '../policy/policy-limits.js';

export interface PasswordPolicyIssue {
  /** Dotted path of the offending field, e.g. `expiryDays.clinician`. */
  field: string;
  message: string;
}

/** An admin-provided policy that is malformed or weaker than the floors. The message is one line. */
export class PasswordPolicyError extends Error {
  readonly issues: readonly PasswordPolicyIssue[];

  constructor(issues: PasswordPolicyIssue[]) {
    super(issues.map((i) => `${i.field}: ${i.message}`).join('; '));
    this.name = 'PasswordPolicyError';
    this.issues = issues;
  }
}

const POLICY_KEYS = new Set<string>(Object.keys(DEFAULT_PASSWORD_POLICY));

/**
 * Validates an admin-provided policy (parsed JSON). Fields left out keep their value in `base`
 * (the defaults unless given), so an admin can change one value at a time; unknown fields are
 * refused so a typo never passes as "accepted". Every problem is reported at once.
 *
 * @throws PasswordPolicyError
 */
export function parsePasswordPolicy(input: unknown, base: PasswordPolicy = DEFAULT_PASSWORD_POLICY): PasswordPolicy {
  const issues: PasswordPolicyIssue[] = [];
  if (!isPlainObject(input)) {
    throw new PasswordPolicyError([{ field: '(policy)', message: 'must be an object' }]);
  }
  for (const key of Object.keys(input)) {
    if (!POLICY_KEYS.has(key)) issues.push({ field: key, message: 'is not a password policy setting' });
  }

  const L = PASSWORD_POLICY_LIMITS;
  const minLength = intField(input, 'minLength', base.minLength, L.minLength, issues);
  const maxLength = intField(input, 'maxLength', base.maxLength, L.maxLength, issues);
  const minScore = intField(input, 'minScore', base.minScore, L.minScore, issues) as PasswordPolicy['minScore'];
  const historySize = intField(input, 'historySize', base.historySize, L.historySize, issues);
  const warningDays = intField(input, 'warningDays', base.warningDays, L.warningDays, issues);

  if (minLength > maxLength && !issues.some((i) => i.field === 'minLength' || i.field === 'maxLength')) {
    issues.push({ field: 'maxLength', message: `must be at least minLength (${minLength})` });
  }

  const expiryDays: Record<PasswordRole, number | null> = { ...base.expiryDays };
  if (input.expiryDays !== undefined) {
    const given = input.expiryDays;
    if (!isPlainObject(given)) {
      issues.push({ field: 'expiryDays', message: `must be an object with days (or null) per role: ${PASSWORD_ROLES.join(', ')}` });
    } else {
      for (const [role, value] of Object.entries(given)) {
        const field = `expiryDays.${role}`;
        if (!(PASSWORD_ROLES as readonly string[]).includes(role)) {
          issues.push({ field, message: `is not a role (roles: ${PASSWORD_ROLES.join(', ')})` });
        } else if (value === null) {
          expiryDays[role as PasswordRole] = null;
        } else if (isIntegerIn(value, L.expiryDays.min, L.expiryDays.max)) {
          expiryDays[role as PasswordRole] = value;
        } else {
          issues.push({ field, message: `must be null (never expires) or a whole number of days from ${L.expiryDays.min} to ${L.expiryDays.max}` });
        }
      }
    }
  }
  for (const role of PASSWORD_ROLES) {
    const days = expiryDays[role];
    if (days !== null && warningDays >= days && !issues.some((i) => i.field === 'warningDays' || i.field === `expiryDays.${role}`)) {
      issues.push({ field: 'warningDays', message: `must be shorter than the expiry of role ${role} (${days} days)` });
    }
  }

  let contextWords: string[] = [...base.contextWords];
  if (input.contextWords !== undefined) {
    const given = input.contextWords;
    if (!Array.isArray(given) || given.length > L.contextWords.maxCount) {
      issues.push({ field: 'contextWords', message: `must be a list of at most ${L.contextWords.maxCount} words` });
    } else {
      contextWords = [];
      given.forEach((word: unknown, index) => {
        if (typeof word !== 'string' || word.trim().length === 0 || word.length > L.contextWords.maxWordLength) {
          issues.push({ field: `contextWords.${index}`, message: `must be a non-empty text of at most ${L.contextWords.maxWordLength} characters` });
        } else {
          contextWords.push(word.trim());
        }
      });
    }
  }

  if (issues.length > 0) throw new PasswordPolicyError(issues);
  return deepFreeze({ minLength, maxLength, minScore, historySize, expiryDays, warningDays, contextWords });
}

function intField(
  input: Record<string, unknown>,
  field: string,
  fallback: number,
  limits: { min: number; max: number },
  issues: PasswordPolicyIssue[],
): number {
  const value = input[field];
  if (value === undefined) return fallback;
  if (isIntegerIn(value, limits.min, limits.max)) return value;
  issues.push({ field, message: `must be a whole number from ${limits.min} to ${limits.max}` });
  return fallback;
}

function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function deepFreeze<T extends object>(value: T): T {
  for (const inner of Object.values(value)) {
    if (typeof inner === 'object' && inner !== null) deepFreeze(inner as object);
  }
  return Object.freeze(value);
}
