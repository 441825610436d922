/**
 * Password hashing: argon2id through @node-rs/argon2 (native, runs on libuv's thread pool, so
 * hashing never blocks the event loop). Hashes are PHC strings
 * (`$argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>`) that carry their own parameters and a random
 * 16-byte salt, so the caller stores one text column and nothing else.
 */
import { hash, parseOptions, verify, type Algorithm, type Options, type Version } from '@node-rs/argon2';
import { randomBytes } from 'node:crypto';

export interface Argon2idParams {
  /** Memory per hash in KiB (`m=`). */
  readonly memoryKiB: number;
  /** Passes over the memory (`t=`). */
  readonly iterations: number;
  /** Lanes (`p=`). */
  readonly parallelism: number;
  /** Raw hash length in bytes. */
  readonly outputBytes: number;
}

/**
 * The parameters, stated: argon2id, m = 64 MiB, t = 3, p = 1, 32-byte output, 16-byte salt.
 *
 * Why: OWASP's Password Storage Cheat Sheet gives a family of equally strong *minimums* (m=47104
 * KiB t=1, m=19456 t=2, m=12288 t=3 … all p=1). RFC 9106 §4 recommends m=64 MiB, t=3 where 2 GiB
 * per hash is unaffordable. We take RFC 9106's memory and passes — about five times OWASP's
 * minimum work — but with one lane, not four: a node has 2 cores and several sign-ins hash at
 * once, so extra lanes would only contend for the same cores while giving an attacker's GPU no
 * extra work. Measured on this project's 2-core AMD EPYC machines: ~60 ms per hash or verify,
 * 64 MiB each while it runs (at most 4 at once on libuv's default pool: 256 MiB).
 *
 * Changing these values makes `needsRehash` true for every stored hash: rehash at the next
 * successful sign-in, when the plain password is at hand.
 */
export const ARGON2ID_PARAMS: Argon2idParams = Object.freeze({
  memoryKiB: 65_536,
  iterations: 3,
  parallelism: 1,
  outputBytes: 32,
});

/**
 * No password longer than this (UTF-16 code units, before normalisation) is ever hashed or
 * normalised, whatever the policy: an unauthenticated sign-in must not be able to make the
 * server chew on megabytes. The policy's maxLength (≤ 1024 code points) always fits under it.
 */
export const MAX_PASSWORD_INPUT_UNITS = 2048;

// Values of @node-rs/argon2's `const enum`s; they are erased at compile time and absent at run time.
const ARGON2ID = 2 as Algorithm;
const VERSION_0X13 = 1 as Version;

/**
 * One canonical form for every password before it is hashed, verified or checked: NFKC, as NIST
 * SP 800-63B advises, so "ñ" typed as one code point (Windows) or as n + combining tilde (macOS)
 * is the same password.
 */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

/** Length in code points after normalisation: what a person would count as characters. */
export function passwordLength(normalized: string): number {
  let count = 0;
  for (const _ of normalized) count += 1;
  return count;
}

function toOptions(params: Argon2idParams): Options {
  return {
    algorithm: ARGON2ID,
    version: VERSION_0X13,
    memoryCost: params.memoryKiB,
    timeCost: params.iterations,
    parallelism: params.parallelism,
    outputLen: params.outputBytes,
  };
}

/**
 * Hashes a password with argon2id. Length and strength are not checked here: run `checkPassword`
 * first when a user chooses a password.
 *
 * @param params only for tests and deliberate migrations; production uses ARGON2ID_PARAMS.
 */
export async function hashPassword(password: string, params: Argon2idParams = ARGON2ID_PARAMS): Promise<string> {
  if (password.length > MAX_PASSWORD_INPUT_UNITS) throw new RangeError('password is too long to hash');
  return hash(normalizePassword(password), toOptions(params));
}

/** Thrown when a stored hash is not an argon2 PHC string: stored data is damaged, not a wrong password. */
export class InvalidPasswordHashError extends Error {
  constructor() {
    super('stored password hash is not an argon2 PHC string');
    this.name = 'InvalidPasswordHashError';
  }
}

let dummyHash: Promise<string> | undefined;

/**
 * Checks a password against its stored hash (argon2's own constant-time comparison).
 *
 * Pass `null` when the account does not exist: the password is then checked against a dummy hash
 * with the same parameters and the answer is `false`, so a sign-in for an unknown account costs
 * the same time as one with a wrong password and timing does not reveal which accounts exist.
 * Over-long input is refused at once (length alone says nothing about the account).
 *
 * @throws InvalidPasswordHashError when `storedHash` is not an argon2 PHC string.
 */
export async function verifyPassword(storedHash: string | null, password: string): Promise<boolean> {
  if (storedHash === null) {
    dummyHash ??= hashPassword(randomBytes(18).toString('base64'));
    const tooLong = password.length > MAX_PASSWORD_INPUT_UNITS;
    await verify(await dummyHash, tooLong ? '' : normalizePassword(password));
    return false;
  }
  if (password.length > MAX_PASSWORD_INPUT_UNITS) return false;
  if (!isArgon2Hash(storedHash)) throw new InvalidPasswordHashError();
  try {
    return await verify(storedHash, normalizePassword(password));
  } catch {
    throw new InvalidPasswordHashError();
  }
}

/** Whether a text parses as an argon2 (any variant) PHC string. */
export function isArgon2Hash(storedHash: string): boolean {
  try {
    parseOptions(storedHash);
    return true;
  } catch {
    return false;
  }
}

/**
 * True when a stored hash was not made with the current parameters (or is not argon2id v1.3, or
 * does not parse): after a successful sign-in, hash the password again and store the new hash.
 */
export function needsRehash(storedHash: string, params: Argon2idParams = ARGON2ID_PARAMS): boolean {
  let parsed;
  try {
    parsed = parseOptions(storedHash);
  } catch {
    return true;
  }
  return (
    parsed.algorithm !== ARGON2ID ||
    parsed.version !== VERSION_0X13 ||
    parsed.memoryCost !== params.memoryKiB ||
    parsed.timeCost !== params.iterations ||
    parsed.parallelism !== params.parallelism ||
    parsed.outputLen !== params.outputBytes ||
    parsed.saltLen < 16
  );
}

/** Warms the dummy hash used for unknown accounts, so the first such sign-in costs no extra hash. */
export async function preloadDummyHash(): Promise<void> {
  dummyHash ??= hashPassword(randomBytes(18).toString('base64'));
  await dummyHash;
}
