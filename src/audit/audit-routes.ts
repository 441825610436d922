import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest, forbidden } from '../records/fhir/outcomes.js';
import type { AppContext } from '../server/app-context.js';
import type { AuditAction } from './audit-log.js';
import { toAuditEvent } from './audit-event-fhir.js';
import { findAuditRows, paging, timeWindow, type AuditQuery } from './audit-search.js';
import { isAdministrator } from '../auth/administrator.js';

const text = (max: number) => ({ type: 'string', minLength: 1, maxLength: max });
const searchQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { patient: text(100), user: text(200), kind: text(600), outcome: { type: 'string', enum: ['success', 'denied', 'failed'] }, from: text(40), to: text(40), _count: text(7), before: text(17) },
};
const exportQuery = { type: 'object', additionalProperties: false, properties: { from: text(40), to: text(40) } };
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EXPORT_PAGE = 1000;

/**
 * The audit trail for the security officer: search as a FHIR Bundle of AuditEvents and export
 * as NDJSON. Only an administrator's session or the bootstrap admin token may read it, and
 * every reading (or refused attempt) is itself an entry of the trail.
 */
export async function auditRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const record = (request: FastifyRequest, action: AuditAction, outcome: 'success' | 'denied', extra: { patient?: string; detail?: Record<string, unknown> } = {}) =>
    ctx.audit.record({ actor: request.actor!.ref, action, outcome, source: request.ip, requestId: request.id, ...extra });

  const requireAuditor = async (request: FastifyRequest, action: AuditAction) => {
    // OAuth clients never get here (their tokens stop at the FHIR API); clinicians and patients are refused.
    if (!isAdministrator(request)) {
      await record(request, action, 'denied');
      throw forbidden('only administrators may read the audit trail');
    }
  };

  app.get('/api/audit/events', { schema: { querystring: searchQuery } }, async (request, reply) => {
    await requireAuditor(request, 'audit-search');
    const q = request.query as Record<string, string | undefined>;
    const query: AuditQuery = { ...timeWindow(q.from, q.to) };
    if (q.patient !== undefined) query.patient = patientRef(q.patient);
    if (q.user !== undefined) query.actors = await actorRefs(ctx, q.user);
    if (q.kind !== undefined) query.actions = kinds(q.kind);
    if (q.outcome !== undefined) query.outcome = q.outcome;
    const { count, beforeSeq } = paging(q._count, q.before, 50, 1000);
    if (beforeSeq !== undefined) query.beforeSeq = beforeSeq;
    await ctx.audit.settled(); // this node's latest accesses, committed behind their answers
    const rows = await findAuditRows(ctx.store.db, query, { limit: count + 1, order: 'newest' });
    const page = rows.slice(0, count);
    await record(request, 'audit-search', 'success', { ...(query.patient ? { patient: query.patient } : {}), detail: { filters: Object.keys(q).sort(), results: page.length } });

    const base = `${ctx.config.publicUrl}/api/audit/events`;
    const params = (before?: number) =>
      new URLSearchParams({ ...(Object.fromEntries(Object.entries(q).filter(([k, v]) => v !== undefined && k !== 'before' && k !== '_count')) as Record<string, string>), _count: String(count), ...(before ? { before: String(before) } : {}) });
    const bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      link: [{ relation: 'self', url: `${base}?${params(beforeSeq)}` }, ...(rows.length > count ? [{ relation: 'next', url: `${base}?${params(page.at(-1)!.seq)}` }] : [])],
      entry: page.map((row) => ({ resource: toAuditEvent(row), search: { mode: 'match' } })),
    };
    return reply.header('Cache-Control', 'no-store').type('application/fhir+json; charset=utf-8').send(bundle);
  });

  app.get('/api/audit/export', { schema: { querystring: exportQuery } }, async (request, reply) => {
    await requireAuditor(request, 'audit-export');
    const q = request.query as { from?: string; to?: string };
    const window = timeWindow(q.from, q.to);
    // Recorded before the first byte leaves: an export that starts is on the trail even if the transfer breaks.
    await record(request, 'audit-export', 'success', { detail: { ...(q.from ? { from: q.from } : {}), ...(q.to ? { to: q.to } : {}) } });
    await ctx.audit.settled(); // the export includes this node's latest entries, its own included
    const db = ctx.store.db;
    async function* lines(): AsyncGenerator<string> {
      let afterSeq = 0;
      for (;;) {
        const rows = await findAuditRows(db, { ...window, afterSeq }, { limit: EXPORT_PAGE, order: 'oldest' });
        if (rows.length === 0) return;
        yield rows.map((row) => `${JSON.stringify(toAuditEvent(row))}\n`).join('');
        afterSeq = rows.at(-1)!.seq;
        if (rows.length < EXPORT_PAGE) return;
      }
    }
    const day = new Date().toISOString().slice(0, 10);
    return reply
      .header('Cache-Control', 'no-store')
      .header('Content-Disposition', `attachment; filename="audit-${day}.ndjson"`)
      .type('application/fhir+ndjson')
      .send(Readable.from(lines()));
  });
}

function patientRef(value: string): string {
  const id = value.startsWith('Patient/') ? value.slice('Patient/'.length) : value;
  if (!UUID_RE.test(id)) throw badRequest('patient must be a Patient id or Patient/<id>', 'patient');
  return `Patient/${id.toLowerCase()}`;
}

/** A user is an actor ref as the trail writes it; an account id stands for the account and the FHIR resource it is linked to. */
async function actorRefs(ctx: AppContext, user: string): Promise<string[]> {
  if (/[\u0000-\u001f\u007f]/.test(user)) throw badRequest('user must be printable', 'user');
  if (!UUID_RE.test(user)) return [user];
  const account = await ctx.store.db.selectFrom('account').select(['id', 'fhir_ref']).where('id', '=', user.toLowerCase()).executeTakeFirst();
  return [`account:${user.toLowerCase()}`, ...(account?.fhir_ref ? [account.fhir_ref] : [])];
}

function kinds(value: string): string[] {
  const list = value.split(',');
  if (list.length > 30 || list.some((k) => !/^[a-z][a-z-]{0,39}$/.test(k))) throw badRequest('kind must be a comma-separated list of audit actions such as read,search,sign-in-failed', 'kind');
  return list;
}
