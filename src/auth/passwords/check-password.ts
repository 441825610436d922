/**
 * Whether a newly chosen password is acceptable under the policy. Pure: the caller loads the
 * account's previous hashes and stores the new hash (see `nextPasswordHistory`).
 */
import { MAX_PASSWORD_INPUT_UNITS, isArgon2Hash, normalizePassword, passwordLength, verifyPassword } from './argon2id.js';
import { findBreachedMatch, type BreachedMatch } from './breached-list.js';
import type { PasswordPolicy } from './policy.js';
import { estimateStrength, findPersonalToken, personalTokens } from './strength.js';

/** Each problem is a code the browser app translates (es/en), with the numbers its message needs. */
export type PasswordProblem =
  | { code: 'too-short'; minLength: number }
  | { code: 'too-long'; maxLength: number }
  | { code: 'too-weak'; score: number; minScore: number }
  | { code: 'breached'; match: BreachedMatch }
  | { code: 'reused'; historySize: number }
  | { code: 'contains-personal-info' };

export type PasswordProblemCode = PasswordProblem['code'];

export interface PasswordCheckResult {
  ok: boolean;
  problems: PasswordProblem[];
  /** zxcvbn score 0–4; `null` when the password was too long to score. */
  score: 0 | 1 | 2 | 3 | 4 | null;
  /** zxcvbn translation keys (see strength.ts). */
  feedback: { warning: string | null; suggestions: string[] };
}

export interface PasswordCheckContext {
  policy: PasswordPolicy;
  /** What an attacker may know of this user: full name, email, username, phone… */
  userInputs?: readonly string[];
  /**
   * The account's password history, newest first, the current password's hash first. Only the
   * first `policy.historySize` are consulted; entries that are not argon2 hashes are ignored.
   */
  previousHashes?: readonly string[];
}

/**
 * Checks a password a user wants to set. All problems are reported together, except that an
 * over-long password is refused before any costly check (scoring, hashing) runs.
 *
 * Cost, measured here: ~10–60 ms of zxcvbn on the event loop for ordinary passwords (≤ ~0.25 s for
 * hostile 64+ character inputs, which are scored on their first 64 characters), one binary search
 * in the breached list, and one argon2 verify (~60 ms, on the thread pool) per history entry, all
 * entries at once.
 */
export async function checkPassword(password: string, context: PasswordCheckContext): Promise<PasswordCheckResult> {
  const { policy } = context;
  const problems: PasswordProblem[] = [];
  const noFeedback = { warning: null, suggestions: [] };

  if (password.length > MAX_PASSWORD_INPUT_UNITS) {
    return { ok: false, problems: [{ code: 'too-long', maxLength: policy.maxLength }], score: null, feedback: noFeedback };
  }
  const normalized = normalizePassword(password);
  const length = passwordLength(normalized);
  if (length > policy.maxLength) {
    return { ok: false, problems: [{ code: 'too-long', maxLength: policy.maxLength }], score: null, feedback: noFeedback };
  }
  if (length < policy.minLength) problems.push({ code: 'too-short', minLength: policy.minLength });

  const userInputs = context.userInputs ?? [];
  const tokens = personalTokens(userInputs);
  if (findPersonalToken(normalized, tokens) !== null) problems.push({ code: 'contains-personal-info' });

  const breached = findBreachedMatch(normalized);
  if (breached !== null) problems.push({ code: 'breached', match: breached });

  const contextInputs = [...policy.contextWords, ...personalTokens(policy.contextWords)];
  const strength = estimateStrength(normalized, [...userInputs, ...tokens, ...contextInputs]);
  if (strength.score < policy.minScore) problems.push({ code: 'too-weak', score: strength.score, minScore: policy.minScore });

  if (await matchesHistory(password, context.previousHashes ?? [], policy.historySize)) {
    problems.push({ code: 'reused', historySize: policy.historySize });
  }

  return { ok: problems.length === 0, problems, score: strength.score, feedback: strength.feedback };
}

async function matchesHistory(password: string, previousHashes: readonly string[], historySize: number): Promise<boolean> {
  const recent = previousHashes.slice(0, historySize).filter(isArgon2Hash);
  if (recent.length === 0) return false;
  const results = await Promise.all(recent.map((h) => verifyPassword(h, password).catch(() => false)));
  return results.includes(true);
}

/**
 * The history to store after a successful change: the new hash first, trimmed to the policy's
 * size (an empty list when history is off).
 */
export function nextPasswordHistory(newHash: string, previousHashes: readonly string[], policy: PasswordPolicy): string[] {
  return [newHash, ...previousHashes].slice(0, policy.historySize);
}
