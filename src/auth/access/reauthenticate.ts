import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import type { FastifyReply } from 'fastify';
import type { FhirError } from '../../records/fhir/outcomes.js';
import type { AppContext } from '../../server/app-context.js';
import { refusedBecause } from '../auth-errors.js';
import { assertionJson } from '../passkeys/passkey-schemas.js';
import { relyingParty, verifyPasskeyReauth, type ReauthPurpose } from '../passkeys/passkeys.js';
import { authPolicy } from '../policy/auth-policy.js';
import type { ActiveSession } from '../sessions/session-store.js';
import type { ReauthResult } from '../sign-in/sign-in-service.js';

export type { ReauthPurpose } from '../passkeys/passkeys.js';

/**
 * A re-authentication covers further changes of the user's own security settings (purpose
 * 'mfa-change': add a passkey, then regenerate recovery codes, then remove an old passkey) for
 * this long, in the same session, without asking again — what someone going through their
 * security page expects. Break-the-glass and an export always ask: each discloses health data on
 * its own account, and each proof is recorded with the disclosure.
 */
export const RECENT_REAUTH_SECONDS = 300;
const PURPOSES_COVERED_BY_RECENT: ReadonlySet<ReauthPurpose> = new Set(['mfa-change']);

/** What a sensitive request carries to re-authenticate: the password and at most one second factor; nothing, to rely on a recent re-authentication. */
export interface ReauthInput {
  password?: string | undefined;
  /** A code from the authenticator app or a recovery code. */
  code?: string | undefined;
  /** A passkey assertion answering POST /api/auth/reauth/passkey/options for this action. */
  passkey?: AuthenticationResponseJSON | undefined;
}

/**
 * The outcome of re-authentication: sign-in's own answers, plus a pass on a recent
 * re-authentication ('recent') and a request that gave no proof where one is needed.
 */
export type ReauthOutcome = ReauthResult | { ok: true; method: 'recent' } | { ok: false; reason: 'reauthentication-required' };

/** Until when this session's last re-authentication covers a request that gives no password; undefined when it does not. */
export function recentReauthUntil(session: Pick<ActiveSession, 'reauthenticatedAt'>, now = new Date()): Date | undefined {
  if (!session.reauthenticatedAt) return undefined;
  const until = new Date(session.reauthenticatedAt.getTime() + RECENT_REAUTH_SECONDS * 1000);
  return until.getTime() > now.getTime() ? until : undefined;
}

/** The body properties of a re-authentication, for the schema of every route that asks for one. */
export const reauthProperties = {
  password: { type: 'string', minLength: 1, maxLength: 1024 },
  code: { type: 'string', minLength: 1, maxLength: 64 },
  passkey: assertionJson,
} as const;

/**
 * Re-authentication for a sensitive action (break-the-glass, an export, a change of second
 * factors): the signed-in user proves again who they are with the password and one of their
 * enrolled second factors — a TOTP code, a recovery code or a passkey assertion whose challenge
 * was issued to this session for this action. The decisions (which factors, the policy, replay
 * guards, failure counting) are sign-in's own (SignInService.reauthenticate); no new session.
 *
 * A success is stamped on the session (sessions.reauthenticated_at); a request without a password
 * passes on that stamp alone, for purposes RECENT_REAUTH_SECONDS covers and while it is recent.
 */
export async function reauthenticate(ctx: AppContext, session: ActiveSession, purpose: ReauthPurpose, input: ReauthInput, origin: { source: string; requestId: string }, now = new Date()): Promise<ReauthOutcome> {
  if (input.password === undefined) {
    // A factor without the password proves nothing on its own: such a request is not a re-authentication.
    if (input.code === undefined && !input.passkey && PURPOSES_COVERED_BY_RECENT.has(purpose) && recentReauthUntil(session, now)) return { ok: true, method: 'recent' };
    return { ok: false, reason: 'reauthentication-required' };
  }
  const assertion = input.passkey;
  const binding = { accountId: session.account.id, sessionId: session.id };
  const result = await ctx.signIn.reauthenticate(
    session.account.id,
    purpose,
    {
      password: input.password,
      code: input.code,
      ...(assertion ? { passkey: () => verifyPasskeyReauth(ctx.store.db, relyingParty(ctx.config.publicUrl), assertion, binding, purpose) } : {}),
    },
    origin,
  );
  // The password alone counts for later changes only where it is all the policy asks of this role:
  // an account enrolling its first factor ('mfa-change' without one) proved less than a full re-authentication.
  if (result.ok && (result.method !== 'password' || !(await authPolicy(ctx.store.db).current()).mfaRequired[session.account.role])) {
    await ctx.sessions.markReauthenticated(session.account.id, session.id, now);
    session.reauthenticatedAt = now;
  }
  return result;
}

/** The answer to a failed re-authentication: what to do next, never which part was wrong. A wait also goes in Retry-After. */
export function reauthRefusal(result: Exclude<ReauthOutcome, { ok: true }>, reply?: FastifyReply): FhirError {
  if (result.reason === 'throttled') reply?.header('Retry-After', String(result.retryAfterSeconds));
  switch (result.reason) {
    case 'enrol-second-factor':
      return refusedBecause('enrol-second-factor', 'enrol a second factor first (an authenticator app or a passkey, on your security page): this service requires one for your role');
    case 'throttled':
      return refusedBecause('throttled', `too many failed attempts: wait ${result.retryAfterSeconds} seconds and try again`, 429);
    case 'one-factor-only':
      return refusedBecause('invalid', 'give either a code or a passkey, not both', 400);
    case 'reauthentication-required':
      return refusedBecause('reauthentication-required', 'confirm who you are: give your password and a code from your authenticator app, a recovery code, or use your passkey');
    case 'refused':
      return refusedBecause('reauthentication-failed', 're-authentication failed: give your password and a code from your authenticator app, a recovery code, or use your passkey');
  }
}
