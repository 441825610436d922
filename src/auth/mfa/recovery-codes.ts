import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Single-use recovery codes, for when the authenticator or passkey is lost. Pure: the
 * caller stores the hashes, shows the codes once, and marks a code used (deletes its hash
 * or sets it to null, in the same transaction as the sign-in) when consumeRecoveryCode
 * names it.
 *
 * Hashing choice — salted SHA-256 over 80-bit random codes, not argon2id:
 * A slow hash exists to protect low-entropy secrets people choose. These codes are 80
 * bits from the CSPRNG, so nothing is guessable; what matters is the cost of an exhaustive
 * search after a database leak (including the pepper/keys, which we assume leak too).
 * With a 128-bit random salt per code, each code is a separate 2^80 search (~2^77 for
 * one of a user's ten): at 10^10 SHA-256/s per GPU that is ~5×10^5 GPU-years. argon2id
 * would buy nothing against that, and would cost ~50 ms × up to ten codes per attempt,
 * which turns the recovery form into a CPU amplifier for attackers.
 * (We use 16 characters rather than 12: 12 gives 60 bits, where a motivated attacker with
 * 100 GPUs would find one code of a chosen account in about a day with a fast hash.)
 */

/** 32 symbols (5 bits each, so a random byte maps uniformly): 2–9 and a–z without l and o; no 0/O/1/l. */
export const RECOVERY_ALPHABET = '23456789abcdefghijkmnpqrstuvwxyz';
const GROUPS = 4;
const GROUP_LEN = 4;
const CODE_LEN = GROUPS * GROUP_LEN; // 16 symbols × 5 bits = 80 bits
export const RECOVERY_CODE_BITS = CODE_LEN * 5;
const HASH_PREFIX = 'rc1';
const DOMAIN = 'telesalud/recovery-code/v1\0';
const SALT_BYTES = 16;
const MAX_INPUT = 64;

export interface NewRecoveryCodes {
  /** Shown to the user once, formatted `xxxx-xxxx-xxxx-xxxx`; never stored. */
  codes: string[];
  /** Same order as `codes`; `rc1$<salt b64url>$<sha256 b64url>`, what the caller stores. */
  hashes: string[];
}

/** A fresh set of recovery codes (all distinct) and their hashes. */
export function newRecoveryCodes(count = 10): NewRecoveryCodes {
  if (!Number.isInteger(count) || count < 1 || count > 100) throw new RangeError('recovery codes: count must be 1–100');
  const seen = new Set<string>();
  while (seen.size < count) seen.add(randomCode());
  const codes = [...seen].map(formatRecoveryCode);
  return { codes, hashes: codes.map(hashRecoveryCode) };
}

function randomCode(): string {
  const bytes = randomBytes(CODE_LEN);
  let s = '';
  for (const b of bytes) s += RECOVERY_ALPHABET[b & 31];
  return s;
}

function formatRecoveryCode(raw: string): string {
  const groups: string[] = [];
  for (let i = 0; i < CODE_LEN; i += GROUP_LEN) groups.push(raw.slice(i, i + GROUP_LEN));
  return groups.join('-');
}

/**
 * What the user typed, reduced to the 16 code symbols (case, spaces and dashes ignored),
 * or null if it cannot be a recovery code.
 */
export function normaliseRecoveryCode(input: string): string | null {
  if (typeof input !== 'string' || input.length > MAX_INPUT) return null;
  const s = input.toLowerCase().replace(/[\s\-‐-―−]+/g, '');
  if (s.length !== CODE_LEN) return null;
  for (const ch of s) if (!RECOVERY_ALPHABET.includes(ch)) return null;
  return s;
}

function digest(salt: Buffer, normalised: string): Buffer {
  return createHash('sha256').update(DOMAIN).update(salt).update(normalised, 'ascii').digest();
}

/** Hash of one recovery code (with a fresh salt), in the stored format. */
export function hashRecoveryCode(code: string): string {
  const n = normaliseRecoveryCode(code);
  if (n === null) throw new TypeError('recovery code: not a recovery code');
  const salt = randomBytes(SALT_BYTES);
  return `${HASH_PREFIX}$${salt.toString('base64url')}$${digest(salt, n).toString('base64url')}`;
}

function parseHash(stored: string): { salt: Buffer; hash: Buffer } {
  const parts = stored.split('$');
  if (parts.length !== 3 || parts[0] !== HASH_PREFIX) throw new Error('recovery code: stored hash is not in rc1 format');
  const salt = Buffer.from(parts[1]!, 'base64url');
  const hash = Buffer.from(parts[2]!, 'base64url');
  if (salt.length !== SALT_BYTES || hash.length !== 32) throw new Error('recovery code: stored hash is not in rc1 format');
  return { salt, hash };
}

/**
 * The index in `hashes` of the unused code matching `input`, or -1. Entries that are null,
 * undefined or '' count as used and never match. Every unused entry is checked, in
 * constant time, whether or not an earlier one matched. The caller must then mark that
 * entry used — atomically (e.g. `update … set used_at = now() where id = $1 and used_at is
 * null` and check one row changed), so two nodes can't both accept the same code.
 * A malformed stored hash throws (data corruption should be loud).
 */
export function consumeRecoveryCode(input: string, hashes: ReadonlyArray<string | null | undefined>): number {
  const n = normaliseRecoveryCode(input);
  if (n === null) return -1;
  let found = -1;
  hashes.forEach((stored, i) => {
    if (!stored) return;
    const { salt, hash } = parseHash(stored);
    if (timingSafeEqual(digest(salt, n), hash) && found === -1) found = i;
  });
  return found;
}
