import { randomUUID } from 'node:crypto';
import { sql, type Expression, type Kysely, type SqlBool, type Transaction } from 'kysely';
import type { Actor, RequestOrigin } from '../auth/actor.js';
import type { AuditAction, AuditEntry, AuditLog } from '../audit/audit-log.js';
import type { Database } from '../db/schema.js';
import { ResourceValidationError, validateResource } from './fhir/validation.js';
import { badRequest, forbidden, gone, invalidResource, methodNotAllowed, notFound, preconditionFailed, unsupported } from './fhir/outcomes.js';
import { resourceTypeDef, type FhirResource, type ResourceTypeDef } from './resource-types.js';
import { parseDateRange, sqlTimestamp } from './search/date-range.js';
import { escapeLike, normalizeSearchString } from './search/normalize.js';
import { isResourceId, type Filter, type SearchRequest } from './search/search-request.js';
import { applyAfterWrite, checkBeforeWrite } from './write-rules.js';

export interface SearchResult {
  resources: FhirResource[];
  included: FhirResource[];
  total?: number;
  hasMore: boolean;
}

/** What the server adds to every stored resource. */
export type Stored<T> = T & { id: string; meta: { versionId: string; lastUpdated: string } };

interface StoredRow {
  id: string;
  version_id: number;
  deleted: boolean;
  content: FhirResource;
  compartments: string[];
}

/**
 * The clinical record as seen by one actor. Every read and write of health data passes
 * through here: this is where access is narrowed to the actor's scope, where writes are
 * validated and versioned, and where each access is audited. Ask for a repository from
 * RecordService.forActor(); there is no other way in.
 */
export class Repository {
  private readonly db: Kysely<any>;

  constructor(db: Kysely<Database>, private readonly audit: AuditLog, readonly actor: Actor, private readonly origin: RequestOrigin) {
    this.db = db as unknown as Kysely<any>;
  }

  /**
   * `options.id` lets a capability that stores more than the resource (a document's sealed
   * bytes) know the id up front; `alsoInTransaction` commits its rows with the resource or not at all.
   */
  async create<T extends FhirResource>(input: T, options: { id?: string; alsoInTransaction?: (tx: Transaction<Database>) => Promise<void> } = {}): Promise<Stored<T>> {
    const def = this.typeDef(input.resourceType);
    const resource = this.validated(input, def.type);
    const now = new Date().toISOString();
    const stored = { ...resource, id: options.id ?? randomUUID(), meta: { ...(resource.meta ?? {}), versionId: '1', lastUpdated: now } } as Stored<T>;
    this.assertWritable(def, stored);
    await this.db.transaction().execute(async (tx) => {
      await checkBeforeWrite(tx, stored, undefined);
      await tx.insertInto(def.table).values({ ...this.indexColumns(def, stored), id: stored.id, version_id: 1, last_updated: now, content: JSON.stringify(stored) }).execute();
      await this.writeHistoryAndStrings(tx, def, stored, now);
      await applyAfterWrite(tx, stored);
      await options.alsoInTransaction?.(tx as unknown as Transaction<Database>);
      await this.audit.recordIn(tx as unknown as Transaction<Database>, [this.entry('create', def, stored)]);
    });
    return stored;
  }

  /** Replace a resource. `expectedVersion` is the version the caller last saw: a stale one is refused. */
  async update<T extends FhirResource>(input: T, expectedVersion: string): Promise<Stored<T>> {
    const def = this.typeDef(input.resourceType);
    const resource = this.validated(input, def.type);
    const id = resource.id;
    if (!id || !isResourceId(id)) throw notFound(`${def.type}/${id ?? ''} not found`);
    return this.db.transaction().execute(async (tx) => {
      const current = await this.lockCurrent(tx, def, id);
      this.assertWritable(def, current.content);
      if (String(current.version_id) !== expectedVersion) {
        throw preconditionFailed(`${def.type}/${id} is at version ${current.version_id}, not ${expectedVersion}: reload it and apply your change again`);
      }
      const version = current.version_id + 1;
      const now = new Date().toISOString();
      const stored = { ...resource, id, meta: { ...(resource.meta ?? {}), versionId: String(version), lastUpdated: now } } as Stored<T>;
      this.assertWritable(def, stored);
      await checkBeforeWrite(tx, stored, current.content);
      await tx
        .updateTable(def.table)
        .set({ ...this.indexColumns(def, stored), version_id: version, last_updated: now, content: JSON.stringify(stored) })
        .where('id', '=', id)
        .execute();
      await tx.deleteFrom('search_string').where('resource_id', '=', id).execute();
      await this.writeHistoryAndStrings(tx, def, stored, now);
      await applyAfterWrite(tx, stored);
      await this.audit.recordIn(tx, [this.entry('update', def, stored)]);
      return stored;
    });
  }

  async delete(type: string, id: string): Promise<void> {
    const def = this.typeDef(type);
    if (!isResourceId(id)) throw notFound(`${type}/${id} not found`);
    await this.db.transaction().execute(async (tx) => {
      const current = await this.lockCurrent(tx, def, id);
      this.assertWritable(def, current.content);
      const refusal = def.deleteRefusal(current.content);
      if (refusal) throw methodNotAllowed(`${type}/${id} can not be deleted: ${refusal}`);
      const version = current.version_id + 1;
      const now = new Date().toISOString();
      await tx.updateTable(def.table).set({ deleted: true, version_id: version, last_updated: now }).where('id', '=', id).execute();
      await tx.deleteFrom('search_string').where('resource_id', '=', id).execute();
      await tx.insertInto('resource_history').values({ resource_type: type, id, version_id: version, last_updated: now, deleted: true, content: JSON.stringify(current.content) }).execute();
      await this.audit.recordIn(tx, [this.entry('delete', def, current.content)]);
    });
  }

  async read(type: string, id: string): Promise<FhirResource> {
    const def = this.typeDef(type);
    const row = await this.visibleRow(def, id);
    if (row.deleted) throw gone(`${type}/${id} was deleted`);
    await this.audit.record(this.entry('read', def, row.content, row.compartments));
    return row.content;
  }

  async vread(type: string, id: string, versionId: string): Promise<FhirResource> {
    const def = this.typeDef(type);
    const current = await this.visibleRow(def, id);
    if (!/^\d{1,9}$/.test(versionId)) throw notFound(`${type}/${id}/_history/${versionId} not found`);
    const version = await this.db
      .selectFrom('resource_history')
      .select(['content', 'deleted'])
      .where('resource_type', '=', type)
      .where('id', '=', id)
      .where('version_id', '=', Number(versionId))
      .executeTakeFirst();
    if (!version) throw notFound(`${type}/${id}/_history/${versionId} not found`);
    if (version.deleted) throw gone(`${type}/${id} was deleted in version ${versionId}`);
    await this.audit.record(this.entry('vread', def, current.content, current.compartments));
    return version.content as FhirResource;
  }

  async history(type: string, id: string, count: number, offset: number): Promise<{ versions: { resource: FhirResource; deleted: boolean; versionId: number; lastUpdated: string }[]; total: number }> {
    const def = this.typeDef(type);
    const current = await this.visibleRow(def, id);
    const rows = await this.db
      .selectFrom('resource_history')
      .select(['content', 'deleted', 'version_id', 'last_updated'])
      .where('resource_type', '=', type)
      .where('id', '=', id)
      .orderBy('version_id', 'desc')
      .limit(count)
      .offset(offset)
      .execute();
    await this.audit.record(this.entry('history', def, current.content, current.compartments));
    return {
      versions: rows.map((r: any) => ({ resource: r.content, deleted: r.deleted, versionId: r.version_id, lastUpdated: new Date(r.last_updated).toISOString() })),
      total: current.version_id,
    };
  }

  async search(request: SearchRequest): Promise<SearchResult> {
    const { def } = request;
    const where = (eb: any) => eb.and([eb('deleted', '=', false), ...this.scopeConditions(def), ...request.filters.map((f) => this.condition(def, f))]);
    // The page is chosen on ids and sort keys alone; only its rows' JSON is fetched afterwards, so
    // sorting many matches never drags their documents along.
    let query = this.db.selectFrom(def.table).select(['id', 'compartments']).where(where);
    for (const key of request.sort) query = query.orderBy(key.descending ? sql`${sql.ref(key.column)} desc nulls last` : sql`${sql.ref(key.column)} asc nulls last`);
    query = query.orderBy('id');
    const pageIds = request.count === 0 ? [] : ((await query.limit(request.count + 1).offset(request.offset).execute()) as { id: string; compartments: string[] }[]);
    const hasMore = pageIds.length > request.count;
    const page = await this.contentsInOrder(def, pageIds.slice(0, request.count));
    const total = request.total
      ? Number(((await this.db.selectFrom(def.table).select((eb) => eb.fn.countAll().as('n')).where(where).executeTakeFirstOrThrow()) as { n: number }).n)
      : undefined;
    const included = await this.includes(request, page.map((r) => r.content));

    const seenPatients = new Set([...page, ...included.rows].flatMap((r) => r.compartments));
    const audits: AuditEntry[] = seenPatients.size > 0
      ? [...seenPatients].map((patient) => ({ ...this.entry('search', def), patient, detail: { results: page.length } }))
      : [{ ...this.entry('search', def), detail: { results: page.length } }];
    await Promise.all(audits.map((a) => this.audit.record(a)));

    return { resources: page.map((r) => r.content), included: included.rows.map((r) => r.content), ...(total !== undefined ? { total } : {}), hasMore };
  }

  /** Audit an access made outside the FHIR interactions (a document's bytes leaving, say). */
  async recordAccess(action: AuditAction, resource: FhirResource): Promise<void> {
    const def = this.typeDef(resource.resourceType);
    await this.audit.record(this.entry(action, def, resource));
  }

  private async contentsInOrder(def: ResourceTypeDef, rows: { id: string; compartments: string[] }[]): Promise<StoredRow[]> {
    if (rows.length === 0) return [];
    const found = (await this.db.selectFrom(def.table).select(['id', 'content']).where(sql<SqlBool>`id = any(${sql.val(rows.map((r) => r.id))}::uuid[])`).execute()) as { id: string; content: FhirResource }[];
    const byId = new Map(found.map((r) => [r.id, r.content]));
    return rows.flatMap((r) => {
      const content = byId.get(r.id);
      return content ? [{ ...r, content } as StoredRow] : [];
    });
  }

  // ---- access: the one place that decides what this actor may see and change ----

  private scopeConditions(def: ResourceTypeDef): Expression<SqlBool>[] {
    const scope = this.actor.scope;
    if (scope.kind === 'full' || !isCompartmentType(def)) return [];
    return [sql<SqlBool>`compartments && ${sql.val(scope.patients)}::text[]`];
  }

  private canSee(def: ResourceTypeDef, compartments: string[]): boolean {
    const scope = this.actor.scope;
    if (scope.kind === 'full' || !isCompartmentType(def)) return true;
    return compartments.some((c) => scope.patients.includes(c));
  }

  private assertWritable(def: ResourceTypeDef, _resource: FhirResource): void {
    // Identity will widen this (a patient booking their own appointment); until then only full scope writes.
    if (this.actor.scope.kind !== 'full') throw forbidden(`not allowed to change ${def.type} resources`);
  }

  // ---- storage details ----

  private typeDef(type: string): ResourceTypeDef {
    const def = resourceTypeDef(type);
    if (!def) throw unsupported(`resource type ${type} is not supported`);
    return def;
  }

  private validated<T extends FhirResource>(input: T, type: string): T {
    try {
      validateResource(input, type);
    } catch (err) {
      if (err instanceof ResourceValidationError) throw invalidResource(err.issues);
      throw err;
    }
    return input;
  }

  private async visibleRow(def: ResourceTypeDef, id: string): Promise<StoredRow> {
    const row = isResourceId(id)
      ? ((await this.db.selectFrom(def.table).select(['content', 'deleted', 'compartments', 'version_id']).where('id', '=', id).executeTakeFirst()) as StoredRow | undefined)
      : undefined;
    if (!row || !this.canSee(def, row.compartments)) throw notFound(`${def.type}/${id} not found`);
    return row;
  }

  private async lockCurrent(tx: Transaction<any>, def: ResourceTypeDef, id: string): Promise<StoredRow> {
    const row = (await tx.selectFrom(def.table).select(['id', 'version_id', 'deleted', 'content', 'compartments']).where('id', '=', id).forUpdate().executeTakeFirst()) as StoredRow | undefined;
    if (!row || !this.canSee(def, row.compartments)) throw notFound(`${def.type}/${id} not found`);
    if (row.deleted) throw gone(`${def.type}/${id} was deleted`);
    return row;
  }

  private indexColumns(def: ResourceTypeDef, resource: FhirResource): Record<string, unknown> {
    const columns: Record<string, unknown> = { compartments: def.compartment(resource) };
    for (const param of def.params) {
      const values = param.extract(resource);
      switch (param.type) {
        case 'token':
        case 'reference':
          columns[param.column] = [...new Set(values as string[])];
          break;
        case 'date': {
          const starts = (values as string[]).map((v) => parseDateRange(v)?.low ?? new Date(v)).filter((d) => !Number.isNaN(d.getTime()));
          columns[param.column] = starts.length ? sqlTimestamp(new Date(Math.min(...starts.map((d) => d.getTime())))) : null;
          break;
        }
        case 'string':
          columns[param.column] = values.length ? normalizeSearchString(String(values[0])) : null;
          break;
      }
    }
    return columns;
  }

  private async writeHistoryAndStrings(tx: Transaction<any>, def: ResourceTypeDef, resource: FhirResource, now: string): Promise<void> {
    await tx
      .insertInto('resource_history')
      .values({ resource_type: def.type, id: resource.id, version_id: Number(resource.meta!.versionId), last_updated: now, deleted: false, content: JSON.stringify(resource) })
      .execute();
    const strings = def.params
      .filter((p) => p.type === 'string')
      .flatMap((p) => [...new Set(p.extract(resource).flatMap((v) => searchableStrings(String(v))))].map((value) => ({ resource_type: def.type, resource_id: resource.id, code: p.code, value })));
    if (strings.length) await tx.insertInto('search_string').values(strings).execute();
  }

  private condition(def: ResourceTypeDef, filter: Filter): Expression<SqlBool> {
    switch (filter.kind) {
      case 'id': {
        const ids = filter.anyOf.filter(isResourceId);
        return ids.length ? sql<SqlBool>`id = any(${sql.val(ids)}::uuid[])` : sql<SqlBool>`false`;
      }
      case 'token':
      case 'reference':
        return sql<SqlBool>`${sql.ref(filter.column)} && ${sql.val(filter.anyOf)}::text[]`;
      case 'date':
        return sql<SqlBool>`(${sql.join(filter.anyOf.map(({ prefix, range }) => dateCondition(filter.column, prefix, range.low, range.high)), sql` or `)})`;
      case 'string': {
        const patterns = filter.anyOf.map((v) => (filter.match === 'exact' ? escapeLike(v) : filter.match === 'contains' ? `%${escapeLike(v)}%` : `${escapeLike(v)}%`));
        // `= any(array(…))` makes PostgreSQL probe the primary key with the matched ids instead of
        // hash-joining a scan of the whole table (measured: 18 ms → 3 ms for a prefix matching 8% of 10,000 patients).
        return sql<SqlBool>`id = any(array(select resource_id from search_string where resource_type = ${def.type} and code = ${filter.code} and (${sql.join(
          patterns.map((p) => sql`value like ${p}`),
          sql` or `,
        )})))`;
      }
    }
  }

  private async includes(request: SearchRequest, resources: FhirResource[]): Promise<{ rows: StoredRow[] }> {
    const rows: StoredRow[] = [];
    const seen = new Set<string>();
    for (const inc of request.include) {
      const refsByType = new Map<string, Set<string>>();
      for (const r of resources) {
        for (const ref of inc.param.extract(r) as string[]) {
          const [type, id] = ref.split('/');
          if (!type || !id || !inc.targets.includes(type) || !isResourceId(id) || seen.has(ref)) continue;
          seen.add(ref);
          if (!refsByType.has(type)) refsByType.set(type, new Set());
          refsByType.get(type)!.add(id);
        }
      }
      for (const [type, ids] of refsByType) {
        const def = resourceTypeDef(type)!;
        const found = (await this.db
          .selectFrom(def.table)
          .select(['content', 'compartments'])
          .where((eb: any) => eb.and([eb('deleted', '=', false), sql<SqlBool>`id = any(${sql.val([...ids])}::uuid[])`, ...this.scopeConditions(def)]))
          .execute()) as StoredRow[];
        rows.push(...found);
      }
    }
    return { rows };
  }

  private entry(action: AuditAction, def: ResourceTypeDef, resource?: FhirResource, compartments?: string[]): AuditEntry {
    const patient = (compartments ?? (resource ? def.compartment(resource) : []))[0];
    return {
      actor: this.actor.ref,
      action,
      resourceType: def.type,
      ...(resource?.id ? { resourceId: resource.id } : {}),
      ...(patient ? { patient } : {}),
      outcome: 'success',
      source: this.origin.source,
      requestId: this.origin.requestId,
    };
  }
}

/** The whole value and each of its words: "García Pérez" is found by "garc" and by "pérez". */
function searchableStrings(value: string): string[] {
  const whole = normalizeSearchString(value);
  if (!whole) return [];
  const words = whole.split(/[\s-]+/).filter((w) => w.length > 0 && w !== whole);
  return [whole, ...words];
}

function isCompartmentType(def: ResourceTypeDef): boolean {
  return def.type === 'Patient' || def.params.some((p) => p.code === 'patient');
}

function dateCondition(column: string, prefix: string, lowDate: Date, highDate: Date): Expression<SqlBool> {
  const c = sql.ref(column);
  const low = sqlTimestamp(lowDate);
  const high = sqlTimestamp(highDate);
  switch (prefix) {
    case 'eq':
      return sql<SqlBool>`(${c} >= ${low}::timestamptz and ${c} < ${high}::timestamptz)`;
    case 'ne':
      return sql<SqlBool>`(${c} < ${low}::timestamptz or ${c} >= ${high}::timestamptz)`;
    case 'lt':
    case 'eb':
      return sql<SqlBool>`${c} < ${low}::timestamptz`;
    case 'le':
      return sql<SqlBool>`${c} < ${high}::timestamptz`;
    case 'gt':
    case 'sa':
      return sql<SqlBool>`${c} >= ${high}::timestamptz`;
    case 'ge':
      return sql<SqlBool>`${c} >= ${low}::timestamptz`;
    default:
      throw badRequest(`unknown date prefix ${prefix}`);
  }
}
