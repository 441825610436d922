import type { FastifyReply } from 'fastify';
import { setSessionCookie } from '../sessions/session-cookie.js';
import type { SessionRestriction } from '../sessions/session-store.js';
import type { SignInResult } from './sign-in-service.js';

type SignedIn = Extract<SignInResult, { kind: 'signed-in' }>;

/**
 * What every way in answers (password sign-in, passkey, accepted invitation): the cookie, the
 * account, the CSRF token, and what the session may do yet.
 */
export function signedInAnswer(reply: FastifyReply, result: Pick<SignedIn, 'account' | 'token' | 'csrfToken' | 'expires' | 'restriction' | 'passwordExpiresAt'>): Record<string, unknown> {
  setSessionCookie(reply, result);
  return { account: result.account, csrfToken: result.csrfToken, ...restrictionFields(result.restriction, result.passwordExpiresAt) };
}

/** `passwordExpired` / `mfaEnrolmentRequired` for a restricted session, `passwordExpiresAt` in the warning period. */
export function restrictionFields(restriction: SessionRestriction | null, passwordExpiresAt?: Date | null): Record<string, unknown> {
  return {
    ...(restriction === 'password-expired' ? { passwordExpired: true } : {}),
    ...(restriction === 'mfa-enrolment' ? { mfaEnrolmentRequired: true } : {}),
    ...(passwordExpiresAt ? { passwordExpiresAt: passwordExpiresAt.toISOString() } : {}),
  };
}
