import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../../server/app-context.js';
import { AUTHORIZE_PATH, authorizeRoutes } from './authorize-routes.js';
import { connectedAppsRoutes } from './connected-apps-routes.js';
import { supportedScopes } from './smart-scopes.js';
import { TokenService, type TokenErrorCode, type TokenRequest } from './token-service.js';

export const TOKEN_PATH = '/oauth2/token';
export const SMART_CONFIGURATION_PATH = '/.well-known/smart-configuration';
const FORM = 'application/x-www-form-urlencoded';
const param = { type: 'string', maxLength: 2048 };

const STATUS: Record<TokenErrorCode, number> = { invalid_request: 400, invalid_client: 401, invalid_grant: 400, unauthorized_client: 400, unsupported_grant_type: 400, invalid_scope: 400, slow_down: 429 };

/**
 * The OAuth 2.0 token endpoint (client credentials; authorization code with PKCE), the SMART App
 * Launch authorization endpoint (authorize-routes.ts) and the SMART configuration that announces them.
 */
export async function oauthRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  await app.register(authorizeRoutes, ctx);
  await app.register(connectedAppsRoutes, ctx);
  const tokens = new TokenService(ctx.store.db, ctx.audit);
  const configuration = JSON.stringify(smartConfiguration(ctx.config.publicUrl));

  // Form bodies only here (RFC 6749 §4.4.2); a repeated parameter stays an array so it can be refused.
  app.addContentTypeParser(FORM, { parseAs: 'string', bodyLimit: 4096 }, (_request, body, done) => {
    const fields: Record<string, string | string[]> = {};
    for (const [key, value] of new URLSearchParams(body as string)) {
      const seen = fields[key];
      fields[key] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
    }
    done(null, fields);
  });

  app.get(SMART_CONFIGURATION_PATH, { config: { public: true } }, async (_request, reply) =>
    reply.header('Cache-Control', 'public, max-age=3600').type('application/json; charset=utf-8').send(configuration),
  );

  app.post(
    TOKEN_PATH,
    {
      config: { public: true },
      bodyLimit: 4096,
      attachValidation: true,
      schema: {
        body: {
          type: 'object',
          maxProperties: 10,
          // Unknown parameters are ignored, as RFC 6749 §3.2 asks; each must still be a single short string.
          properties: { grant_type: param, scope: param, client_id: param, client_secret: param, code: param, redirect_uri: param, code_verifier: param, refresh_token: param },
          additionalProperties: param,
        },
      },
    },
    async (request, reply) => {
      reply.headers({ 'Cache-Control': 'no-store', Pragma: 'no-cache' });
      const parsed = tokenRequest(request);
      if (typeof parsed === 'string') return sendError(reply, 'invalid_request', parsed);
      const result = await tokens.exchange(parsed, { source: request.ip, requestId: request.id });
      if (result.kind === 'error') {
        if (result.retryAfterSeconds !== undefined) reply.header('Retry-After', String(result.retryAfterSeconds));
        return sendError(reply, result.error, result.description);
      }
      return reply
        .type('application/json; charset=utf-8')
        .send({ access_token: result.accessToken, token_type: 'Bearer', expires_in: result.expiresIn, scope: result.scope, ...(result.patient ? { patient: result.patient } : {}), ...(result.refreshToken ? { refresh_token: result.refreshToken } : {}) });
    },
  );
}

/** The request's parameters and client credentials, or why they are malformed. */
function tokenRequest(request: FastifyRequest): TokenRequest | string {
  const type = String(request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== FORM) return `send the parameters as ${FORM}`;
  if (request.validationError) return 'each parameter must be given once, with at most 2048 characters';
  const body = (request.body ?? {}) as Record<string, string>;
  const basic = basicCredentials(request.headers.authorization);
  if (basic === null) return 'the Authorization header must be HTTP Basic with the form-encoded client_id and client_secret';
  if (basic && body.client_secret !== undefined) return 'use one client authentication method: HTTP Basic or client_secret in the body, not both';
  if (basic && body.client_id !== undefined && body.client_id !== basic.id) return 'client_id in the body differs from the one in HTTP Basic';
  return {
    grantType: body.grant_type,
    clientId: basic?.id ?? body.client_id,
    clientSecret: basic?.secret ?? body.client_secret,
    scope: body.scope,
    code: body.code,
    redirectUri: body.redirect_uri,
    codeVerifier: body.code_verifier,
    refreshToken: body.refresh_token,
  };
}

/** client_secret_basic (RFC 6749 §2.3.1): undefined when absent, null when malformed. */
function basicCredentials(header: string | undefined): { id: string; secret: string } | undefined | null {
  if (header === undefined) return undefined;
  const m = /^Basic ([A-Za-z0-9+/=]{1,1024})$/i.exec(header.trim());
  if (!m) return null;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  try {
    const unform = (v: string) => decodeURIComponent(v.replace(/\+/g, ' '));
    return { id: unform(decoded.slice(0, colon)), secret: unform(decoded.slice(colon + 1)) };
  } catch {
    return null;
  }
}

function sendError(reply: FastifyReply, error: TokenErrorCode, description: string) {
  // A failed client authentication answers 401 with the scheme the client should use (RFC 6749 §5.2).
  if (error === 'invalid_client') reply.header('WWW-Authenticate', 'Basic realm="telesalud", charset="UTF-8"');
  return reply.code(STATUS[error]).type('application/json; charset=utf-8').send({ error, error_description: description });
}

/**
 * SMART App Launch 2.0 §"Conformance": the endpoints and what they support. Standalone launch of
 * a patient's own record, refresh tokens with offline_access; no EHR launch and no openid/fhirUser
 * (no id_token) yet.
 */
export function smartConfiguration(publicUrl: string): Record<string, unknown> {
  return {
    issuer: publicUrl,
    authorization_endpoint: `${publicUrl}${AUTHORIZE_PATH}`,
    token_endpoint: `${publicUrl}${TOKEN_PATH}`,
    grant_types_supported: ['client_credentials', 'authorization_code', 'refresh_token'],
    response_types_supported: ['code'],
    // `none`: a public client proves itself by PKCE alone.
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    code_challenge_methods_supported: ['S256'],
    scopes_supported: supportedScopes(),
    capabilities: [
      'launch-standalone',
      'client-public',
      'client-confidential-symmetric',
      'context-standalone-patient',
      'permission-patient',
      'permission-user',
      'permission-offline',
      'permission-v1',
      'permission-v2',
    ],
  };
}
