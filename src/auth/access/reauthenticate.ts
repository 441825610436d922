import type { Kysely } from 'kysely';
import type { AuditLog } from '../../audit/audit-log.js';
import type { Database } from '../../db/schema.js';
import type { KeyRing } from '../../documents/key-ring.js';
import { openAccountTotpSecret } from '../accounts/account-keys.js';
import { verifyTotp } from '../mfa/totp.js';
import { verifyPassword } from '../passwords/index.js';
import { ROLES_REQUIRING_MFA, type Role } from '../roles.js';
import { SIGN_IN_LIMITS } from '../sign-in/sign-in-service.js';

/**
 * Re-authentication for a sensitive action (break-the-glass): the signed-in user proves again
 * who they are with their password and, where MFA applies, a fresh TOTP code — with the
 * sign-in's own password and TOTP checks, replay guard and failure counting (a stolen session
 * can't be used to guess the password faster than sign-in allows), but no new session.
 */
export async function reauthenticate(
  db: Kysely<Database>,
  keyRing: KeyRing,
  audit: AuditLog,
  accountId: string,
  input: { password: string; code?: string | undefined },
  origin: { source: string; requestId: string },
  now = new Date(),
): Promise<boolean> {
  const account = await db.selectFrom('account').selectAll().where('id', '=', accountId).executeTakeFirst();
  if (!account) return false;
  const security = (action: 'sign-in-failed' | 'account-locked', outcome: 'failed' | 'denied', detail: Record<string, unknown>) =>
    audit.record({ actor: `account:${account.id}`, action, outcome, source: origin.source, requestId: origin.requestId, detail: { reauthentication: true, ...detail } });

  if (account.locked_until && new Date(account.locked_until).getTime() > now.getTime()) {
    await security('sign-in-failed', 'denied', { reason: 'paused' });
    return false;
  }
  let ok = (await verifyPassword(account.password_hash, input.password)) && account.status === 'active';
  if (ok && (account.totp_secret_sealed || ROLES_REQUIRING_MFA.has(account.role as Role))) {
    ok = account.totp_secret_sealed !== null && input.code !== undefined && (await totpOk(db, keyRing, account.id, account.totp_secret_sealed, account.totp_last_step, input.code, now));
  }
  if (ok) {
    await db.updateTable('account').set({ failed_sign_ins: 0, locked_until: null }).where('id', '=', account.id).execute();
    return true;
  }
  const updated = await db
    .updateTable('account')
    .set((eb) => ({ failed_sign_ins: eb('failed_sign_ins', '+', 1), last_failed_at: now }))
    .where('id', '=', account.id)
    .returning('failed_sign_ins')
    .executeTakeFirstOrThrow();
  await security('sign-in-failed', 'failed', { failures: updated.failed_sign_ins });
  if (updated.failed_sign_ins >= SIGN_IN_LIMITS.lockAfter && updated.failed_sign_ins % SIGN_IN_LIMITS.lockAfter === 0) {
    await db.updateTable('account').set({ locked_until: new Date(now.getTime() + SIGN_IN_LIMITS.lockMinutes * 60_000) }).where('id', '=', account.id).execute();
    await security('account-locked', 'denied', { minutes: SIGN_IN_LIMITS.lockMinutes });
  }
  return false;
}

async function totpOk(db: Kysely<Database>, keyRing: KeyRing, accountId: string, sealed: string, lastStep: number | null, code: string, now: Date): Promise<boolean> {
  const result = verifyTotp(openAccountTotpSecret(keyRing, sealed, accountId), code, { lastUsedStep: lastStep, now });
  if (!result.ok) return false;
  // The same replay guard as sign-in: a code used there can't be used here, nor twice here.
  const advanced = await db
    .updateTable('account')
    .set({ totp_last_step: result.step })
    .where('id', '=', accountId)
    .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', result.step)]))
    .executeTakeFirst();
  return Number(advanced.numUpdatedRows) === 1;
}
