import { sql, type Kysely, type SqlBool } from 'kysely';
import type { ResourceTypeDef } from '../resource-types.js';
import { escapeLike } from './normalize.js';
import type { Filter, SortKey } from './search-request.js';

export type StringFilter = Extract<Filter, { kind: 'string' }>;

/** The search_string rows of this type whose value matches the filter (index search_string_recent, migration 0021). */
function matchingStrings(db: Kysely<any>, def: ResourceTypeDef, filter: StringFilter) {
  return db
    .selectFrom('search_string')
    .where('resource_type', '=', def.type)
    .where('code', '=', filter.code)
    .where((eb: any) =>
      eb.or(
        filter.anyOf.map((v) => {
          if (filter.match === 'exact') return eb('value', '=', v);
          if (filter.match === 'contains') return eb('value', 'like', `%${escapeLike(v)}%`);
          // A prefix as the range of the index's own byte order (text_pattern_ops): unlike `like 'v%'`,
          // it keeps its index bounds with the value as a parameter, so the statement can be prepared.
          // Search strings are normalised text: none holds U+10FFFF, the highest code point.
          return sql<SqlBool>`(value ~>=~ ${v} and value ~<~ ${`${v}\u{10FFFF}`})`;
        }),
      ),
    );
}

/** The distinct ids of resources whose search strings match, from the index alone. */
export function matchedIds(db: Kysely<any>, def: ResourceTypeDef, filter: StringFilter) {
  return matchingStrings(db, def, filter).select('resource_id').distinct();
}

/** True when a search's order is last_updated alone (the default, newest first): matchedByRecency() can order it. */
export function ordersByRecency(sort: readonly SortKey[]): boolean {
  return sort.length === 1 && sort[0]!.column === 'last_updated';
}

/**
 * Each matching resource once, with its last_updated (`recent`) as search_string holds it, in the
 * order of `sort` then id: from the index alone. The caller joins the resource rows on
 * resource_id and orders by (recent, resource_id) again; the ordering inside lets PostgreSQL walk
 * these sorted ids with a nested loop and stop at the page, so only the page's resource rows are
 * read (the others' order needs no resource row at all).
 */
export function matchedByRecency(db: Kysely<any>, def: ResourceTypeDef, filter: StringFilter, sort: SortKey) {
  return matchingStrings(db, def, filter)
    .select(['resource_id', sql<Date>`max(last_updated)`.as('recent')])
    .groupBy('resource_id')
    .orderBy(recencyOrder(sql.ref('recent'), sort.descending))
    .orderBy('resource_id');
}

/** `recent desc nulls last` or `recent asc nulls last`: as the search orders by the resource's own last_updated. */
export function recencyOrder(column: ReturnType<typeof sql.ref>, descending: boolean) {
  return descending ? sql`${column} desc nulls last` : sql`${column} asc nulls last`;
}
