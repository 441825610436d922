import type { FastifyReply } from 'fastify';
import type { AppContext } from '../../server/app-context.js';
import { reauthenticate, reauthRefusal, type ReauthInput, type ReauthPurpose } from '../access/reauthenticate.js';
import type { ActiveSession } from '../sessions/session-store.js';

/**
 * Proof, for a sensitive change (MFA, passkeys, recovery codes) or an export, that the person at
 * the session is its owner: the password and one of the account's second factors (a code from the
 * authenticator app, a recovery code or a passkey), through the one re-authentication
 * (access/reauthenticate.ts). An account without a second factor gives its password alone where
 * the policy allows that — and always to enrol its first factor ('mfa-change').
 *
 * False for a plain refusal (the caller audits it and answers `reauthentication-failed`); a wait
 * (429), a missing second factor the policy requires, or both a code and a passkey are thrown
 * with their own message, as nothing the user types could succeed.
 */
export async function reauthenticateUser(
  ctx: AppContext,
  session: ActiveSession,
  input: ReauthInput,
  origin: { source: string; requestId: string },
  purpose: ReauthPurpose = 'mfa-change',
  reply?: FastifyReply,
): Promise<boolean> {
  const result = await reauthenticate(ctx, session, purpose, input, origin);
  if (result.ok) return true;
  if (result.reason === 'refused') return false;
  throw reauthRefusal(result, reply);
}
