import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';
import type { KeyRing } from '../../documents/key-ring.js';
import { openAccountTotpSecret, sealAccountTotpSecret } from '../accounts/account-keys.js';
import { newRecoveryCodes } from './recovery-codes.js';
import { newTotpSecret, totpEnrolment, verifyTotp } from './totp.js';

/** The issuer an authenticator app shows next to the account. */
const TOTP_ISSUER = 'telesalud';
export const RECOVERY_CODE_COUNT = 10;

export interface TotpEnrolmentAnswer {
  /** base32, for typing into an app by hand. */
  secret: string;
  uri: string;
  qrSvg: string;
  /** The same QR code as a `data:` URL an <img> can show. */
  qrDataUrl: string;
}

/** What the user's authenticator app needs: the secret, its key URI and the QR code of it. */
export async function totpEnrolmentAnswer(secret: string, email: string): Promise<TotpEnrolmentAnswer> {
  const { uri, qrSvg } = await totpEnrolment(secret, { issuer: TOTP_ISSUER, account: email });
  return { secret, uri, qrSvg, qrDataUrl: `data:image/svg+xml;base64,${Buffer.from(qrSvg).toString('base64')}` };
}

/**
 * Step one of enrolling an authenticator app: a new secret, kept sealed as pending. The factor
 * in use (if any) stays in force until the user proves the new one with a code.
 */
export async function startTotpEnrolment(db: Kysely<Database>, keyRing: KeyRing, account: { id: string; email: string }): Promise<TotpEnrolmentAnswer> {
  const secret = newTotpSecret();
  await db.updateTable('account').set({ totp_pending_sealed: sealAccountTotpSecret(keyRing, secret, account.id) }).where('id', '=', account.id).execute();
  return totpEnrolmentAnswer(secret, account.email);
}

/** The pending secret of an invitation just accepted, to show again. */
export async function pendingTotpEnrolment(db: Kysely<Database>, keyRing: KeyRing, account: { id: string; email: string }): Promise<TotpEnrolmentAnswer | undefined> {
  const row = await db.selectFrom('account').select('totp_pending_sealed').where('id', '=', account.id).executeTakeFirst();
  if (!row?.totp_pending_sealed) return undefined;
  return totpEnrolmentAnswer(openAccountTotpSecret(keyRing, row.totp_pending_sealed, account.id), account.email);
}

/**
 * Step two: a code from the pending secret makes it the account's TOTP factor (replacing any
 * earlier one). Returns fresh recovery codes when the account had none left, else an empty list;
 * undefined when there is no pending secret or the code is wrong.
 */
export async function confirmTotpEnrolment(db: Kysely<Database>, keyRing: KeyRing, accountId: string, code: string, now = new Date()): Promise<{ recoveryCodes: string[] } | undefined> {
  const row = await db.selectFrom('account').select('totp_pending_sealed').where('id', '=', accountId).executeTakeFirst();
  if (!row?.totp_pending_sealed) return undefined;
  const result = verifyTotp(openAccountTotpSecret(keyRing, row.totp_pending_sealed, accountId), code, { now });
  if (!result.ok) return undefined;
  return db.transaction().execute(async (tx) => {
    // Only the pending secret just checked is promoted, once, whatever another request did meanwhile.
    const promoted = await tx
      .updateTable('account')
      .set({ totp_secret_sealed: row.totp_pending_sealed, totp_pending_sealed: null, totp_last_step: result.step })
      .where('id', '=', accountId)
      .where('totp_pending_sealed', '=', row.totp_pending_sealed)
      .executeTakeFirst();
    if (Number(promoted.numUpdatedRows) !== 1) return undefined;
    const left = await tx.selectFrom('recovery_code').select((eb) => eb.fn.countAll<number>().as('n')).where('account_id', '=', accountId).where('used_at', 'is', null).executeTakeFirst();
    return { recoveryCodes: Number(left?.n ?? 0) > 0 ? [] : await replaceRecoveryCodes(tx, accountId) };
  });
}

/** A new set of recovery codes; every earlier code stops working. Shown once, stored hashed. */
export async function replaceRecoveryCodes(db: Kysely<Database>, accountId: string): Promise<string[]> {
  const { codes, hashes } = newRecoveryCodes(RECOVERY_CODE_COUNT);
  await db.deleteFrom('recovery_code').where('account_id', '=', accountId).execute();
  await db.insertInto('recovery_code').values(hashes.map((hash, position) => ({ account_id: accountId, position, hash, used_at: null }))).execute();
  return codes;
}

/** Whether the account has a factor to sign in with (recovery codes only stand in for one). */
export async function hasSecondFactor(db: Kysely<Database>, accountId: string): Promise<boolean> {
  const account = await db.selectFrom('account').select('totp_secret_sealed').where('id', '=', accountId).executeTakeFirst();
  if (account?.totp_secret_sealed) return true;
  return (await db.selectFrom('passkey_credential').select('id').where('account_id', '=', accountId).limit(1).executeTakeFirst()) !== undefined;
}

/** The authenticator app and the recovery codes go; passkeys stay (a patient turning off app codes). */
export async function removeTotp(db: Kysely<Database>, accountId: string): Promise<void> {
  await db.transaction().execute(async (tx) => {
    await tx.updateTable('account').set({ totp_secret_sealed: null, totp_pending_sealed: null, totp_last_step: null }).where('id', '=', accountId).execute();
    if (!(await tx.selectFrom('passkey_credential').select('id').where('account_id', '=', accountId).limit(1).executeTakeFirst())) {
      await tx.deleteFrom('recovery_code').where('account_id', '=', accountId).execute();
    }
  });
}

/** An admin's reset: every factor goes; the next sign-in enrols a new one if the policy asks for it. */
export async function resetAllFactors(db: Kysely<Database>, accountId: string): Promise<void> {
  await db.transaction().execute(async (tx) => {
    await tx.updateTable('account').set({ totp_secret_sealed: null, totp_pending_sealed: null, totp_last_step: null }).where('id', '=', accountId).execute();
    await tx.deleteFrom('recovery_code').where('account_id', '=', accountId).execute();
    await tx.deleteFrom('passkey_credential').where('account_id', '=', accountId).execute();
    await tx.deleteFrom('webauthn_challenge').where('account_id', '=', accountId).execute();
  });
}
