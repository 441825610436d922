import { ApiError } from '../app/api.js';
import { navigate } from '../app/navigation.js';

/**
 * The clinic's calls to the FHIR API and to the application API where it needs more than
 * app/api.ts offers (PUT with If-Match, binary uploads). Same origin, session cookie, CSRF
 * header on changes; an expired session sends the clinician to sign-in and back here.
 */

let csrf: Promise<string | undefined> | undefined;

/** The session's CSRF token, asked once per page. */
function csrfToken(): Promise<string | undefined> {
  csrf ??= fetch('/api/auth/session', { credentials: 'same-origin', headers: { accept: 'application/json' } })
    .then((res) => (res.ok ? (res.json() as Promise<{ csrfToken?: string }>) : {}))
    .then((body) => (body as { csrfToken?: string }).csrfToken)
    .catch(() => undefined);
  return csrf;
}

export function backToSignIn(): void {
  navigate(`/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`, true);
}

/** A FHIR refusal's own words (OperationOutcome diagnostics), for the technical detail line. */
export class FhirCallError extends ApiError {
  constructor(
    status: number,
    readonly diagnostics: string | undefined,
  ) {
    super(status, undefined);
  }
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

export async function call<T>(method: Method, path: string, options: { body?: unknown; raw?: Blob; contentType?: string; ifMatch?: string } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/fhir+json, application/json' };
  if (options.body !== undefined) headers['content-type'] = options.contentType ?? 'application/fhir+json';
  if (options.raw) headers['content-type'] = options.contentType ?? (options.raw.type || 'application/octet-stream');
  if (options.ifMatch) headers['if-match'] = options.ifMatch;
  if (method !== 'GET') {
    const token = await csrfToken();
    if (token) headers['x-csrf-token'] = token;
  }
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : options.raw ? { body: options.raw } : {}),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (res.status === 401) {
    backToSignIn();
  }
  if (!res.ok) {
    const outcome = json as { issue?: { diagnostics?: string }[]; message?: string } | undefined;
    throw new FhirCallError(res.status, outcome?.issue?.[0]?.diagnostics ?? outcome?.message);
  }
  return json as T;
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
