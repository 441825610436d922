import { ApiError, request, type Method, type SendOptions } from '../app/api.js';
import { sessionEnded } from './session-end.js';

/**
 * The clinic's calls to the FHIR API and the application API (app/api.ts underneath): an
 * expired session sends the clinician to sign-in and back here, or, while the page holds unsaved
 * typing, signs them in again in place (session-end.ts).
 */
export async function call<T>(method: Method, path: string, options: SendOptions & { ifMatch?: string } = {}): Promise<T> {
  const { ifMatch, ...rest } = options;
  try {
    return await request<T>(method, path, ifMatch ? { ...rest, headers: { ...rest.headers, 'if-match': ifMatch } } : rest);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) sessionEnded();
    throw err;
  }
}

export interface Resource {
  resourceType: string;
  id?: string;
  meta?: { versionId?: string; lastUpdated?: string };
  [key: string]: unknown;
}

export interface Bundle {
  entry?: { resource: Resource; search?: { mode?: string } }[];
  total?: number;
}

export const fhirGet = <T = Resource>(path: string) => call<T>('GET', `/fhir/R4/${path}`);
export const fhirCreate = <T extends Resource = Resource>(resource: Resource) => call<T>('POST', `/fhir/R4/${resource.resourceType}`, { body: resource });
export const fhirUpdate = <T extends Resource = Resource>(resource: Resource) =>
  call<T>('PUT', `/fhir/R4/${resource.resourceType}/${resource.id}`, { body: resource, ...(resource.meta?.versionId ? { ifMatch: `W/"${resource.meta.versionId}"` } : {}) });

/** The resources a search matched (not those it included), and the included ones by `Type/id`. */
export async function search<T = Resource>(query: string): Promise<{ matches: T[]; included: Map<string, Resource> }> {
  const bundle = await fhirGet<Bundle>(query);
  const matches: T[] = [];
  const included = new Map<string, Resource>();
  for (const entry of bundle.entry ?? []) {
    if (entry.search?.mode === 'include') included.set(`${entry.resource.resourceType}/${entry.resource.id}`, entry.resource);
    else matches.push(entry.resource as T);
  }
  return { matches, included };
}

/** A person's name as people read it: given names then family name. */
export function personName(resource: Resource | undefined): string {
  const names = (resource?.name as { text?: string; given?: string[]; family?: string; use?: string }[] | undefined) ?? [];
  const name = names.find((n) => n.use === 'official') ?? names[0];
  if (!name) return '';
  return name.text ?? [...(name.given ?? []), name.family ?? ''].join(' ').trim();
}

/** The text of a CodeableConcept as a clinician would read it. */
export function conceptText(concept: unknown): string {
  const c = concept as { text?: string; coding?: { display?: string; code?: string }[] } | undefined;
  return c?.text ?? c?.coding?.find((x) => x.display)?.display ?? c?.coding?.[0]?.code ?? '';
}
