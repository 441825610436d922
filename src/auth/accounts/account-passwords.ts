import type { Kysely, Selectable } from 'kysely';
import type { Database } from '../../db/schema.js';
import { checkPassword, hashPassword, passwordExpiry, PASSWORD_POLICY_LIMITS, type PasswordCheckResult, type PasswordExpiry, type PasswordPolicy } from '../passwords/index.js';
import { authPolicy } from '../policy/auth-policy.js';
import type { Role } from '../roles.js';

type AccountRow = Selectable<Database['account']>;

/** What an attacker may know of this user, for the strength and personal-information checks. */
export function personalInputs(email: string, name: string | null | undefined): string[] {
  return [email, email.split('@')[0]!, ...(name ? name.trim().split(/\s+/) : [])];
}

/** The account's password expiry under the policy in force (a password never changed counts from the account's creation). */
export async function passwordExpiryOf(db: Kysely<Database>, account: Pick<AccountRow, 'role' | 'password_changed_at' | 'created'>, now = new Date(), policy?: PasswordPolicy): Promise<PasswordExpiry> {
  const password = policy ?? (await authPolicy(db).current()).password;
  return passwordExpiry(new Date(account.password_changed_at ?? account.created), account.role as Role, password, now);
}

/**
 * Checks a new password for an existing account (policy in force, its own name and email, its
 * history) and, when accepted, stores it with its history entry. Ending the account's sessions
 * is the caller's: it decides which session replaces them.
 */
export async function setAccountPassword(db: Kysely<Database>, accountId: string, newPassword: string, now = new Date()): Promise<PasswordCheckResult> {
  const account = await db.selectFrom('account').select(['email', 'display_name']).where('id', '=', accountId).executeTakeFirstOrThrow();
  const policy = (await authPolicy(db).current()).password;
  const history = await db.selectFrom('password_history').select('hash').where('account_id', '=', accountId).orderBy('changed_at', 'desc').limit(Math.max(policy.historySize, 1)).execute();
  const check = await checkPassword(newPassword, { policy, userInputs: personalInputs(account.email, account.display_name), previousHashes: history.map((h) => h.hash) });
  if (!check.ok) return check;
  const hash = await hashPassword(newPassword);
  await db.transaction().execute(async (tx) => {
    await tx.updateTable('account').set({ password_hash: hash, password_changed_at: now }).where('id', '=', accountId).execute();
    await tx.insertInto('password_history').values({ account_id: accountId, hash, changed_at: now }).execute();
    // Keep no more history than the largest policy could ask for.
    const keep = await tx.selectFrom('password_history').select('changed_at').where('account_id', '=', accountId).orderBy('changed_at', 'desc').offset(PASSWORD_POLICY_LIMITS.historySize.max - 1).limit(1).executeTakeFirst();
    if (keep) await tx.deleteFrom('password_history').where('account_id', '=', accountId).where('changed_at', '<', keep.changed_at).execute();
  });
  return check;
}
