import type { FhirResource } from '../resource-types.js';
import type { JsonSearchResult, SearchResult } from '../repository.js';
import type { RawQuery, SearchRequest } from '../search/search-request.js';

/** searchset Bundle with self/next/previous links that repeat the query with another _offset. */
export function searchBundle(baseUrl: string, type: string, query: RawQuery, request: SearchRequest, result: SearchResult) {
  const link = (offset: number) => {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (key === '_offset' || value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) params.append(key, v);
    }
    if (offset > 0) params.set('_offset', String(offset));
    const qs = params.toString();
    return `${baseUrl}/${type}${qs ? `?${qs}` : ''}`;
  };
  const links = [{ relation: 'self', url: link(request.offset) }];
  if (request.offset > 0) links.push({ relation: 'first', url: link(0) }, { relation: 'previous', url: link(Math.max(0, request.offset - request.count)) });
  if (result.hasMore) links.push({ relation: 'next', url: link(request.offset + request.count) });
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    ...(result.total !== undefined ? { total: result.total } : {}),
    link: links,
    entry: [
      ...result.resources.map((r) => entry(baseUrl, r, 'match')),
      ...result.included.map((r) => entry(baseUrl, r, 'include')),
      ...(result.warnings?.length ? [{ resource: { resourceType: 'OperationOutcome', issue: result.warnings.map((w) => ({ severity: 'warning', code: 'too-costly', diagnostics: w })) }, search: { mode: 'outcome' } }] : []),
    ],
  };
}

/**
 * searchBundle() as JSON text, with the matches spliced in as the JSON stored for them: the
 * page of a search goes out without being parsed and serialised again (Repository.searchJson).
 */
export function searchBundleJson(baseUrl: string, type: string, query: RawQuery, request: SearchRequest, result: JsonSearchResult): string {
  const { entry: others, ...head } = searchBundle(baseUrl, type, query, request, { ...result, resources: [] });
  const entries = [
    ...result.resources.map((r) => `{"fullUrl":${JSON.stringify(`${baseUrl}/${r.resourceType}/${r.id}`)},"resource":${r.json},"search":{"mode":"match"}}`),
    ...others.map((e) => JSON.stringify(e)),
  ];
  const headJson = JSON.stringify(head);
  return `${headJson.slice(0, -1)},"entry":[${entries.join(',')}]}`;
}

export function historyBundle(baseUrl: string, type: string, id: string, versions: { resource: FhirResource; deleted: boolean; versionId: number; lastUpdated: string }[], total: number) {
  return {
    resourceType: 'Bundle',
    type: 'history',
    total,
    link: [{ relation: 'self', url: `${baseUrl}/${type}/${id}/_history` }],
    entry: versions.map((v) =>
      v.deleted
        ? { fullUrl: `${baseUrl}/${type}/${id}`, request: { method: 'DELETE', url: `${type}/${id}` }, response: { status: '204', etag: `W/"${v.versionId}"`, lastModified: v.lastUpdated } }
        : {
            fullUrl: `${baseUrl}/${type}/${id}`,
            resource: v.resource,
            request: { method: v.versionId === 1 ? 'POST' : 'PUT', url: v.versionId === 1 ? type : `${type}/${id}` },
            response: { status: v.versionId === 1 ? '201' : '200', etag: `W/"${v.versionId}"`, lastModified: v.lastUpdated },
          },
    ),
  };
}

function entry(baseUrl: string, resource: FhirResource, mode: 'match' | 'include') {
  return { fullUrl: `${baseUrl}/${resource.resourceType}/${resource.id}`, resource, search: { mode } };
}
