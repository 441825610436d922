import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { bearerToken } from '../auth/bootstrap-token.js';
import { SESSION_COOKIE } from '../auth/sessions/session-store.js';
import type { AppContext } from '../server/app-context.js';
import { InMemoryRateLimiter, type RateCount, type RateDecision, type RateLimit, type RateLimiter } from './rate-limiter.js';

/** Every limit counts requests per minute (the TELESALUD_RATE_LIMIT_* variables say "a minute"). */
export const RATE_WINDOW_MS = 60_000;

/**
 * What a limit is counted for, and the label of `telesalud_rate_limited_total`:
 * `source` — anonymous requests (and requests whose credentials were refused) from one address;
 * `source-signed-in` — signed-in requests from one address; `account` — one account (its sessions
 * and the app tokens acting for it) or system OAuth client; `client` — one app (an OAuth client
 * acting for users), all its users together.
 */
export type RateBucket = 'source' | 'source-signed-in' | 'account' | 'client';
export const RATE_BUCKETS: readonly RateBucket[] = ['source', 'source-signed-in', 'account', 'client'];

/** What the rate limits refused since the node started, and how they are counted (for /metrics). */
export class RateLimitStats {
  private readonly refused = new Map<RateBucket, number>(RATE_BUCKETS.map((b) => [b, 0]));

  constructor(readonly limiter: RateLimiter) {}

  count(bucket: RateBucket): void {
    this.refused.set(bucket, (this.refused.get(bucket) ?? 0) + 1);
  }

  byBucket(): ReadonlyMap<RateBucket, number> {
    return this.refused;
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The API rate limits' refusals and whether they are shared (for /metrics). */
    rateLimitStats: RateLimitStats;
  }
}

/** The families of routes that are limited: the FHIR API, the application API, OAuth tokens. */
function limitedFamily(url: string): 'fhir' | 'api' | undefined {
  if (url.startsWith('/fhir/')) return 'fhir';
  if (url.startsWith('/api/') || url.startsWith('/oauth2/')) return 'api';
  return undefined;
}

/** Loopback is this machine (health checks, a local proxy): like a trusted proxy, it is not a client. */
function isLoopback(address: string): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

/**
 * Rate limits of the FHIR and application APIs, per source address and per account, counted
 * farm-wide (src/cluster/redis-rate-limiter.ts: decided on the node, shared with the other nodes
 * through Redis in the background, no round trip per request) or on this node (the embedded default).
 *
 * Two hooks around authentication, so each request is counted once:
 *  - before it: an anonymous request (a public route, or no credentials at all) is counted per
 *    source, against the lower ceiling (TELESALUD_RATE_LIMIT_PER_SOURCE), before any database
 *    lookup is spent on it;
 *  - after it: a signed-in request is counted per account (a session's account, an OAuth client)
 *    and per source against the higher ceiling (…_PER_SOURCE_SIGNED_IN), in one step; an app's
 *    token counts against the account it acts for (its person's sessions and apps share one
 *    budget: an app gives no more than signing in does) and against the app as a whole, at the
 *    signed-in source ceiling (an app carries many people, as a hospital's NAT does);
 *  - a request whose credentials are refused (401) is then counted per source like anonymous
 *    traffic, and once that count is spent the source's credentialed requests are refused before
 *    authentication too — guessing tokens or cookies buys no larger budget than being anonymous.
 *
 * The source is `request.ip`, which names the client behind a configured proxy
 * (TELESALUD_TRUSTED_PROXIES). A trusted proxy itself, and loopback, is never limited as a
 * source: it is not the client (a proxy that sent no X-Forwarded-For shows as itself), and
 * limiting it would throttle everyone behind it together; the accounts coming through it are
 * still limited. The bootstrap admin token is limited per source only: it is the operator's
 * break-in key (scripts, the metrics scraper), not an account, and an incident is when it must work.
 *
 * Not @fastify/rate-limit: it counts one key per request at one hook, so it could not count a
 * signed-in request per account and per source in one step, split the check around
 * authentication as above, fail open to a node-local count (its skipOnError only stops counting),
 * or write one security event per key and window.
 */
export function registerRateLimits(app: FastifyInstance, ctx: AppContext): { afterAuthentication(): void } {
  const settings = ctx.config.rateLimits;
  const limiter: RateLimiter = ctx.rateLimiter ?? new InMemoryRateLimiter();
  const stats = new RateLimitStats(limiter);
  app.decorate('rateLimitStats', stats);
  const proxies = ctx.config.trustedProxies;
  /** Signed-in requests waiting for authentication before they are counted. */
  const pending = new WeakSet<FastifyRequest>();
  /** Sources whose refused-credentials budget is spent, until when (learnt from the shared count). */
  const badCredentials = new Map<string, number>();
  const exempt = (source: string) => isLoopback(source) || proxies.has(source);
  const sourceLimit = (source: string): RateLimit => ({ key: `source:${source}`, limit: settings.perSource, windowMs: RATE_WINDOW_MS });

  app.addHook('onRequest', async (request, reply) => {
    if (!limitedFamily(request.url)) return;
    const source = request.ip;
    const credentialed = !request.routeOptions.config?.public && (bearerToken(request.headers.authorization) !== undefined || request.cookies?.[SESSION_COOKIE] !== undefined);
    if (credentialed) {
      const until = badCredentials.get(source);
      if (until !== undefined && until > Date.now()) return refuse(request, reply, 'source', { limit: sourceLimit(source), remaining: 0, resetMs: until - Date.now(), retryAfterMs: until - Date.now() }, undefined);
      if (until !== undefined) badCredentials.delete(source);
      pending.add(request);
      return;
    }
    if (settings.perSource === 0 || exempt(source)) return;
    const decision = await limiter.hit([sourceLimit(source)]);
    return apply(request, reply, decision, ['source'], undefined);
  });

  // Requests whose credentials were refused: counted as anonymous ones from their source.
  app.addHook('onResponse', async (request, reply) => {
    if (!pending.delete(request) || reply.statusCode !== 401) return;
    const source = request.ip;
    if (settings.perSource === 0 || exempt(source)) return;
    const decision = await limiter.hit([sourceLimit(source)]);
    if (decision.allowed) return;
    if (badCredentials.size > 10_000) for (const [s, until] of badCredentials) if (until <= Date.now()) badCredentials.delete(s);
    badCredentials.set(source, Date.now() + decision.counts[0]!.retryAfterMs);
  });

  return {
    afterAuthentication() {
      app.addHook('onRequest', async (request, reply) => {
        if (!pending.has(request)) return;
        pending.delete(request);
        const source = request.ip;
        const account = accountOf(request);
        const limits: RateLimit[] = [];
        const buckets: RateBucket[] = [];
        const app = request.actor?.client;
        if (settings.perSourceSignedIn > 0 && app !== undefined) {
          limits.push({ key: `app:${app}`, limit: settings.perSourceSignedIn, windowMs: RATE_WINDOW_MS });
          buckets.push('client');
        }
        if (settings.perSourceSignedIn > 0 && !exempt(source)) {
          limits.push({ key: `source-signed-in:${source}`, limit: settings.perSourceSignedIn, windowMs: RATE_WINDOW_MS });
          buckets.push('source-signed-in');
        }
        if (settings.perAccount > 0 && account !== undefined) {
          limits.push({ key: `account:${account}`, limit: settings.perAccount, windowMs: RATE_WINDOW_MS });
          buckets.push('account');
        }
        if (limits.length === 0) return;
        return apply(request, reply, await limiter.hit(limits), buckets, account, app);
      });
    },
  };

  /** Headers of the tightest limit; a 429 naming the limit that refused. */
  function apply(request: FastifyRequest, reply: FastifyReply, decision: RateDecision, buckets: RateBucket[], account: string | undefined, app?: string): FastifyReply | undefined {
    if (decision.allowed) {
      let tightest = 0;
      decision.counts.forEach((c, i) => {
        if (c.remaining < decision.counts[tightest]!.remaining) tightest = i;
      });
      rateLimitHeaders(reply, decision.counts[tightest]!);
      return undefined;
    }
    // The limit that holds the client back longest is the one to name.
    let worst = 0;
    decision.counts.forEach((c, i) => {
      if (c.retryAfterMs > decision.counts[worst]!.retryAfterMs) worst = i;
    });
    return refuse(request, reply, buckets[worst]!, decision.counts[worst]!, buckets[worst] === 'client' ? app : account);
  }

  function refuse(request: FastifyRequest, reply: FastifyReply, bucket: RateBucket, count: RateCount, account: string | undefined): FastifyReply {
    stats.count(bucket);
    void recordRefusal(request, bucket, count.limit, account);
    const seconds = Math.max(1, Math.ceil(count.retryAfterMs / 1000));
    rateLimitHeaders(reply, count);
    reply.code(429).header('retry-after', String(seconds)).header('cache-control', 'no-store');
    const who = bucket === 'account' ? 'this account' : bucket === 'client' ? 'this app' : 'this address';
    const message = `too many requests from ${who}: at most ${count.limit.limit} a minute; try again in ${seconds} s`;
    if (limitedFamily(request.url) === 'fhir') {
      return reply.type('application/fhir+json; charset=utf-8').send({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'throttled', diagnostics: message }] });
    }
    return reply.type('application/json; charset=utf-8').send({ error: 'rate-limited', message, retryAfterSeconds: seconds });
  }

  /**
   * A security event, once per key and window (farm-wide when shared): where from, which account,
   * which route pattern and limit — never the URL, whose query may hold a patient's name.
   */
  async function recordRefusal(request: FastifyRequest, bucket: RateBucket, limit: RateLimit, account: string | undefined): Promise<void> {
    try {
      if (!(await limiter.firstRefusal(limit.key, limit.windowMs))) return;
      await ctx.audit.record({
        actor: account ?? 'anonymous',
        action: 'rate-limited',
        outcome: 'denied',
        source: request.ip,
        requestId: request.id,
        detail: { bucket, route: request.routeOptions.url ?? 'unmatched', method: request.method, limit: limit.limit, windowSeconds: limit.windowMs / 1000, counting: limiter.mode() },
      });
    } catch (err) {
      ctx.logger.error({ err: { message: (err as Error).message }, requestId: request.id }, 'rate limit refusal not recorded in the audit');
    }
  }
}

/** Who a signed-in request counts against: its session's account, the account an app's token acts for, or a system client; not the bootstrap token. */
function accountOf(request: FastifyRequest): string | undefined {
  if (request.session) return `account:${request.session.account.id}`;
  if (request.actor?.account) return `account:${request.actor.account}`;
  const ref = request.actor?.ref;
  return ref?.startsWith('client:') ? ref : undefined;
}

/** The IETF draft's RateLimit-* fields (draft-ietf-httpapi-ratelimit-headers-07), as most clients read them. */
function rateLimitHeaders(reply: FastifyReply, count: RateCount): void {
  reply
    .header('ratelimit-limit', String(count.limit.limit))
    .header('ratelimit-remaining', String(count.remaining))
    .header('ratelimit-reset', String(Math.max(1, Math.ceil(count.resetMs / 1000))))
    .header('ratelimit-policy', `${count.limit.limit};w=${count.limit.windowMs / 1000}`);
}
