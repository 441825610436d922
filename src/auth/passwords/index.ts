/**
 * Passwords: policy, argon2id hashing, acceptance checks (length, zxcvbn strength, breached list,
 * personal information, history) and expiry. Storage-free: the caller persists hashes and history.
 */
export {
  DEFAULT_PASSWORD_POLICY,
  PASSWORD_POLICY_LIMITS,
  PASSWORD_ROLES,
  PasswordPolicyError,
  parsePasswordPolicy,
  type PasswordPolicy,
  type PasswordPolicyIssue,
  type PasswordRole,
} from './policy.js';
export {
  ARGON2ID_PARAMS,
  InvalidPasswordHashError,
  MAX_PASSWORD_INPUT_UNITS,
  hashPassword,
  isArgon2Hash,
  needsRehash,
  normalizePassword,
  verifyPassword,
  type Argon2idParams,
} from './argon2id.js';
export {
  checkPassword,
  nextPasswordHistory,
  type PasswordCheckContext,
  type PasswordCheckResult,
  type PasswordProblem,
  type PasswordProblemCode,
} from './check-password.js';
export { passwordExpiry, type PasswordExpiry } from './expiry.js';
export { preloadPasswordChecks } from './preload.js';
