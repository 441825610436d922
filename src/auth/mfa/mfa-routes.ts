import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditAction } from '../../audit/audit-log.js';
import type { AppContext } from '../../server/app-context.js';
import { passwordExpiryOf } from '../accounts/account-passwords.js';
import { refusedBecause } from '../auth-errors.js';
import { authPolicy } from '../policy/auth-policy.js';
import type { ActiveSession } from '../sessions/session-store.js';
import { reauthProperties, type ReauthInput } from '../access/reauthenticate.js';
import { reauthenticateUser } from '../sign-in/reauthenticate-user.js';
import { signedInAnswer } from '../sign-in/sign-in-answer.js';
import { confirmTotpEnrolment, hasSecondFactor, removeTotp, replaceRecoveryCodes, startTotpEnrolment } from './account-mfa.js';

const reauthBody = {
  type: 'object',
  additionalProperties: false,
  // The password and one second factor (a code or a passkey assertion); nothing within a few minutes of the last re-authentication: access/reauthenticate.ts.
  properties: reauthProperties,
} as const;

/**
 * The user's own second factors: enrol an authenticator app (two steps: secret, then a code from
 * it), regenerate recovery codes, and — where the policy leaves MFA optional — turn it off.
 * Every change asks for the password (and the current code) again.
 */
export async function mfaRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const security = (request: FastifyRequest, session: ActiveSession, action: AuditAction, outcome: 'success' | 'denied' | 'failed', detail?: Record<string, unknown>) =>
    ctx.audit.record({ actor: `account:${session.account.id}`, action, outcome, source: request.ip, requestId: request.id, ...(session.account.fhirRef?.startsWith('Patient/') ? { patient: session.account.fhirRef } : {}), ...(detail ? { detail } : {}) });
  const requireSession = (request: FastifyRequest): ActiveSession => {
    if (!request.session) throw refusedBecause('forbidden', 'only a signed-in user manages their own second factors');
    return request.session;
  };
  const reauthenticated = async (request: FastifyRequest, session: ActiveSession, action: AuditAction) => {
    const body = request.body as ReauthInput;
    if (await reauthenticateUser(ctx, session, body, { source: request.ip, requestId: request.id }, 'mfa-change')) return;
    await security(request, session, action, 'denied', { refused: 'reauthentication-failed' });
    throw refusedBecause('reauthentication-failed', 're-authentication failed: give your password and, if you use an authenticator app, a new code from it');
  };

  // What the security page shows: which factors the account has and whether the policy requires one. Counts only, never a secret.
  app.get('/api/auth/mfa', { config: { allowedWhile: ['mfa-enrolment'] } }, async (request, reply) => {
    const session = requireSession(request);
    const db = ctx.store.db;
    const account = await db.selectFrom('account').select('totp_secret_sealed').where('id', '=', session.account.id).executeTakeFirstOrThrow();
    const passkeys = await db.selectFrom('passkey_credential').select((eb) => eb.fn.countAll<number>().as('n')).where('account_id', '=', session.account.id).executeTakeFirst();
    const codes = await db.selectFrom('recovery_code').select((eb) => eb.fn.countAll<number>().as('n')).where('account_id', '=', session.account.id).where('used_at', 'is', null).executeTakeFirst();
    const policy = await authPolicy(db).current();
    return reply.header('Cache-Control', 'no-store').send({
      totp: account.totp_secret_sealed !== null,
      passkeys: Number(passkeys?.n ?? 0),
      recoveryCodesLeft: Number(codes?.n ?? 0),
      required: policy.mfaRequired[session.account.role],
    });
  });

  app.post('/api/auth/mfa/totp/enrol', { config: { allowedWhile: ['mfa-enrolment'] }, bodyLimit: 4096, schema: { body: reauthBody } }, async (request) => {
    const session = requireSession(request);
    await reauthenticated(request, session, 'mfa-enrolled');
    return startTotpEnrolment(ctx.store.db, ctx.keyRing, session.account);
  });

  app.post(
    '/api/auth/mfa/totp/confirm',
    {
      config: { allowedWhile: ['mfa-enrolment'] },
      bodyLimit: 1024,
      schema: { body: { type: 'object', additionalProperties: false, required: ['code'], properties: { code: { type: 'string', minLength: 1, maxLength: 32 } } } },
    },
    async (request, reply) => {
      const session = requireSession(request);
      const confirmed = await confirmTotpEnrolment(ctx.store.db, ctx.keyRing, session.account.id, (request.body as { code: string }).code);
      if (!confirmed) {
        await security(request, session, 'mfa-enrolled', 'failed', { method: 'totp' });
        throw refusedBecause('invalid-code', 'that code does not match: start the enrolment again if the QR code is no longer on screen', 400);
      }
      await security(request, session, 'mfa-enrolled', 'success', { method: 'totp' });
      return { ...(await replaceSessionsAfterMfaChange(ctx, request, reply, session)), recoveryCodes: confirmed.recoveryCodes };
    },
  );

  app.post('/api/auth/mfa/totp/disable', { bodyLimit: 4096, schema: { body: reauthBody } }, async (request, reply) => {
    const session = requireSession(request);
    const policy = await authPolicy(ctx.store.db).current();
    if (policy.mfaRequired[session.account.role]) throw refusedBecause('mfa-required-by-policy', 'the policy of this service requires a second factor for your account');
    await reauthenticated(request, session, 'mfa-disabled');
    await removeTotp(ctx.store.db, session.account.id);
    await security(request, session, 'mfa-disabled', 'success', { method: 'totp' });
    return replaceSessionsAfterMfaChange(ctx, request, reply, session);
  });

  app.post('/api/auth/mfa/recovery-codes', { bodyLimit: 4096, schema: { body: reauthBody } }, async (request) => {
    const session = requireSession(request);
    await reauthenticated(request, session, 'recovery-codes-generated');
    if (!(await hasSecondFactor(ctx.store.db, session.account.id))) throw refusedBecause('no-second-factor', 'set up an authenticator app or a passkey first: recovery codes stand in for one', 409);
    const codes = await replaceRecoveryCodes(ctx.store.db, session.account.id);
    await security(request, session, 'recovery-codes-generated', 'success', { count: codes.length });
    return { recoveryCodes: codes };
  });
}

/**
 * After a change of second factor every session of the account ends and the caller gets a new one:
 * full, or still restricted to a password change if that is due.
 */
export async function replaceSessionsAfterMfaChange(ctx: AppContext, request: FastifyRequest, reply: FastifyReply, session: ActiveSession): Promise<Record<string, unknown>> {
  const account = await ctx.store.db.selectFrom('account').select(['role', 'password_changed_at', 'created']).where('id', '=', session.account.id).executeTakeFirstOrThrow();
  const expiry = await passwordExpiryOf(ctx.store.db, account);
  const userAgent = request.headers['user-agent'];
  const restriction = expiry.expired ? 'password-expired' : null;
  // A re-authentication made for this change still covers the next one in the new session (access/reauthenticate.ts).
  const { session: fresh } = await ctx.sessions.replaceAll(session.account, { source: request.ip, ...(userAgent ? { userAgent } : {}) }, new Date(), restriction, session.reauthenticatedAt);
  return signedInAnswer(reply, { account: session.account, ...fresh, restriction, ...(expiry.expiresAt && (expiry.warn || expiry.expired) ? { passwordExpiresAt: expiry.expiresAt } : {}) });
}
