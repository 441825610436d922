import { sql, type Kysely } from 'kysely';
import type { AuditLog } from '../../audit/audit-log.js';
import type { Database } from '../../db/schema.js';
import { authenticateClient, clientActorRef, isClientId, issueAccessToken } from './oauth-clients.js';
import { grantsCover, parseScopes, ScopeError } from './smart-scopes.js';

/** RFC 6749 §5.2 error codes this endpoint answers with. */
export type TokenErrorCode = 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unsupported_grant_type' | 'invalid_scope' | 'slow_down';

export type TokenResult =
  | { kind: 'issued'; accessToken: string; expiresIn: number; scope: string }
  | { kind: 'error'; error: TokenErrorCode; description: string; retryAfterSeconds?: number };

export interface TokenRequest {
  grantType: string | undefined;
  clientId: string | undefined;
  clientSecret: string | undefined;
  scope: string | undefined;
}

/** Failed token requests from one source address within windowMinutes before it must wait. */
export const TOKEN_LIMITS = { sourceLimit: 20, windowMinutes: 15 };

/**
 * The client credentials grant (RFC 6749 §4.4). Every refusal is a security event in the audit
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
    if (req.grantType !== 'client_credentials') return refuse('unsupported_grant_type', 'this server grants only client_credentials');
    if (!req.clientId || !req.clientSecret) return refuse('invalid_client', 'client authentication is missing: use HTTP Basic or client_id and client_secret in the body');
    const client = await authenticateClient(this.db, req.clientId, req.clientSecret);
    if (!client) return refuse('invalid_client', 'client authentication failed');

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
