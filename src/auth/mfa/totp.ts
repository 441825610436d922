import { createCipheriv, createDecipheriv, randomBytes, timingSafeEqual } from 'node:crypto';
import { HOTP, Secret, TOTP } from 'otpauth';
import QRCode from 'qrcode';

/**
 * TOTP (RFC 6238) as pure building blocks: nothing here reads or writes storage. The
 * caller keeps, per account, the sealed secret and the last accepted time step.
 *
 * Parameters are the ones every authenticator app assumes when it scans a QR code
 * (Google Authenticator ignores anything else): HMAC-SHA-1, 6 digits, 30-second steps.
 * SHA-1 is fine here: HOTP needs HMAC as a PRF, not collision resistance.
 */
export const TOTP_ALGORITHM = 'SHA1';
export const TOTP_DIGITS = 6;
export const TOTP_PERIOD_SECONDS = 30;
/** Steps of clock drift accepted either side of now (±30 s). */
export const TOTP_DEFAULT_WINDOW = 1;
const MAX_WINDOW = 3;

/** 160 bits, the HMAC-SHA-1 key size RFC 4226 recommends (it requires at least 128). */
const SECRET_BYTES = 20;
const MIN_SECRET_BYTES = 16;
const MAX_SECRET_CHARS = 128;
/** Anything longer than this is not a code someone typed; refused before any other work. */
const MAX_CODE_INPUT = 32;

/** A fresh TOTP secret: 160 bits from the OS CSPRNG, as unpadded RFC 4648 base32 (32 chars). */
export function newTotpSecret(): string {
  return Secret.fromHex(randomBytes(SECRET_BYTES).toString('hex')).base32;
}

/**
 * Canonical form of a base32 secret (upper case, no spaces or padding), or a TypeError:
 * a bad secret is a programming or data error, never a user's wrong code.
 */
export function normaliseTotpSecret(secret: string): string {
  if (typeof secret !== 'string' || secret.length > MAX_SECRET_CHARS * 2) throw new TypeError('TOTP secret: not a base32 string');
  const s = secret.replace(/\s+/g, '').toUpperCase().replace(/=+$/, '');
  if (!/^[A-Z2-7]+$/.test(s) || s.length > MAX_SECRET_CHARS) throw new TypeError('TOTP secret: not a base32 string');
  if (Math.floor((s.length * 5) / 8) < MIN_SECRET_BYTES) throw new TypeError('TOTP secret: shorter than 128 bits');
  return s;
}

/** The RFC 6238 time step (T) that contains `now`. */
export function totpStep(now: Date = new Date()): number {
  const ms = now.getTime();
  if (!Number.isFinite(ms)) throw new TypeError('TOTP: invalid date');
  return Math.floor(ms / 1000 / TOTP_PERIOD_SECONDS);
}

function codeAtStep(secret: Secret, step: number): string {
  return HOTP.generate({ secret, algorithm: TOTP_ALGORITHM, digits: TOTP_DIGITS, counter: step });
}

/** The code an authenticator shows at `now` — for tests and the CLI/test sign-in helpers. */
export function currentTotpCode(secret: string, now: Date = new Date()): string {
  return codeAtStep(Secret.fromBase32(normaliseTotpSecret(secret)), totpStep(now));
}

export interface TotpEnrolment {
  /** `otpauth://totp/…` key URI (what the QR code holds; also shown for manual entry). */
  uri: string;
  /** The URI as a QR code, a self-contained SVG document (no external references). */
  qrSvg: string;
}

/** Key URI and QR code for an authenticator app to scan. Rendered locally: the secret never leaves the server. */
export async function totpEnrolment(secret: string, opts: { issuer: string; account: string }): Promise<TotpEnrolment> {
  const { issuer, account } = opts;
  if (!issuer || issuer.length > 64 || issuer.includes(':')) throw new TypeError('TOTP enrolment: issuer must be 1–64 characters without ":"');
  if (!account || account.length > 254) throw new TypeError('TOTP enrolment: account must be 1–254 characters');
  const totp = new TOTP({
    issuer,
    label: account,
    secret: Secret.fromBase32(normaliseTotpSecret(secret)),
    algorithm: TOTP_ALGORITHM,
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
  });
  const uri = totp.toString();
  const qrSvg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  return { uri, qrSvg };
}

export type TotpVerification =
  /** Accepted. The caller must store `step` as the account's lastUsedStep (atomically, e.g. `… where last_step < $step`). */
  | { ok: true; step: number }
  /** `malformed`: not six digits; `invalid`: wrong code; `replayed`: right code, already-used (or older) step. */
  | { ok: false; reason: 'invalid' | 'replayed' | 'malformed' };

export interface VerifyTotpOptions {
  /** The step stored after the last successful verification; codes at or before it are refused. */
  lastUsedStep?: number | null;
  now?: Date;
  /** Steps of drift either side of now; default 1, at most 3. */
  window?: number;
}

/**
 * Checks a code typed by the user. Input is normalised (whitespace removed) and anything
 * but exactly six ASCII digits is refused before any HMAC is computed. Every candidate
 * in the window is computed and compared in constant time, without stopping at a match.
 * If the code matches more than one step, the newest wins.
 */
export function verifyTotp(secret: string, code: string, opts: VerifyTotpOptions = {}): TotpVerification {
  const window = opts.window ?? TOTP_DEFAULT_WINDOW;
  if (!Number.isInteger(window) || window < 0 || window > MAX_WINDOW) throw new RangeError(`TOTP: window must be an integer 0–${MAX_WINDOW}`);
  const last = opts.lastUsedStep ?? null;
  if (last !== null && !Number.isSafeInteger(last)) throw new TypeError('TOTP: lastUsedStep must be an integer');
  const key = Secret.fromBase32(normaliseTotpSecret(secret));
  const now = totpStep(opts.now);

  if (typeof code !== 'string' || code.length > MAX_CODE_INPUT) return { ok: false, reason: 'malformed' };
  const typed = code.replace(/\s+/g, '');
  if (!/^[0-9]{6}$/.test(typed)) return { ok: false, reason: 'malformed' };
  const typedBytes = Buffer.from(typed, 'ascii');

  let matched: number | null = null;
  for (let step = now - window; step <= now + window; step++) {
    if (step < 0) continue;
    const same = timingSafeEqual(Buffer.from(codeAtStep(key, step), 'ascii'), typedBytes);
    if (same) matched = step; // ascending loop: the newest matching step is kept
  }
  if (matched === null) return { ok: false, reason: 'invalid' };
  if (last !== null && matched <= last) return { ok: false, reason: 'replayed' };
  return { ok: true, step: matched };
}

// ---- Secrets at rest -------------------------------------------------------------

const SEAL_VERSION = 'v1';
const SEAL_AAD = 'telesalud/totp/v1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const B64URL = /^[A-Za-z0-9_-]*$/;

function aad(boundTo: string | undefined): Buffer {
  // Binding to the owner (e.g. the user id) stops someone with write access to the
  // database from copying their own sealed secret into another account's row.
  return Buffer.from(boundTo === undefined ? SEAL_AAD : `${SEAL_AAD}\0${boundTo}`, 'utf8');
}

function checkKey(key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length !== 32) throw new TypeError('TOTP seal: key must be a 32-byte Buffer (AES-256)');
}

/**
 * Encrypts a TOTP secret for storage with AES-256-GCM (random 12-byte nonce, AAD
 * `telesalud/totp/v1`), as `v1.<nonce>.<ciphertext>.<tag>` in base64url — so a database
 * dump without the key yields no TOTP secrets. `key` should be derived for this one
 * purpose (e.g. HKDF of the node's master key with info `telesalud/totp/v1`).
 * `boundTo` (optional, e.g. the user id) is added to the AAD; pass the same to open.
 */
export function sealTotpSecret(secret: string, key: Buffer, boundTo?: string): string {
  checkKey(key);
  const plain = Buffer.from(normaliseTotpSecret(secret), 'ascii');
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad(boundTo));
  const ct = Buffer.concat([cipher.update(plain), cipher.final()]);
  const tag = cipher.getAuthTag();
  return [SEAL_VERSION, nonce.toString('base64url'), ct.toString('base64url'), tag.toString('base64url')].join('.');
}

/** Decrypts what sealTotpSecret produced. Throws on a wrong key, wrong `boundTo`, or any tampering. */
export function openTotpSecret(sealed: string, key: Buffer, boundTo?: string): string {
  checkKey(key);
  const parts = typeof sealed === 'string' && sealed.length <= 1024 ? sealed.split('.') : [];
  if (parts.length !== 4 || parts[0] !== SEAL_VERSION || !parts.slice(1).every((p) => B64URL.test(p))) {
    throw new Error('TOTP seal: not a v1 sealed secret');
  }
  const nonce = Buffer.from(parts[1]!, 'base64url');
  const ct = Buffer.from(parts[2]!, 'base64url');
  const tag = Buffer.from(parts[3]!, 'base64url');
  if (nonce.length !== NONCE_BYTES || tag.length !== TAG_BYTES || ct.length === 0) throw new Error('TOTP seal: not a v1 sealed secret');
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad(boundTo));
  decipher.setAuthTag(tag);
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(ct), decipher.final()]);
  } catch {
    throw new Error('TOTP seal: authentication failed (wrong key or tampered data)');
  }
  return normaliseTotpSecret(plain.toString('ascii'));
}

/** For `telesalud keys rotate`: re-encrypts a sealed secret under a new key (fresh nonce). */
export function resealTotpSecret(sealed: string, oldKey: Buffer, newKey: Buffer, boundTo?: string): string {
  return sealTotpSecret(openTotpSecret(sealed, oldKey, boundTo), newKey, boundTo);
}
