import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { badRequest } from '../records/fhir/outcomes.js';
import { parseDateRange } from '../records/search/date-range.js';
import type { AuditRow } from './audit-event-fhir.js';

/** A filter over the audit trail; every field narrows. */
export interface AuditQuery {
  /** `Patient/<id>` whose record was touched. */
  patient?: string;
  /** Actor refs (`Practitioner/…`, `account:…`, `client:…`, `admin-token`…): any of them. */
  actors?: string[];
  excludeActors?: string[];
  /** With excludeActors: still keep their entries made through an app (`detail.client`), e.g. a patient's own app. */
  keepThroughClient?: boolean;
  actions?: readonly string[];
  outcome?: string;
  /** recorded ≥ from and < to. */
  from?: Date;
  to?: Date;
  /** Keyset paging: seq > afterSeq (oldest first, exports) or seq < beforeSeq (newest first, pages). */
  afterSeq?: number;
  beforeSeq?: number;
}

const COLUMNS = ['seq', 'recorded', 'actor', 'action', 'resource_type', 'resource_id', 'patient', 'outcome', 'source', 'request_id', 'detail'] as const;

export async function findAuditRows(db: Kysely<Database>, q: AuditQuery, page: { limit: number; order: 'newest' | 'oldest' }): Promise<AuditRow[]> {
  let query = db.selectFrom('audit_event').select([...COLUMNS]);
  // An entry names its patient in `patient`, or several in `detail.patients` (one search, many patients).
  if (q.patient !== undefined) {
    const patient = q.patient;
    query = query.where((eb) => eb.or([eb('patient', '=', patient), sql<boolean>`(detail ? 'patients' and detail -> 'patients' ? ${patient})`]));
  }
  if (q.actors !== undefined) query = query.where('actor', 'in', q.actors.length ? q.actors : ['']);
  if (q.excludeActors?.length) {
    const excluded = q.excludeActors;
    query = q.keepThroughClient ? query.where((eb) => eb.or([eb('actor', 'not in', excluded), sql<boolean>`detail ? 'client'`])) : query.where('actor', 'not in', excluded);
  }
  if (q.actions !== undefined) query = query.where('action', 'in', q.actions.length ? [...q.actions] : ['']);
  if (q.outcome !== undefined) query = query.where('outcome', '=', q.outcome);
  if (q.from) query = query.where('recorded', '>=', q.from);
  if (q.to) query = query.where('recorded', '<', q.to);
  if (q.afterSeq !== undefined) query = query.where('seq', '>', q.afterSeq);
  if (q.beforeSeq !== undefined) query = query.where('seq', '<', q.beforeSeq);
  query = query.orderBy('seq', page.order === 'newest' ? 'desc' : 'asc').limit(page.limit);
  const rows = await query.execute();
  return rows.map((r) => ({ ...r, seq: Number(r.seq) }));
}

/** `from` and `to` as FHIR dates of any precision: from the start of `from` to the end of `to`. */
export function timeWindow(from: string | undefined, to: string | undefined): { from?: Date; to?: Date } {
  const parse = (value: string, name: string) => {
    const range = parseDateRange(value);
    if (!range) throw badRequest(`${name} must be a date (2026-03-01) or a date and time (2026-03-01T10:00:00Z)`, name);
    return range;
  };
  const window: { from?: Date; to?: Date } = {};
  if (from !== undefined) window.from = parse(from, 'from').low;
  if (to !== undefined) window.to = parse(to, 'to').high;
  if (window.from && window.to && window.from >= window.to) throw badRequest('from must be before to', 'from');
  return window;
}

/**
 * Paging parameters: `_count` (1–max, default given) and `before`, the position after which the
 * previous page ended. A cursor, not an offset: the trail grows while someone pages through it
 * (reading it adds entries), and an offset would then show entries twice.
 */
export function paging(count: string | undefined, before: string | undefined, defaultCount: number, maxCount: number): { count: number; beforeSeq?: number } {
  if (count !== undefined && (!/^\d{1,4}$/.test(count) || Number(count) < 1 || Number(count) > maxCount)) throw badRequest(`_count must be a whole number from 1 to ${maxCount}`, '_count');
  if (before !== undefined && !/^[1-9]\d{0,15}$/.test(before)) throw badRequest('before must be the position given in the next link', 'before');
  return { count: count === undefined ? defaultCount : Number(count), ...(before !== undefined ? { beforeSeq: Number(before) } : {}) };
}
