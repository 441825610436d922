import type { FastifyInstance } from 'fastify';
import { ping } from '../db/database.js';
import type { AppContext } from './app-context.js';

/** Liveness says the process answers; readiness says it should be sent traffic. */
export async function healthRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  app.get('/healthz', { config: { public: true } }, async () => ({ status: 'alive' }));

  app.get('/readyz', { config: { public: true } }, async (_request, reply) => {
    if (ctx.lifecycle.draining) return reply.code(503).send({ status: 'draining' });
    try {
      await withTimeout(ping(ctx.store.db), 2000);
    } catch {
      return reply.code(503).send({ status: 'unready', database: 'unreachable' });
    }
    return { status: 'ready', database: ctx.store.kind };
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([promise, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), ms)))]).finally(() => clearTimeout(timer));
}
