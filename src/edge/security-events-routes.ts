import type { FastifyInstance, FastifyRequest } from 'fastify';
import { sql } from 'kysely';
import { isAdministrator } from '../auth/administrator.js';
import { findAuditRows, timeWindow } from '../audit/audit-search.js';
import { badRequest, forbidden } from '../records/fhir/outcomes.js';
import type { AppContext } from '../server/app-context.js';

/** What the admin console calls a security event: each is an action the audit trail already records. */
export const SECURITY_EVENT_KINDS = ['shield-block', 'shield-ban', 'rate-limited', 'sign-in-failed', 'account-locked'] as const;
export type SecurityEventKind = (typeof SECURITY_EVENT_KINDS)[number];

/** Bucket widths the chart may use, smallest first; the smallest that keeps the chart under MAX_BUCKETS wins. */
const BUCKET_SECONDS = [300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400];
const MAX_BUCKETS = 60;
const DEFAULT_HOURS = 24;
const MAX_DAYS = 400;

const text = (max: number) => ({ type: 'string', minLength: 1, maxLength: max });
const eventsQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { from: text(40), to: text(40), kind: text(100), _count: { type: 'string', pattern: '^[0-9]{1,3}$' } },
};

export interface SecurityEvent {
  seq: number;
  at: string;
  kind: SecurityEventKind;
  outcome: string;
  /** Where from: the client address the node saw. */
  source: string | null;
  /** Who it concerned: an account's email when the trail names an account, else the trail's actor ref. */
  actor: string;
  /** Only the fields an administrator needs; a block never carries the refused request's content. */
  detail: Record<string, unknown>;
}

/**
 * `GET /api/admin/security/events`: the security officer's view of attacks and abuse — shield
 * blocks and bans, failed sign-ins, lockouts — over a time window: counts per time bucket (for
 * the chart), the newest events with where they came from, the sources seen most, the bans in
 * force (farm-wide, from the trail) and this node's shield counters. Administrators only; each
 * reading is on the audit trail like any other reading of it.
 */
export async function securityEventsRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const db = ctx.store.db;
  const recordReading = (request: FastifyRequest, outcome: 'success' | 'denied', detail: Record<string, unknown>) =>
    ctx.audit.record({ actor: request.actor?.ref ?? 'anonymous', action: 'audit-search', outcome, source: request.ip, requestId: request.id, detail: { view: 'security-events', ...detail } });

  app.get('/api/admin/security/events', { schema: { querystring: eventsQuery } }, async (request, reply) => {
    if (!isAdministrator(request)) {
      await recordReading(request, 'denied', {});
      throw forbidden('only administrators see the security events');
    }
    const q = request.query as { from?: string; to?: string; kind?: string; _count?: string };
    const kinds = parseKinds(q.kind);
    const now = new Date();
    const window = timeWindow(q.from, q.to);
    const to = window.to && window.to < now ? window.to : now;
    const from = window.from ?? new Date(to.getTime() - DEFAULT_HOURS * 3600_000);
    if (from >= to) throw badRequest('from must be before to (and not in the future)', 'from');
    if (to.getTime() - from.getTime() > MAX_DAYS * 86400_000) throw badRequest(`the window may span at most ${MAX_DAYS} days`, 'from');
    const count = q._count === undefined ? 100 : Number(q._count);
    if (count < 1 || count > 500) throw badRequest('_count must be a whole number from 1 to 500', '_count');

    const bucketSeconds = BUCKET_SECONDS.find((s) => (to.getTime() - from.getTime()) / 1000 / s <= MAX_BUCKETS) ?? BUCKET_SECONDS.at(-1)!;
    const firstBucket = Math.floor(from.getTime() / 1000 / bucketSeconds) * bucketSeconds;

    // Counted by the database, bucket by bucket: an attack can leave hundreds of thousands of rows.
    const grouped = (
      await sql<{ bucket: string | number; action: string; n: number }>`
        select floor(extract(epoch from recorded) / ${bucketSeconds})::bigint * ${bucketSeconds} as bucket, action, count(*)::int as n
          from audit_event
         where recorded >= ${from} and recorded < ${to} and action in (${sql.join(kinds)})
         group by 1, 2`.execute(db)
    ).rows;
    const buckets: { start: string; counts: Record<string, number> }[] = [];
    const index = new Map<number, Record<string, number>>();
    for (let t = firstBucket; t < to.getTime() / 1000; t += bucketSeconds) {
      const counts = Object.fromEntries(kinds.map((k) => [k, 0]));
      index.set(t, counts);
      buckets.push({ start: new Date(t * 1000).toISOString(), counts });
    }
    const totals: Record<string, number> = Object.fromEntries(kinds.map((k) => [k, 0]));
    for (const row of grouped) {
      const counts = index.get(Number(row.bucket));
      if (counts) counts[row.action] = (counts[row.action] ?? 0) + row.n;
      totals[row.action] = (totals[row.action] ?? 0) + row.n;
    }

    const topSources = (
      await sql<{ source: string; n: number }>`
        select source, count(*)::int as n from audit_event
         where recorded >= ${from} and recorded < ${to} and action in (${sql.join(kinds)}) and source is not null
         group by source order by n desc, source limit 10`.execute(db)
    ).rows.map((r) => ({ source: r.source, events: r.n }));

    await ctx.audit.settled(); // this node's latest events, committed behind their answers
    const rows = await findAuditRows(db, { actions: kinds, from, to }, { limit: count, order: 'newest' });
    const emails = await accountEmails(ctx, rows.map((r) => r.actor));
    const events: SecurityEvent[] = rows.map((r) => ({
      seq: r.seq,
      at: new Date(r.recorded).toISOString(),
      kind: r.action as SecurityEventKind,
      outcome: r.outcome,
      source: r.source ?? null,
      actor: emails.get(r.actor) ?? r.actor,
      detail: eventDetail(r.action, r.detail),
    }));

    // Bans in force across the farm: the trail has every node's bans, the ban store only says how many.
    const bans = (
      await sql<{ source: string | null; until: string; recorded: Date | string }>`
        select source, detail->>'until' as until, recorded from audit_event
         where action = 'shield-ban' and recorded > ${new Date(now.getTime() - 2 * 86400_000)}
         order by seq desc limit 500`.execute(db)
    ).rows;
    const activeBans = new Map<string, { source: string; since: string; until: string }>();
    for (const ban of bans) {
      if (!ban.source || activeBans.has(ban.source) || !(Date.parse(ban.until) > now.getTime())) continue;
      activeBans.set(ban.source, { source: ban.source, since: new Date(ban.recorded).toISOString(), until: new Date(ban.until).toISOString() });
    }

    const stats = app.hasDecorator('shieldStats') ? app.shieldStats : undefined;
    const shield = {
      enabled: ctx.config.shield === 'on',
      node: ctx.nodeId,
      blocksByFamily: stats ? Object.fromEntries([...stats.byFamily()].filter(([, n]) => n > 0)) : {},
      activeBans: stats ? ((await stats.activeBans()) ?? null) : null,
    };

    await recordReading(request, 'success', { from: from.toISOString(), to: to.toISOString(), results: events.length });
    return reply.header('Cache-Control', 'no-store').send({
      window: { from: from.toISOString(), to: to.toISOString(), bucketSeconds },
      kinds,
      totals,
      buckets,
      events,
      topSources,
      activeBans: [...activeBans.values()],
      shield,
    });
  });
}

function parseKinds(value: string | undefined): SecurityEventKind[] {
  if (value === undefined) return [...SECURITY_EVENT_KINDS];
  const list = value.split(',');
  const unknown = list.filter((k) => !(SECURITY_EVENT_KINDS as readonly string[]).includes(k));
  if (unknown.length || list.length === 0) throw badRequest(`kind must be a comma-separated list of ${SECURITY_EVENT_KINDS.join(', ')}`, 'kind');
  return [...new Set(list)] as SecurityEventKind[];
}

/** The event's own facts, picked field by field: rule ids and families of a block, never its payload. */
function eventDetail(action: string, raw: unknown): Record<string, unknown> {
  const detail = (typeof raw === 'string' ? safeJson(raw) : raw) as Record<string, unknown> | null;
  if (!detail || typeof detail !== 'object') return {};
  const keep: Record<string, readonly string[]> = {
    'shield-block': ['route', 'method', 'families', 'rules', 'score', 'locations'],
    'shield-ban': ['until'],
    'rate-limited': ['bucket', 'route', 'method', 'limit', 'windowSeconds'],
    'sign-in-failed': ['reason', 'failures', 'reauthentication'],
    'account-locked': ['minutes'],
  };
  return Object.fromEntries((keep[action] ?? []).filter((k) => detail[k] !== undefined).map((k) => [k, detail[k]]));
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** `account:<id>` refs of the trail, shown as the account's email to the administrator. */
async function accountEmails(ctx: AppContext, actors: string[]): Promise<Map<string, string>> {
  const ids = [...new Set(actors.filter((a) => a.startsWith('account:')).map((a) => a.slice('account:'.length)))].filter((id) => /^[0-9a-f-]{36}$/.test(id));
  if (ids.length === 0) return new Map();
  const rows = await ctx.store.db.selectFrom('account').select(['id', 'email']).where('id', 'in', ids).execute();
  return new Map(rows.map((r) => [`account:${r.id}`, r.email]));
}
