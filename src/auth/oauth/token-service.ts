import { sql, type Kysely } from 'kysely';
import type { AuditLog } from '../../audit/audit-log.js';
import type { Database } from '../../db/schema.js';
import { LAUNCH_PATIENT, OFFLINE_ACCESS } from './app-scopes.js';
import { redeemCode, verifierMatches } from './authorization-codes.js';
import { grantStillExists, lockGrant } from './connected-apps.js';
import { authenticateClient, clientActorRef, findAppClient, isClientId, issueAccessToken } from './oauth-clients.js';
import { issueRefreshToken, newFamilyExpiry, useRefreshToken, type RefreshGrant } from './refresh-tokens.js';
import { grantsCover, parseScopes, ScopeError } from './smart-scopes.js';

/** RFC 6749 §5.2 error codes this endpoint answers with. */
export type TokenErrorCode = 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unauthorized_client' | 'unsupported_grant_type' | 'invalid_scope' | 'slow_down';

export type TokenResult =
  | { kind: 'issued'; accessToken: string; expiresIn: number; scope: string; /** SMART launch context: the patient's id. */ patient?: string; refreshToken?: string }
  | { kind: 'error'; error: TokenErrorCode; description: string; retryAfterSeconds?: number };

export interface TokenRequest {
  grantType: string | undefined;
  clientId: string | undefined;
  clientSecret: string | undefined;
  scope: string | undefined;
  /** authorization_code only. */
  code?: string | undefined;
  redirectUri?: string | undefined;
  codeVerifier?: string | undefined;
  /** refresh_token only. */
  refreshToken?: string | undefined;
}

type Refuse = (error: TokenErrorCode, description: string) => Promise<TokenResult>;

/** Failed token requests from one source address within windowMinutes before it must wait. */
export const TOKEN_LIMITS = { sourceLimit: 20, windowMinutes: 15 };

/**
 * The client credentials grant (RFC 6749 §4.4) for system clients, and the authorization code
 * grant with PKCE (RFC 6749 §4.1, RFC 7636) for apps a user authorized. Every refusal is a security event in the audit
 * and counts against the source address, shared by every node through the database; the
 * secret itself is never logged or audited.
 */
export class TokenService {
  constructor(private readonly db: Kysely<Database>, private readonly audit: AuditLog) {}

  async exchange(req: TokenRequest, origin: { source: string; requestId: string }, now = new Date()): Promise<TokenResult> {
    const wait = await this.sourceWait(origin.source, now);
    if (wait > 0) {
      await this.record(req.clientId, origin, 'denied', { error: 'slow_down' });
      return { kind: 'error', error: 'slow_down', description: 'too many failed token requests from here; wait and try again', retryAfterSeconds: wait };
    }
    const refuse = async (error: TokenErrorCode, description: string): Promise<TokenResult> => {
      await this.countFailure(origin.source, now);
      await this.record(req.clientId, origin, 'denied', { error });
      return { kind: 'error', error, description };
    };

    if (req.grantType === undefined) return refuse('invalid_request', 'grant_type is missing');
    if (req.grantType === 'authorization_code') return this.authorizationCode(req, origin, refuse, now);
    if (req.grantType === 'refresh_token') return this.refresh(req, origin, refuse, now);
    if (req.grantType !== 'client_credentials') return refuse('unsupported_grant_type', 'this server grants client_credentials, authorization_code and refresh_token only');
    if (!req.clientId || !req.clientSecret) return refuse('invalid_client', 'client authentication is missing: use HTTP Basic or client_id and client_secret in the body');
    const client = await authenticateClient(this.db, req.clientId, req.clientSecret);
    if (!client) return refuse('invalid_client', 'client authentication failed');
    if (client.app) return refuse('unauthorized_client', 'this client is an app users sign in to: it uses the authorization_code grant');

    const granted = parseScopes(client.scopes).grants;
    let scope = client.scopes;
    if (req.scope !== undefined) {
      try {
        const requested = parseScopes(req.scope);
        if (!grantsCover(granted, requested.grants)) return refuse('invalid_scope', 'the requested scope exceeds what this client was granted');
        scope = requested.scopes.join(' ');
      } catch (err) {
        if (err instanceof ScopeError) return refuse('invalid_scope', err.message);
        throw err;
      }
    }
    const issued = await issueAccessToken(this.db, client.id, scope, now);
    await this.record(client.id, origin, 'success', { scope });
    return { kind: 'issued', accessToken: issued.token, expiresIn: issued.expiresIn, scope };
  }

  /**
   * Redeems a code: the client proves itself (a confidential one with its secret, a public one by
   * PKCE alone), the code must be live, unused, issued to this client for this redirect URI, and
   * the verifier must hash to its challenge. Any mismatch spends the code.
   */
  private async authorizationCode(req: TokenRequest, origin: { source: string; requestId: string }, refuse: Refuse, now: Date): Promise<TokenResult> {
    // A `scope` here is not a parameter of this grant (the code carries the approved scope): ignored, as RFC 6749 §3.2 asks.
    if (!req.code) return refuse('invalid_request', 'code is missing');
    if (!req.redirectUri) return refuse('invalid_request', 'redirect_uri is missing');
    if (!req.codeVerifier) return refuse('invalid_request', 'code_verifier is missing: PKCE is required');
    const app = await this.appClient(req, refuse);
    if (typeof app !== 'string') return app;
    const clientId = app;

    const redemption = await redeemCode(this.db, req.code, now);
    if (redemption.kind === 'reused') return refuse('invalid_grant', 'this code was already used: the tokens it gave are revoked');
    if (redemption.kind !== 'redeemed') return refuse('invalid_grant', 'the code is unknown or expired');
    const code = redemption.code;
    if (code.clientId !== clientId) return refuse('invalid_grant', 'the code was issued to another client');
    if (code.redirectUri !== req.redirectUri) return refuse('invalid_grant', 'redirect_uri differs from the one the code was issued for');
    if (!verifierMatches(req.codeVerifier, code.codeChallenge)) return refuse('invalid_grant', 'code_verifier does not match the code_challenge');
    return this.issueForUser({ family: code.codeHash, clientId, accountId: code.accountId, scopes: code.scopes, patient: code.patient, expires: newFamilyExpiry(now) }, 'authorization_code', origin, now, refuse);
  }

  /**
   * offline_access: a refresh token for a new access token, rotated — each is good once, and the
   * answer carries its successor. The scope stays what the user approved (a narrower one is not
   * offered: ask the user again).
   */
  private async refresh(req: TokenRequest, origin: { source: string; requestId: string }, refuse: Refuse, now: Date): Promise<TokenResult> {
    if (!req.refreshToken) return refuse('invalid_request', 'refresh_token is missing');
    const app = await this.appClient(req, refuse);
    if (typeof app !== 'string') return app;
    const outcome = await useRefreshToken(this.db, req.refreshToken, now);
    if (outcome.kind === 'reused') return refuse('invalid_grant', 'this refresh token was already used: every token of this authorization is revoked');
    if (outcome.kind !== 'refreshed') return refuse('invalid_grant', 'the refresh token is unknown or expired');
    const grant = outcome.grant;
    if (grant.clientId !== app) return refuse('invalid_grant', 'the refresh token was issued to another client');
    if (req.scope !== undefined && [...new Set(req.scope.split(/[ \t]+/).filter(Boolean))].sort().join(' ') !== grant.scopes.split(' ').sort().join(' ')) {
      return refuse('invalid_scope', 'a refresh keeps the scope the user approved');
    }
    return this.issueForUser(grant, 'refresh_token', origin, now, refuse);
  }

  /** The app client this request proves: a confidential one by its secret, a public one by its id (PKCE or its refresh token does the rest). */
  private async appClient(req: TokenRequest, refuse: Refuse): Promise<string | TokenResult> {
    if (!req.clientId) return refuse('invalid_client', 'client_id is missing');
    if (req.clientSecret !== undefined) {
      const client = await authenticateClient(this.db, req.clientId, req.clientSecret);
      if (!client) return refuse('invalid_client', 'client authentication failed');
      if (!client.app) return refuse('unauthorized_client', 'this client is a system client: it uses the client_credentials grant');
      return client.id;
    }
    const client = await findAppClient(this.db, req.clientId);
    if (!client) return refuse('invalid_client', 'unknown client');
    if (client.type !== 'public') return refuse('invalid_client', 'this client is confidential: authenticate with its secret');
    return client.id;
  }

  /** An access token (and with offline_access the next refresh token) for the user who authorized the app. */
  private async issueForUser(grant: RefreshGrant, via: 'authorization_code' | 'refresh_token', origin: { source: string; requestId: string }, now: Date, refuse: Refuse): Promise<TokenResult> {
    const account = await this.db.selectFrom('account').select('status').where('id', '=', grant.accountId).executeTakeFirst();
    if (account?.status !== 'active') return refuse('invalid_grant', 'the account that authorized this app is not active');
    const words = grant.scopes.split(' ');
    // Under the grant's lock, and only while the grant exists: a revocation (connected-apps.ts, or a
    // replay: refresh-tokens.ts revokeFamily) running at this very moment either ends these tokens too or makes this issue nothing.
    const tokens = await this.db.transaction().execute(async (tx) => {
      await lockGrant(tx, grant.family);
      if (!(await grantStillExists(tx, grant.family, via))) return undefined;
      const access = await issueAccessToken(tx, grant.clientId, grant.scopes, now, { accountId: grant.accountId, patient: grant.patient, grantHash: grant.family });
      return { access, refresh: words.includes(OFFLINE_ACCESS) ? await issueRefreshToken(tx, grant, now) : undefined };
    });
    if (!tokens) return refuse('invalid_grant', 'this authorization was revoked (the user ended it, or its code or refresh token was used twice): ask the user to approve the app again');
    const { access: issued, refresh: refreshToken } = tokens;
    const patient = words.includes(LAUNCH_PATIENT) && grant.patient ? grant.patient.slice('Patient/'.length) : undefined;
    await this.record(grant.clientId, origin, 'success', { scope: grant.scopes, grant: via, account: grant.accountId });
    return { kind: 'issued', accessToken: issued.token, expiresIn: issued.expiresIn, scope: grant.scopes, ...(patient ? { patient } : {}), ...(refreshToken ? { refreshToken } : {}) };
  }

  private record(clientId: string | undefined, origin: { source: string; requestId: string }, outcome: 'success' | 'denied', detail: Record<string, unknown>): Promise<void> {
    return this.audit.record({
      // Only a value shaped like a client id names the actor: a secret typed into the wrong field is never recorded.
      actor: clientId && isClientId(clientId) ? clientActorRef(clientId) : 'anonymous',
      action: outcome === 'success' ? 'token-issued' : 'token-refused',
      outcome,
      source: origin.source,
      requestId: origin.requestId,
      detail,
    });
  }

  private async sourceWait(source: string, now: Date): Promise<number> {
    const row = await this.db.selectFrom('oauth_token_throttle').selectAll().where('source', '=', source).executeTakeFirst();
    if (!row) return 0;
    const windowEnd = new Date(row.window_start).getTime() + TOKEN_LIMITS.windowMinutes * 60_000;
    if (windowEnd <= now.getTime() || row.failures < TOKEN_LIMITS.sourceLimit) return 0;
    return Math.ceil((windowEnd - now.getTime()) / 1000);
  }

  private async countFailure(source: string, now: Date): Promise<void> {
    const windowStart = new Date(now.getTime() - TOKEN_LIMITS.windowMinutes * 60_000);
    await sql`
      insert into oauth_token_throttle (source, failures, window_start) values (${source}, 1, ${now})
      on conflict (source) do update set
        failures = case when oauth_token_throttle.window_start < ${windowStart} then 1 else oauth_token_throttle.failures + 1 end,
        window_start = case when oauth_token_throttle.window_start < ${windowStart} then ${now} else oauth_token_throttle.window_start end`.execute(this.db);
  }
}
