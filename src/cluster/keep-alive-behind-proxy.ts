import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';
import type { AppContext } from '../server/app-context.js';

/**
 * The node's half of letting HAProxy keep its connections to the nodes (`http-reuse safe`,
 * src/cluster/haproxy-config.ts). The one hazard of a kept connection is a race: HAProxy sends
 * a request on an idle connection at the moment the node closes it, and the request is lost.
 * So the node never closes an idle connection HAProxy may still pick:
 *
 * - Idle timeout: HAProxy has no idle timeout of its own for server connections; it closes the
 *   ones it does not need a few `pool-purge-delay` periods (5 s each) after a burst, so an
 *   idle connection can live 15–60 s there (15 s measured for one). A node in a farm or behind
 *   a trusted proxy keeps an idle connection for KEEP_ALIVE_TIMEOUT_MS (Node adds 1 s more),
 *   well past that: HAProxy is always the side that closes an idle connection, and it never
 *   reuses one it has closed. (Provoked on purpose — requests timed to the node's idle close
 *   behind HAProxy 2.6 — about 1 request in 100 failed with a reset.)
 * - Draining: from SIGTERM every response says `Connection: close`, so no connection goes back
 *   to HAProxy's idle pool; connections that were already idle are closed only when the node
 *   stops listening, after TELESALUD_DRAIN_DELAY_MS, by when HAProxy has seen `/readyz` answer
 *   503 (fall × inter) and sends the node nothing more. Requests that still arrive on a
 *   connection after that get a 503 that was never acted on, which HAProxy retries elsewhere.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 75_000;
/** Browsers talking to a node directly (no proxy) get the usual short idle timeout: idle sockets are held for no one. */
export const DIRECT_KEEP_ALIVE_TIMEOUT_MS = 10_000;

/**
 * The long timeout where something keeps connections to the node: in a farm (HAProxy in front)
 * or behind the proxies TELESALUD_TRUSTED_PROXIES names (HAProxy, or nginx, whose upstream
 * keepalive_timeout is 60 s by default).
 */
export function keepAliveTimeoutMs(config: Pick<Config, 'redisUrl' | 'trustedProxies'>): number {
  return config.redisUrl || config.trustedProxies.entries.length > 0 ? KEEP_ALIVE_TIMEOUT_MS : DIRECT_KEEP_ALIVE_TIMEOUT_MS;
}

export function closeConnectionsWhileDraining(app: FastifyInstance, ctx: Pick<AppContext, 'lifecycle'>): void {
  // Callback style, not async: this runs on every response, and needs no promise of its own.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (ctx.lifecycle.draining) reply.header('connection', 'close');
    done(null, payload);
  });
}
