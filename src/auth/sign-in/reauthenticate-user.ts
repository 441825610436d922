import type { AppContext } from '../../server/app-context.js';
import { reauthenticate } from '../access/reauthenticate.js';
import type { ActiveSession } from '../sessions/session-store.js';

/**
 * Proof, for a sensitive change (MFA, passkeys, recovery codes), that the person at the session
 * is its owner: the password and, when the account has an authenticator app, a fresh code —
 * through the break-the-glass re-authentication (its replay guard and failure counting). An
 * account without one (a patient without MFA, a user enrolling the first factor the policy asks
 * for) has only its password to give, counted like a sign-in failure when wrong.
 */
export async function reauthenticateUser(ctx: AppContext, session: ActiveSession, input: { password: string; code?: string | undefined }, origin: { source: string; requestId: string }): Promise<boolean> {
  const account = await ctx.store.db.selectFrom('account').select(['totp_secret_sealed']).where('id', '=', session.account.id).executeTakeFirst();
  if (!account) return false;
  if (account.totp_secret_sealed) return reauthenticate(ctx.store.db, ctx.keyRing, ctx.audit, session.account.id, input, origin);
  return ctx.signIn.confirmPassword(session.account.id, input.password, origin);
}
