import type { FastifyInstance, FastifyRequest } from 'fastify';
import { forbidden, notFound, unauthorized } from '../records/fhir/outcomes.js';
import type { AppContext } from '../server/app-context.js';
import { passwordExpiryOf, setAccountPassword } from './accounts/account-passwords.js';
import { recentReauthUntil } from './access/reauthenticate.js';
import { relyingParty, signInOptions } from './passkeys/passkeys.js';
import { authPolicy } from './policy/auth-policy.js';
import { effectiveClinicTimeZone } from './policy/clinic-time-zone.js';
import { clearSessionCookie } from './sessions/session-cookie.js';
import { SESSION_COOKIE, type ActiveSession } from './sessions/session-store.js';
import { restrictionFields, signedInAnswer } from './sign-in/sign-in-answer.js';

const password = { type: 'string', minLength: 1, maxLength: 1024 } as const;

/** Sign-in, sign-out, the password change and the user's own sessions. */
export async function authRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const rp = relyingParty(ctx.config.publicUrl);
  const origin = (request: FastifyRequest) => {
    const userAgent = request.headers['user-agent'];
    return { source: request.ip, requestId: request.id, ...(userAgent ? { userAgent } : {}) };
  };
  const security = (request: FastifyRequest, session: ActiveSession, entry: { action: 'sign-out' | 'sessions-ended' | 'password-changed' | 'password-change-refused'; outcome: 'success' | 'failed' | 'denied'; detail?: Record<string, unknown> }) =>
    ctx.audit.record({ actor: `account:${session.account.id}`, source: request.ip, requestId: request.id, ...(session.account.fhirRef?.startsWith('Patient/') ? { patient: session.account.fhirRef } : {}), ...entry });

  app.post(
    '/api/auth/sign-in',
    {
      config: { public: true },
      bodyLimit: 4096,
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['email', 'password'],
          properties: {
            email: { type: 'string', minLength: 3, maxLength: 254 },
            password,
            code: { type: 'string', minLength: 1, maxLength: 64 },
          },
        },
      },
    },
    async (request, reply) => {
      const body = request.body as { email: string; password: string; code?: string };
      const result = await ctx.signIn.signIn(body, origin(request));
      switch (result.kind) {
        case 'signed-in':
          return signedInAnswer(reply, result);
        case 'mfa-required': {
          // Passkey options only now, after the right password: the challenge stands for that password.
          const passkey = result.methods.includes('passkey') ? await signInOptions(ctx.store.db, rp, result.accountId) : undefined;
          return reply.code(401).send({ error: 'mfa-required', message: 'enter the code from your authenticator app or a recovery code, or use your passkey', methods: result.methods, ...(passkey ? { passkeyOptions: passkey } : {}) });
        }
        case 'throttled':
          reply.header('Retry-After', String(result.retryAfterSeconds));
          return reply.code(429).send({ error: 'throttled', message: 'too many failed sign-ins from here; wait and try again' });
        case 'refused':
          return reply.code(401).send({ error: 'sign-in-failed', message: 'sign-in failed: check your email, password and code; after repeated failures sign-in pauses for a while' });
      }
    },
  );

  app.post('/api/auth/sign-out', { config: { allowedWhile: ['password-expired', 'mfa-enrolment'] } }, async (request, reply) => {
    const token = request.cookies[SESSION_COOKIE];
    if (token) await ctx.sessions.end(token);
    if (request.session) await security(request, request.session, { action: 'sign-out', outcome: 'success' });
    clearSessionCookie(reply);
    return reply.code(204).send();
  });

  app.get('/api/auth/session', { config: { allowedWhile: ['password-expired', 'mfa-enrolment'] } }, async (request) => {
    const session = request.session;
    if (!session) throw forbidden('this credential is not a user session');
    const account = await ctx.store.db.selectFrom('account').select(['role', 'password_changed_at', 'created']).where('id', '=', session.account.id).executeTakeFirstOrThrow();
    const expiry = await passwordExpiryOf(ctx.store.db, account);
    const reauthUntil = recentReauthUntil(session);
    return {
      account: session.account,
      csrfToken: session.csrfToken,
      sessionId: session.id,
      // Until when a change of the user's own security settings needs no password again (access/reauthenticate.ts).
      ...(reauthUntil ? { reauthenticatedUntil: reauthUntil.toISOString() } : {}),
      // Every time the app shows is in the clinic's zone, whatever the device's.
      clinic: { timeZone: effectiveClinicTimeZone(await authPolicy(ctx.store.db).current(), ctx.config.clinicTimeZone) },
      // Whether links and invitations can be e-mailed from here (TELESALUD_SMTP_URL); nothing more about the relay.
      emailEnabled: ctx.notifications !== undefined,
      ...restrictionFields(session.restriction, expiry.expiresAt && (expiry.warn || expiry.expired) ? expiry.expiresAt : null),
    };
  });

  app.post(
    '/api/auth/password',
    {
      config: { allowedWhile: ['password-expired'] },
      bodyLimit: 8192,
      schema: { body: { type: 'object', additionalProperties: false, required: ['currentPassword', 'newPassword'], properties: { currentPassword: password, newPassword: password } } },
    },
    async (request, reply) => {
      const session = request.session;
      if (!session) throw forbidden('only a signed-in user changes their password');
      const body = request.body as { currentPassword: string; newPassword: string };
      if (!(await ctx.signIn.confirmPassword(session.account.id, body.currentPassword, origin(request)))) {
        await security(request, session, { action: 'password-change-refused', outcome: 'denied', detail: { reason: 'wrong-current-password' } });
        throw forbidden('the current password is not right');
      }
      const now = new Date();
      const check = await setAccountPassword(ctx.store.db, session.account.id, body.newPassword, now);
      if (!check.ok) {
        await security(request, session, { action: 'password-change-refused', outcome: 'failed', detail: { problems: check.problems.map((p) => p.code) } });
        return reply.code(400).send({ error: 'weak-password', message: 'choose another password: this one is not accepted', problems: check.problems, feedback: check.feedback });
      }
      // Every session ends, this one too: it is replaced by a new one, so nothing issued before the change still works.
      const { session: fresh, ended } = await ctx.sessions.replaceAll(session.account, origin(request), now);
      await security(request, session, { action: 'password-changed', outcome: 'success', detail: { sessionsEnded: ended } });
      return signedInAnswer(reply, { account: session.account, ...fresh, restriction: null });
    },
  );

  app.get('/api/auth/sessions', async (request) => {
    const session = request.session;
    if (!session) throw forbidden('this credential is not a user session');
    const sessions = await ctx.sessions.list(session.account.id);
    return { sessions: sessions.map((s) => ({ ...s, current: s.id === session.id })) };
  });

  app.delete('/api/auth/sessions/:id', { schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9a-f]{16}$' } }, required: ['id'] } } }, async (request, reply) => {
    const session = request.session;
    if (!session) throw unauthorized('sign in first');
    const { id } = request.params as { id: string };
    if (!(await ctx.sessions.endById(session.account.id, id))) throw notFound('no such session');
    await security(request, session, { action: 'sessions-ended', outcome: 'success', detail: { session: id } });
    return reply.code(204).send();
  });
}

