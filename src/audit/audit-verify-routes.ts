import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isAdministrator } from '../auth/administrator.js';
import { forbidden } from '../records/fhir/outcomes.js';
import type { AppContext } from '../server/app-context.js';
import { loadAuditVerifyingKeys } from './audit-signing-key.js';
import { verifyAuditChain, type AuditChainReport } from './verify-chain.js';

export interface AuditVerification extends AuditChainReport {
  /** When the walk ended. */
  verifiedAt: string;
  durationMs: number;
  /** Which node ran it (each node reads the same database). */
  node: string;
}

/**
 * `POST /api/admin/audit/verify`: the same walk of the audit chain and its signed checkpoints as
 * `telesalud audit verify`, run by the node for the admin console. `GET` answers the last result
 * this node found (or 404 before the first run). One walk at a time per node: a second request
 * while one runs waits for it instead of starting another full scan.
 */
export async function auditVerifyRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  let running: Promise<AuditVerification> | undefined;
  let last: AuditVerification | undefined;

  const requireAdmin = async (request: FastifyRequest) => {
    if (isAdministrator(request)) return;
    await ctx.audit.record({ actor: request.actor?.ref ?? 'anonymous', action: 'audit-search', outcome: 'denied', source: request.ip, requestId: request.id, detail: { view: 'chain-verification' } });
    throw forbidden('only administrators verify the audit trail');
  };

  const verify = async (): Promise<AuditVerification> => {
    const started = Date.now();
    const keys = await loadAuditVerifyingKeys({ envValue: ctx.config.auditSigningKey, dataDir: ctx.config.dataDir });
    const report = await verifyAuditChain(ctx.store.db, { keys });
    return { ...report, verifiedAt: new Date().toISOString(), durationMs: Date.now() - started, node: ctx.nodeId };
  };

  app.get('/api/admin/audit/verify', async (request, reply) => {
    await requireAdmin(request);
    if (!last) return reply.code(404).send({ error: 'not-verified', message: 'the audit chain has not been verified on this node since it started' });
    return reply.header('Cache-Control', 'no-store').send(last);
  });

  app.post('/api/admin/audit/verify', async (request, reply) => {
    await requireAdmin(request);
    running ??= verify().finally(() => (running = undefined));
    const result = await running;
    last = result;
    await ctx.audit.record({
      actor: request.actor!.ref,
      action: 'audit-search',
      outcome: 'success',
      source: request.ip,
      requestId: request.id,
      detail: { view: 'chain-verification', ok: result.ok, entries: result.entries, ...(result.firstProblem ? { firstProblemSeq: result.firstProblem.seq, kind: result.firstProblem.kind } : {}) },
    });
    if (!result.ok) ctx.logger.error({ seq: result.firstProblem?.seq, kind: result.firstProblem?.kind }, 'audit chain verification found the chain broken');
    return reply.header('Cache-Control', 'no-store').send(result);
  });
}
