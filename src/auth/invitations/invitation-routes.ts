import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Actor } from '../actor.js';
import { SYSTEM_ACTOR } from '../actor.js';
import { personalInputs } from '../accounts/account-passwords.js';
import { AccountError, createAccount } from '../accounts/account-service.js';
import { checkPassword } from '../passwords/index.js';
import { StrengthCheckBudget } from '../passwords/strength-check-budget.js';
import { InMemoryRateLimiter } from '../../edge/rate-limiter.js';
import { refusedBecause } from '../auth-errors.js';
import { pendingTotpEnrolment } from '../mfa/account-mfa.js';
import { authPolicy } from '../policy/auth-policy.js';
import { ROLES, type Role } from '../roles.js';
import { signedInAnswer } from '../sign-in/sign-in-answer.js';
import { badRequest, conflict, notFound } from '../../records/fhir/outcomes.js';
import { Repository } from '../../records/repository.js';
import type { AppContext } from '../../server/app-context.js';
import { inviterOf, type Inviter } from './inviter.js';
import { preferredLanguage } from '../../notifications/mail-recipients.js';
import { MAIL_LANGUAGES, type MailLanguage } from '../../notifications/mail-templates.js';
import { claimInvitation, createInvitation, INVITATION_DAYS, INVITATION_MAX_DAYS, markInvitationAccepted, pendingInvitations, releaseInvitation, revokeInvitation, usableInvitation } from './invitations.js';

const uuid = { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' } as const;
const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,189}\.[^\s@]{2,63}$/;
/** Same answer for an unknown, used, revoked and expired token: the link says nothing about why. */
const INVALID = { error: 'invitation-invalid', message: 'this invitation link is not valid: it may have been used already or have expired; ask for a new one' };

/**
 * Onboarding by invitation: a clinician or reception invites a patient (an admin may too, and invites staff);
 * the invitee opens the link, sets a password and, where the policy requires it, enrols a second
 * factor before the account can do anything else.
 */
/** What the password check and the acceptance both take: the invitation's token and the chosen password. */
const TOKEN_AND_PASSWORD = {
  type: 'object',
  additionalProperties: false,
  required: ['token', 'password'],
  properties: { token: { type: 'string', minLength: 1, maxLength: 128 }, password: { type: 'string', minLength: 1, maxLength: 1024 } },
} as const;

export async function invitationRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const db = ctx.store.db;

  app.post(
    '/api/invitations',
    {
      bodyLimit: 4096,
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['email'],
          properties: {
            email: { type: 'string', minLength: 3, maxLength: 254 },
            name: { type: 'string', minLength: 1, maxLength: 200 },
            patientId: uuid,
            role: { type: 'string', enum: [...ROLES] },
            expiresInDays: { type: 'integer', minimum: 1, maximum: INVITATION_MAX_DAYS },
            // The e-mail's language when the inviter knows it; else the patient's record, else the clinic's default.
            language: { type: 'string', enum: [...MAIL_LANGUAGES] },
          },
        },
      },
    },
    async (request, reply) => {
      const body = request.body as { email: string; name?: string; patientId?: string; role?: Role; expiresInDays?: number; language?: MailLanguage };
      const actor = request.actor!;
      const role = body.role ?? 'patient';
      const kind = actor.scope.kind;
      if (role === 'patient' ? !['clinician', 'reception', 'admin', 'full'].includes(kind) : !['admin', 'full'].includes(kind)) {
        throw refusedBecause('forbidden', role === 'patient' ? 'clinicians, reception and admins invite patients' : 'only an admin invites staff');
      }
      const email = body.email.trim().toLowerCase();
      if (!EMAIL.test(email)) throw badRequest('this is not an email address', 'email');
      const name = body.name?.trim() || null;

      let fhirRef: string | null = null;
      if (role === 'patient') {
        if (body.patientId) {
          // Through the inviter's own view of the record: a Patient they can't see is "not found" (and audited).
          await request.records.read('Patient', body.patientId);
          fhirRef = `Patient/${body.patientId}`;
          if (await db.selectFrom('account').select('id').where('fhir_ref', '=', fhirRef).executeTakeFirst()) throw conflict('this patient already has an account');
        } else {
          if (kind === 'admin') throw badRequest('admins do not register patients: name the Patient to invite (patientId)', 'patientId');
          // A clinician registering a new patient is put in their care by the access policy; reception registers for the clinic.
          const patient = await request.records.create({ resourceType: 'Patient', active: true, ...(name ? { name: [{ text: name }] } : {}), telecom: [{ system: 'email', value: email }] });
          fhirRef = `Patient/${patient.id}`;
        }
      } else if (body.patientId) throw badRequest('a staff invitation names no patient', 'patientId');

      // Whether the email already has an account is not said here: the invitation is made either way.
      const invitationInput = { email, role, displayName: name, fhirRef, invitedBy: actor.ref, days: body.expiresInDays ?? INVITATION_DAYS };
      const mail = ctx.notifications;
      let emailed: string | undefined;
      let invitation: Awaited<ReturnType<typeof createInvitation>>;
      if (mail) {
        // With e-mail on, the invitation and its message commit together: no link without its e-mail.
        const language = body.language ?? (fhirRef ? await patientLanguage(db, fhirRef) : undefined) ?? mail.defaultLanguage;
        invitation = await db.transaction().execute(async (tx) => {
          const created = await createInvitation(tx, invitationInput);
          const link = `${ctx.config.publicUrl}/invite#${created.token}`;
          emailed = await mail.queue(tx, { template: role === 'patient' ? 'patient-invitation' : 'staff-invitation', to: email, language, link, expiresAt: created.expiresAt.toISOString(), ...(fhirRef?.startsWith('Patient/') ? { patient: fhirRef } : {}) });
          return created;
        });
        mail.sendSoon();
      } else invitation = await createInvitation(db, invitationInput);
      await ctx.audit.record({
        actor: actor.ref,
        action: 'invitation-created',
        outcome: 'success',
        source: request.ip,
        requestId: request.id,
        ...(fhirRef?.startsWith('Patient/') ? { patient: fhirRef, resourceType: 'Patient', resourceId: fhirRef.slice('Patient/'.length) } : {}),
        detail: { invitation: invitation.id, role, expires: invitation.expiresAt.toISOString(), ...(emailed ? { emailMessage: emailed } : {}) },
      });
      // The token travels in the fragment: browsers send it neither in requests nor in Referer.
      // `emailed`: the link is on its way to the invitee too (TELESALUD_SMTP_URL); else the inviter passes it on.
      return reply.code(201).send({ id: invitation.id, url: `${ctx.config.publicUrl}/invite#${invitation.token}`, expiresAt: invitation.expiresAt.toISOString(), emailed: emailed !== undefined });
    },
  );

  /**
   * Who may see and revoke which pending invitations: an admin (and the bootstrap token) all of
   * them, a clinician or a receptionist those they sent; nobody else any. The same rule as inviting.
   */
  const invitationsInReach = (actor: Actor): { invitedBy?: string } => {
    const kind = actor.scope.kind;
    if (kind === 'admin' || kind === 'full') return {};
    if (kind === 'clinician' || kind === 'reception') return { invitedBy: actor.ref };
    throw refusedBecause('forbidden', 'clinicians, reception and admins manage the invitations they may send');
  };

  app.get(
    '/api/invitations',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'string', pattern: '^[0-9]{1,3}$' } } } } },
    async (request, reply) => {
      const actor = request.actor!;
      const reach = invitationsInReach(actor);
      const limit = Math.min(Math.max(Number((request.query as { limit?: string }).limit ?? 200), 1), 500);
      const pending = await pendingInvitations(db, { ...reach, limit });
      const inviters = new Map<string, Inviter>();
      for (const ref of new Set(pending.map((p) => p.invitedBy))) inviters.set(ref, await inviterOf(db, ref));
      // A patient's invitation shows who they are (name, email): one audit entry naming every patient shown.
      const patients = [...new Set(pending.flatMap((p) => (p.patientRef ? [p.patientRef] : [])))];
      await ctx.audit.record({
        actor: actor.ref,
        action: 'search',
        outcome: 'success',
        source: request.ip,
        requestId: request.id,
        resourceType: 'Invitation',
        ...(patients.length > 0 ? { patients } : {}),
        detail: { list: 'pending-invitations', results: pending.length, ids: pending.map((p) => p.id) },
      });
      // Never the token nor its digest: a listed invitation can be revoked, not used.
      return reply.header('Cache-Control', 'no-store').send({
        invitations: pending.map((p) => ({
          id: p.id,
          email: p.email,
          name: p.displayName,
          role: p.role,
          patientRef: p.patientRef,
          invitedBy: { ref: p.invitedBy, ...inviters.get(p.invitedBy)! },
          created: p.created.toISOString(),
          expiresAt: p.expires.toISOString(),
        })),
      });
    },
  );

  app.post('/api/invitations/:id/revoke', { bodyLimit: 1024, schema: { params: { type: 'object', required: ['id'], additionalProperties: false, properties: { id: uuid } } } }, async (request) => {
    const actor = request.actor!;
    const reach = invitationsInReach(actor);
    const { id } = request.params as { id: string };
    const outcome = await revokeInvitation(db, id, actor.ref, reach.invitedBy);
    if (outcome.kind === 'not-found') throw notFound('no such invitation among those you sent');
    const invitation = outcome.invitation;
    const patient = invitation.fhir_ref?.startsWith('Patient/') ? { patient: invitation.fhir_ref } : {};
    if (outcome.kind === 'not-pending') {
      await ctx.audit.record({ actor: actor.ref, action: 'invitation-revoked', outcome: 'failed', source: request.ip, requestId: request.id, resourceType: 'Invitation', resourceId: id, ...patient, detail: { invitation: id, reason: 'not-pending' } });
      throw refusedBecause('invitation-not-pending', 'this invitation is no longer pending: it was accepted, has expired or was revoked already', 409);
    }
    await ctx.audit.record({ actor: actor.ref, action: 'invitation-revoked', outcome: 'success', source: request.ip, requestId: request.id, resourceType: 'Invitation', resourceId: id, ...patient, detail: { invitation: id, role: invitation.role, invitedBy: invitation.invited_by } });
    return { id, revokedAt: new Date(invitation.revoked_at!).toISOString() };
  });

  /** Public endpoints that take a token share the sign-in's per-source budget. */
  const throttled = async (request: FastifyRequest, reply: FastifyReply): Promise<boolean> => {
    const wait = await ctx.signIn.throttleWait(request.ip);
    if (wait <= 0) return false;
    reply.header('Retry-After', String(wait));
    await reply.code(429).send({ error: 'throttled', message: 'too many attempts from here; wait and try again' });
    return true;
  };
  const invalid = async (request: FastifyRequest, reply: FastifyReply) => {
    await ctx.signIn.countSourceFailureOf(request.ip);
    await ctx.audit.record({ actor: 'anonymous', action: 'invitation-accepted', outcome: 'denied', source: request.ip, requestId: request.id, detail: { reason: 'invalid-token' } });
    return reply.code(404).send(INVALID);
  };

  app.get(
    '/api/invitations/:token/preview',
    { config: { public: true }, schema: { params: { type: 'object', required: ['token'], properties: { token: { type: 'string', minLength: 1, maxLength: 128 } } } } },
    async (request, reply) => {
      if (await throttled(request, reply)) return reply;
      const invitation = await usableInvitation(db, (request.params as { token: string }).token);
      if (!invitation) return invalid(request, reply);
      const policy = await authPolicy(db).current();
      // Nothing about the invitee or their record: only who invites them (so they can trust the
      // link) and what the page needs to show the right form and explain the password rules.
      return {
        valid: true,
        // Patient or staff: the page words its welcome for each.
        role: invitation.role,
        mfaRequired: policy.mfaRequired[invitation.role as Role],
        expiresAt: new Date(invitation.expires).toISOString(),
        invitedBy: await inviterOf(db, invitation.invited_by),
        passwordPolicy: { minLength: policy.password.minLength, maxLength: policy.password.maxLength, minScore: policy.password.minScore },
      };
    },
  );

  // Live strength feedback while the invitee types: the same check accept makes (their name and
  // email count against them), answered only for a usable token and under the sign-in's budget.
  const checkBudget = new StrengthCheckBudget(ctx.rateLimiter ?? new InMemoryRateLimiter(), 'invitation');
  app.post(
    '/api/invitations/password-check',
    {
      config: { public: true },
      bodyLimit: 4096,
      schema: { body: TOKEN_AND_PASSWORD },
    },
    async (request, reply) => {
      if (await throttled(request, reply)) return reply;
      const body = request.body as { token: string; password: string };
      const invitation = await usableInvitation(db, body.token);
      if (!invitation) return invalid(request, reply);
      const wait = await checkBudget.take(invitation.id);
      if (wait > 0) {
        reply.header('Retry-After', String(wait));
        return reply.code(429).send({ error: 'throttled', message: 'too many checks of this password; wait a moment' });
      }
      const policy = await authPolicy(db).current();
      const check = await checkPassword(body.password, { policy: policy.password, userInputs: personalInputs(invitation.email, invitation.display_name ?? undefined), previousHashes: [] });
      // Not audited: nothing is read or changed, and the password itself is never recorded anywhere.
      return reply.header('Cache-Control', 'no-store').send({ ok: check.ok, score: check.score, problems: check.problems, feedback: check.feedback });
    },
  );

  app.post(
    '/api/invitations/accept',
    {
      config: { public: true },
      bodyLimit: 4096,
      schema: { body: TOKEN_AND_PASSWORD },
    },
    async (request, reply) => {
      if (await throttled(request, reply)) return reply;
      const body = request.body as { token: string; password: string };
      const invitation = await usableInvitation(db, body.token);
      if (!invitation || !(await claimInvitation(db, invitation.id))) return invalid(request, reply);
      const role = invitation.role as Role;
      const records = new Repository(db, ctx.audit, { ...SYSTEM_ACTOR, ref: `system:invitation:${invitation.id}` }, { requestId: request.id, source: request.ip });
      let account;
      try {
        account = await createAccount(db, records, ctx.keyRing, {
          email: invitation.email,
          role,
          ...(invitation.display_name ? { name: invitation.display_name } : {}),
          password: body.password,
          ...(invitation.fhir_ref ? { fhirRef: invitation.fhir_ref } : {}),
          totp: 'pending',
        });
      } catch (err) {
        await releaseInvitation(db, invitation.id);
        if (err instanceof AccountError) {
          await ctx.audit.record({ actor: 'anonymous', action: 'invitation-accepted', outcome: 'failed', source: request.ip, requestId: request.id, detail: { invitation: invitation.id, reason: err.code, ...(err.problems ? { problems: err.problems.map((p) => p.code) } : {}) } });
        }
        if (err instanceof AccountError && err.code === 'weak-password') return reply.code(400).send({ error: 'weak-password', message: 'choose another password: this one is not accepted', problems: err.problems ?? [] });
        if (err instanceof AccountError && err.code === 'exists') return reply.code(409).send({ error: 'already-registered', message: 'an account already exists for this invitation: sign in instead' });
        throw err;
      }
      await markInvitationAccepted(db, invitation.id, account.id);
      const policy = await authPolicy(db).current();
      const mfaRequired = policy.mfaRequired[role];
      const userAgent = request.headers['user-agent'];
      const session = await ctx.sessions.create({ id: account.id, role }, { source: request.ip, ...(userAgent ? { userAgent } : {}) }, new Date(), mfaRequired ? 'mfa-enrolment' : null);
      await ctx.audit.record({
        actor: `account:${account.id}`,
        action: 'invitation-accepted',
        outcome: 'success',
        source: request.ip,
        requestId: request.id,
        ...(invitation.fhir_ref?.startsWith('Patient/') ? { patient: invitation.fhir_ref } : {}),
        detail: { invitation: invitation.id, role },
      });
      const sessionAccount = { id: account.id, email: account.email, role, fhirRef: invitation.fhir_ref ?? (account.practitionerId ? `Practitioner/${account.practitionerId}` : null) };
      const enrolment = mfaRequired ? await pendingTotpEnrolment(db, ctx.keyRing, account) : undefined;
      return { ...signedInAnswer(reply, { account: sessionAccount, ...session, restriction: mfaRequired ? 'mfa-enrolment' : null }), ...(enrolment ? { mfaEnrolment: enrolment } : {}) };
    },
  );
}

/** The language the patient's record names (Patient.communication), read without an audit entry: only to choose the e-mail's words. */
async function patientLanguage(db: AppContext['store']['db'], patientRef: string): Promise<MailLanguage | undefined> {
  const row = await db.selectFrom('patient' as any).select('content').where('id', '=', patientRef.slice('Patient/'.length)).executeTakeFirst();
  return preferredLanguage((row as { content?: unknown } | undefined)?.content);
}
