import type { FastifyInstance } from 'fastify';
import { ping } from '../db/database.js';
import type { AppContext } from './app-context.js';

/**
 * Liveness says the process answers; readiness says it should be sent traffic. Redis is for
 * speed, not for truth: a node whose Redis is down stays ready (sign-in and the record work
 * on PostgreSQL alone) and says what is degraded, so monitoring sees it and load balancers
 * don't take every node out at once.
 */
export async function healthRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  app.get('/healthz', { config: { public: true } }, async () => ({ status: 'alive' }));

  app.get('/readyz', { config: { public: true } }, async (_request, reply) => {
    if (ctx.lifecycle.draining) return reply.code(503).send({ status: 'draining' });
    try {
      await withTimeout(ping(ctx.store.db), 2000);
    } catch {
      return reply.code(503).send({ status: 'unready', database: 'unreachable' });
    }
    const bus = ctx.bus.status();
    if (bus.redis === 'none') return { status: 'ready', database: ctx.store.kind };
    return {
      status: 'ready',
      database: ctx.store.kind,
      node: ctx.nodeId,
      redis: bus.redis === 'connected' ? 'up' : 'down',
      ...(bus.redis === 'down' ? { redisDownSince: bus.since } : {}),
      // Down: each node runs the consultations whose sockets it holds; across nodes they can't meet.
      signaling: bus.redis === 'connected' ? 'farm' : 'degraded',
    };
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([promise, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), ms)))]).finally(() => clearTimeout(timer));
}
