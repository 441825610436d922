import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { AppContext } from '../../server/app-context.js';
import { refusedBecause } from '../auth-errors.js';
import { replaceSessionsAfterMfaChange } from '../mfa/mfa-routes.js';
import { reauthProperties, type ReauthInput } from '../access/reauthenticate.js';
import { reauthenticateUser } from '../sign-in/reauthenticate-user.js';
import { signedInAnswer } from '../sign-in/sign-in-answer.js';
import { assertionJson, b64url, credentialJson } from './passkey-schemas.js';
import { authPolicy } from '../policy/auth-policy.js';
import { listPasskeys, reauthOptions, REAUTH_PURPOSES, registerPasskey, registrationOptions, relyingParty, removePasskey, verifyPasskeySignIn, type ReauthPurpose } from './passkeys.js';

/**
 * Passkeys: a signed-in user registers one (after proving who they are again); at sign-in a
 * passkey assertion stands in for the authenticator-app code.
 */
export async function passkeyRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const rp = relyingParty(ctx.config.publicUrl);
  const origin = (request: FastifyRequest) => {
    const userAgent = request.headers['user-agent'];
    return { source: request.ip, requestId: request.id, ...(userAgent ? { userAgent } : {}) };
  };

  app.post(
    '/api/auth/passkeys/register/options',
    {
      config: { allowedWhile: ['mfa-enrolment'] },
      bodyLimit: 4096,
      schema: { body: { type: 'object', additionalProperties: false, properties: reauthProperties } },
    },
    async (request) => {
      const session = request.session;
      if (!session) throw refusedBecause('forbidden', 'only a signed-in user registers a passkey');
      if (!(await reauthenticateUser(ctx, session, request.body as ReauthInput, { source: request.ip, requestId: request.id }, 'mfa-change'))) {
        await ctx.audit.record({ actor: `account:${session.account.id}`, action: 'passkey-registered', outcome: 'denied', source: request.ip, requestId: request.id, detail: { refused: 'reauthentication-failed' } });
        throw refusedBecause('reauthentication-failed', 're-authentication failed: give your password and, if you use an authenticator app, a new code from it');
      }
      return registrationOptions(ctx.store.db, rp, session.account);
    },
  );

  app.post(
    '/api/auth/passkeys/register/verify',
    {
      config: { allowedWhile: ['mfa-enrolment'] },
      bodyLimit: 16384,
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['response'],
          properties: {
            response: credentialJson({ clientDataJSON: b64url, attestationObject: b64url, transports: { type: 'array', maxItems: 10, items: { type: 'string', maxLength: 20 } } }, ['clientDataJSON', 'attestationObject']),
            label: { type: 'string', minLength: 1, maxLength: 80 },
          },
        },
      },
    },
    async (request, reply) => {
      const session = request.session;
      if (!session) throw refusedBecause('forbidden', 'only a signed-in user registers a passkey');
      const body = request.body as { response: RegistrationResponseJSON; label?: string };
      const result = await registerPasskey(ctx.store.db, rp, session.account.id, body.response, body.label?.trim() || 'passkey');
      const audit = { actor: `account:${session.account.id}`, action: 'passkey-registered' as const, source: request.ip, requestId: request.id };
      if (!result.ok) {
        await ctx.audit.record({ ...audit, outcome: 'failed', detail: { reason: result.reason } });
        throw refusedBecause('passkey-not-registered', 'the passkey could not be verified: start again from the beginning', 400);
      }
      await ctx.audit.record({ ...audit, outcome: 'success', detail: { credential: result.id.slice(0, 16) } });
      return { passkey: { id: result.id, label: result.label }, ...(await replaceSessionsAfterMfaChange(ctx, request, reply, session)) };
    },
  );

  // Re-authentication with a passkey before one sensitive action: the challenge is this session's, for this action only.
  app.post(
    '/api/auth/reauth/passkey/options',
    {
      bodyLimit: 1024,
      schema: { body: { type: 'object', additionalProperties: false, required: ['purpose'], properties: { purpose: { type: 'string', enum: [...REAUTH_PURPOSES] } } } },
    },
    async (request, reply) => {
      const session = request.session;
      if (!session) throw refusedBecause('forbidden', 'only a signed-in user re-authenticates');
      const purpose = (request.body as { purpose: ReauthPurpose }).purpose;
      const options = await reauthOptions(ctx.store.db, rp, { accountId: session.account.id, sessionId: session.id }, purpose);
      if (!options) throw refusedBecause('no-passkey', 'this account has no passkey: use a code from your authenticator app or a recovery code', 409);
      return reply.header('Cache-Control', 'no-store').send(options);
    },
  );

  app.get('/api/auth/passkeys', async (request) => {
    const session = request.session;
    if (!session) throw refusedBecause('forbidden', 'only a signed-in user lists their passkeys');
    return { passkeys: await listPasskeys(ctx.store.db, session.account.id) };
  });

  // A lost or replaced device: the user removes its passkey (after proving who they are again); every session is replaced.
  app.post(
    '/api/auth/passkeys/remove',
    {
      bodyLimit: 16384,
      schema: { body: { type: 'object', additionalProperties: false, required: ['id'], properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,1400}$' }, ...reauthProperties } } },
    },
    async (request, reply) => {
      const session = request.session;
      if (!session) throw refusedBecause('forbidden', 'only a signed-in user removes their passkeys');
      const { id, ...proof } = request.body as { id: string } & ReauthInput;
      const audit = { actor: `account:${session.account.id}`, action: 'passkey-removed' as const, source: request.ip, requestId: request.id, ...(session.account.fhirRef?.startsWith('Patient/') ? { patient: session.account.fhirRef } : {}) };
      if (!(await reauthenticateUser(ctx, session, proof, { source: request.ip, requestId: request.id }, 'mfa-change'))) {
        await ctx.audit.record({ ...audit, outcome: 'denied', detail: { refused: 'reauthentication-failed' } });
        throw refusedBecause('reauthentication-failed', 're-authentication failed: give your password and a code from your authenticator app, a recovery code, or use your passkey');
      }
      const required = (await authPolicy(ctx.store.db).current()).mfaRequired[session.account.role];
      const outcome = await removePasskey(ctx.store.db, session.account.id, id, { keepOneFactor: required });
      if (outcome === 'not-found') throw refusedBecause('not-found', 'you have no passkey with this id', 404);
      if (outcome === 'last-factor') {
        await ctx.audit.record({ ...audit, outcome: 'denied', detail: { refused: 'last-second-factor', credential: id.slice(0, 16) } });
        throw refusedBecause('last-second-factor', 'this is your only second factor and your role requires one: add an authenticator app or another passkey first', 409);
      }
      await ctx.audit.record({ ...audit, outcome: 'success', detail: { credential: id.slice(0, 16) } });
      return replaceSessionsAfterMfaChange(ctx, request, reply, session);
    },
  );

  // The second step of a sign-in: the options came with the `mfa-required` answer to a right password.
  app.post(
    '/api/auth/passkeys/authenticate/verify',
    {
      config: { public: true },
      bodyLimit: 16384,
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['response'],
          properties: { response: assertionJson },
        },
      },
    },
    async (request, reply) => {
      const refused = () => reply.code(401).send({ error: 'sign-in-failed', message: 'sign-in failed: sign in again with your password' });
      const wait = await ctx.signIn.throttleWait(request.ip);
      if (wait > 0) {
        reply.header('Retry-After', String(wait));
        return reply.code(429).send({ error: 'throttled', message: 'too many failed sign-ins from here; wait and try again' });
      }
      const verified = await verifyPasskeySignIn(ctx.store.db, rp, (request.body as { response: AuthenticationResponseJSON }).response);
      if (!verified.ok) {
        await ctx.signIn.recordFailure(verified.accountId, origin(request));
        return refused();
      }
      const result = await ctx.signIn.signInWithPasskey(verified.accountId, origin(request));
      if (result.kind !== 'signed-in') return refused();
      return signedInAnswer(reply, result);
    },
  );
}
