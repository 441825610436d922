import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../server/app-context.js';
import { personalInputs } from '../accounts/account-passwords.js';
import { refusedBecause } from '../auth-errors.js';
import { authPolicy } from '../policy/auth-policy.js';
import { checkPassword } from './check-password.js';
import { StrengthCheckBudget } from './strength-check-budget.js';
import { InMemoryRateLimiter } from '../../edge/rate-limiter.js';

/**
 * Live feedback while a signed-in user types a new password (the portal's password change): the
 * same policy, strength and breached-list check the change makes, with the user's own name and
 * email counted against them. Reuse of an earlier password is left to the change itself (it costs
 * an argon2 verify per remembered password). Nothing is stored or audited: nothing is read or changed.
 */
export async function strengthRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const budget = new StrengthCheckBudget(ctx.rateLimiter ?? new InMemoryRateLimiter(), 'account');
  app.post(
    '/api/auth/password/check',
    {
      // A user whose password expired is choosing a new one right now.
      config: { allowedWhile: ['password-expired'] },
      bodyLimit: 4096,
      schema: { body: { type: 'object', additionalProperties: false, required: ['password'], properties: { password: { type: 'string', minLength: 1, maxLength: 1024 } } } },
    },
    async (request, reply) => {
      const session = request.session;
      if (!session) throw refusedBecause('forbidden', 'only a signed-in user checks a new password of their own');
      const wait = await budget.take(session.account.id);
      if (wait > 0) {
        reply.header('Retry-After', String(wait));
        return reply.code(429).send({ error: 'throttled', message: 'too many checks of this password; wait a moment' });
      }
      const account = await ctx.store.db.selectFrom('account').select(['email', 'display_name']).where('id', '=', session.account.id).executeTakeFirstOrThrow();
      const policy = (await authPolicy(ctx.store.db).current()).password;
      const check = await checkPassword((request.body as { password: string }).password, { policy, userInputs: personalInputs(account.email, account.display_name), previousHashes: [] });
      return reply.header('Cache-Control', 'no-store').send({ ok: check.ok, score: check.score, problems: check.problems, feedback: check.feedback, minLength: policy.minLength });
    },
  );
}
