import type { FastifyInstance, FastifyRequest } from 'fastify';
import { sql } from 'kysely';
import type { AuditAction } from '../../audit/audit-log.js';
import { conflict, notFound } from '../../records/fhir/outcomes.js';
import type { AppContext } from '../../server/app-context.js';
import { refusedBecause } from '../auth-errors.js';
import { resetAllFactors } from '../mfa/account-mfa.js';
import { authPolicy, authPolicyJson, AuthPolicyError, type AuthPolicy } from '../policy/auth-policy.js';
import { ROLES } from '../roles.js';

const uuidParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' } } } as const;

/**
 * The admin console's side of accounts: find accounts, unlock, disable and enable them, reset
 * their second factors, end their sessions; read and change the authentication policy. Admins
 * (and the bootstrap token) only. Every action is a security event, and every action on an
 * account ends that account's sessions.
 */
export async function accountAdminRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const db = ctx.store.db;
  const requireAdmin = (request: FastifyRequest) => {
    const kind = request.actor?.scope.kind;
    if (kind !== 'admin' && kind !== 'full') throw refusedBecause('forbidden', 'only an admin manages accounts and the authentication policy');
    return request.actor!;
  };

  app.get(
    '/api/admin/accounts',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { role: { type: 'string', enum: [...ROLES] }, q: { type: 'string', minLength: 1, maxLength: 100 }, status: { type: 'string', enum: ['active', 'disabled'] }, limit: { type: 'string', pattern: '^[0-9]{1,3}$' } },
        },
      },
    },
    async (request) => {
      requireAdmin(request);
      const query = request.query as { role?: string; q?: string; status?: string; limit?: string };
      const limit = Math.min(Math.max(Number(query.limit ?? 50), 1), 200);
      let select = db
        .selectFrom('account')
        .select((eb) => [
          'account.id',
          'account.email',
          'account.role',
          'account.display_name',
          'account.fhir_ref',
          'account.status',
          'account.created',
          'account.password_changed_at',
          'account.failed_sign_ins',
          'account.locked_until',
          sql<boolean>`account.totp_secret_sealed is not null`.as('totp'),
          eb.selectFrom('passkey_credential').whereRef('passkey_credential.account_id', '=', 'account.id').select((e) => e.fn.countAll<number>().as('n')).as('passkeys'),
          eb.selectFrom('recovery_code').whereRef('recovery_code.account_id', '=', 'account.id').where('recovery_code.used_at', 'is', null).select((e) => e.fn.countAll<number>().as('n')).as('recovery_codes'),
          eb.selectFrom('session').whereRef('session.account_id', '=', 'account.id').select((e) => e.fn.countAll<number>().as('n')).as('sessions'),
        ]);
      if (query.role) select = select.where('account.role', '=', query.role);
      if (query.status) select = select.where('account.status', '=', query.status);
      if (query.q) {
        const pattern = `%${query.q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
        select = select.where((eb) => eb.or([eb('account.email', 'like', pattern), eb(eb.fn('lower', ['account.display_name']), 'like', pattern)]));
      }
      const rows = await select.orderBy('account.email').limit(limit).execute();
      const now = Date.now();
      // Never hashes, secrets or codes: only whether each factor is there.
      return {
        accounts: rows.map((r) => ({
          id: r.id,
          email: r.email,
          role: r.role,
          name: r.display_name,
          fhirRef: r.fhir_ref,
          status: r.status,
          created: new Date(r.created).toISOString(),
          passwordChangedAt: r.password_changed_at ? new Date(r.password_changed_at).toISOString() : null,
          failedSignIns: r.failed_sign_ins,
          lockedUntil: r.locked_until && new Date(r.locked_until).getTime() > now ? new Date(r.locked_until).toISOString() : null,
          mfa: { totp: Boolean(r.totp), passkeys: Number(r.passkeys ?? 0), recoveryCodesLeft: Number(r.recovery_codes ?? 0) },
          sessions: Number(r.sessions ?? 0),
        })),
      };
    },
  );

  const accountAction = (path: string, action: AuditAction, apply: (accountId: string, request: FastifyRequest) => Promise<void>) =>
    app.post(`/api/admin/accounts/:id/${path}`, { schema: { params: uuidParams } }, async (request) => {
      const actor = requireAdmin(request);
      const { id } = request.params as { id: string };
      const account = await db.selectFrom('account').select(['id', 'fhir_ref']).where('id', '=', id).executeTakeFirst();
      if (!account) throw notFound('no such account');
      await apply(id, request);
      const sessionsEnded = await ctx.sessions.endAll(id);
      await ctx.audit.record({ actor: actor.ref, action, outcome: 'success', source: request.ip, requestId: request.id, resourceType: 'Account', resourceId: id, ...(account.fhir_ref?.startsWith('Patient/') ? { patient: account.fhir_ref } : {}), detail: { sessionsEnded } });
      return { id, sessionsEnded };
    });

  const notSelf = (accountId: string, request: FastifyRequest) => {
    if (request.session?.account.id === accountId) throw conflict('ask another admin: you cannot do this to your own account');
  };

  accountAction('unlock', 'account-unlocked', async (id) => {
    await db.updateTable('account').set({ failed_sign_ins: 0, last_failed_at: null, locked_until: null }).where('id', '=', id).execute();
  });
  accountAction('disable', 'account-disabled', async (id, request) => {
    notSelf(id, request);
    await db.updateTable('account').set({ status: 'disabled' }).where('id', '=', id).execute();
  });
  accountAction('enable', 'account-enabled', async (id) => {
    await db.updateTable('account').set({ status: 'active' }).where('id', '=', id).execute();
  });
  accountAction('reset-mfa', 'mfa-reset', async (id, request) => {
    notSelf(id, request);
    await resetAllFactors(db, id);
  });
  accountAction('end-sessions', 'sessions-ended', async () => undefined);

  // The installation's default zone rides along so the page can say what "default" means here.
  const policyAnswer = (policy: AuthPolicy) => ({ ...authPolicyJson(policy), installationDefaults: { clinicTimeZone: ctx.config.clinicTimeZone } });

  app.get('/api/admin/policy', async (request) => {
    requireAdmin(request);
    return policyAnswer(await authPolicy(db).current());
  });

  app.put('/api/admin/policy', { bodyLimit: 32768, schema: { body: { type: 'object' } } }, async (request, reply) => {
    const actor = requireAdmin(request);
    let result;
    try {
      result = await authPolicy(db).update(request.body, actor.ref);
    } catch (err) {
      if (!(err instanceof AuthPolicyError)) throw err;
      await ctx.audit.record({ actor: actor.ref, action: 'policy-changed', outcome: 'failed', source: request.ip, requestId: request.id, detail: { fields: err.issues.map((i) => i.field) } });
      return reply.code(400).send({ error: 'invalid-policy', message: `the policy was not changed: ${err.message}`, issues: err.issues });
    }
    await ctx.audit.record({ actor: actor.ref, action: 'policy-changed', outcome: 'success', source: request.ip, requestId: request.id, detail: { changed: result.changed } });
    return policyAnswer(result.policy);
  });
}
