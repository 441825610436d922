import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import type { FastifyReply } from 'fastify';
import type { FhirError } from '../../records/fhir/outcomes.js';
import type { AppContext } from '../../server/app-context.js';
import { refusedBecause } from '../auth-errors.js';
import { assertionJson } from '../passkeys/passkey-schemas.js';
import { relyingParty, verifyPasskeyReauth, type ReauthPurpose } from '../passkeys/passkeys.js';
import type { ActiveSession } from '../sessions/session-store.js';
import type { ReauthResult } from '../sign-in/sign-in-service.js';

export type { ReauthPurpose } from '../passkeys/passkeys.js';

/** What a sensitive request carries to re-authenticate: the password and at most one second factor. */
export interface ReauthInput {
  password: string;
  /** A code from the authenticator app or a recovery code. */
  code?: string | undefined;
  /** A passkey assertion answering POST /api/auth/reauth/passkey/options for this action. */
  passkey?: AuthenticationResponseJSON | undefined;
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
 */
export async function reauthenticate(ctx: AppContext, session: ActiveSession, purpose: ReauthPurpose, input: ReauthInput, origin: { source: string; requestId: string }): Promise<ReauthResult> {
  const assertion = input.passkey;
  const binding = { accountId: session.account.id, sessionId: session.id };
  return ctx.signIn.reauthenticate(
    session.account.id,
    purpose,
    {
      password: input.password,
      code: input.code,
      ...(assertion ? { passkey: () => verifyPasskeyReauth(ctx.store.db, relyingParty(ctx.config.publicUrl), assertion, binding, purpose) } : {}),
    },
    origin,
  );
}

/** The answer to a failed re-authentication: what to do next, never which part was wrong. A wait also goes in Retry-After. */
export function reauthRefusal(result: Exclude<ReauthResult, { ok: true }>, reply?: FastifyReply): FhirError {
  if (result.reason === 'throttled') reply?.header('Retry-After', String(result.retryAfterSeconds));
  switch (result.reason) {
    case 'enrol-second-factor':
      return refusedBecause('enrol-second-factor', 'enrol a second factor first (an authenticator app or a passkey, on your security page): this service requires one for your role');
    case 'throttled':
      return refusedBecause('throttled', `too many failed attempts: wait ${result.retryAfterSeconds} seconds and try again`, 429);
    case 'one-factor-only':
      return refusedBecause('invalid', 'give either a code or a passkey, not both', 400);
    case 'refused':
      return refusedBecause('reauthentication-failed', 're-authentication failed: give your password and a code from your authenticator app, a recovery code, or use your passkey');
  }
}
