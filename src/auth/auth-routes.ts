import type { FastifyInstance } from 'fastify';
import { forbidden, notFound, unauthorized } from '../records/fhir/outcomes.js';
import type { AppContext } from '../server/app-context.js';
import { SESSION_COOKIE } from './sessions/session-store.js';

const cookieOptions = (expires: Date) => ({ path: '/', httpOnly: true, secure: true, sameSite: 'strict' as const, expires });

/** Sign-in, sign-out and the user's own sessions. */
export async function authRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
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
            password: { type: 'string', minLength: 1, maxLength: 1024 },
            code: { type: 'string', minLength: 1, maxLength: 64 },
          },
        },
      },
    },
    async (request, reply) => {
      const body = request.body as { email: string; password: string; code?: string };
      const userAgent = request.headers['user-agent'];
      const result = await ctx.signIn.signIn(body, { source: request.ip, requestId: request.id, ...(userAgent ? { userAgent } : {}) });
      switch (result.kind) {
        case 'signed-in':
          reply.setCookie(SESSION_COOKIE, result.token, cookieOptions(result.expires));
          return { account: result.account, csrfToken: result.csrfToken };
        case 'mfa-required':
          return reply.code(401).send({ error: 'mfa-required', message: 'enter the code from your authenticator app or a recovery code' });
        case 'throttled':
          reply.header('Retry-After', String(result.retryAfterSeconds));
          return reply.code(429).send({ error: 'throttled', message: 'too many failed sign-ins from here; wait and try again' });
        case 'refused':
          return reply.code(401).send({ error: 'sign-in-failed', message: 'sign-in failed: check your email, password and code; after repeated failures sign-in pauses for a while' });
      }
    },
  );

  app.post('/api/auth/sign-out', async (request, reply) => {
    const token = request.cookies[SESSION_COOKIE];
    if (token) await ctx.sessions.end(token);
    reply.clearCookie(SESSION_COOKIE, { path: '/', secure: true, httpOnly: true, sameSite: 'strict' });
    return reply.code(204).send();
  });

  app.get('/api/auth/session', async (request) => {
    const session = request.session;
    if (!session) throw forbidden('this credential is not a user session');
    return { account: session.account, csrfToken: session.csrfToken, sessionId: session.id };
  });

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
    return reply.code(204).send();
  });
}
