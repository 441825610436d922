import { RESOURCE_TYPES } from '../../records/resource-types.js';
import { FhirError, operationOutcome } from '../../records/fhir/outcomes.js';
import type { Actor } from '../actor.js';

/**
 * SMART on FHIR resource scopes, the one place that decides what an OAuth client may do.
 *
 *   v1: <level>/<Type|*>.<read|write|*>      read = read + search, write = create + update + delete
 *   v2: <level>/<Type|*>.<cruds>             any of c r u d s, in that order ("rs", "cud", "cruds")
 *
 * `system/` scopes belong to the client credentials grant (no user, no launch context);
 * `patient/` and `user/` scopes to apps a user authorized (app-scopes.ts), whose token is then
 * also held to that user's access policy. v2 query constraints (`…Observation.rs?category=…`)
 * are refused rather than ignored.
 */
export type Interaction = 'c' | 'r' | 'u' | 'd' | 's';

export type ScopeLevel = 'system' | 'patient' | 'user';

export interface ScopeGrant {
  level: ScopeLevel;
  /** A resource type of the record, or `*` for every type. */
  type: string;
  interactions: ReadonlySet<Interaction>;
}

export class ScopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScopeError';
  }
}

const KNOWN_TYPES = new Set(RESOURCE_TYPES.map((d) => d.type));
const V1: Record<string, Interaction[]> = { read: ['r', 's'], write: ['c', 'u', 'd'], '*': ['c', 'r', 'u', 'd', 's'] };
const SCOPE_RE = /^(system|patient|user)\/(\*|[A-Za-z]{1,64})\.(read|write|\*|c?r?u?d?s?)$/;
const NAMES: Record<Interaction, string> = { c: 'create', r: 'read', u: 'update', d: 'delete', s: 'search' };
const MAX_SCOPES = 100;

/** The distinct words of a space-separated scope list. */
export function scopeWords(text: string): string[] {
  const scopes = [...new Set(text.split(/[ \t]+/).filter((s) => s.length > 0))];
  if (scopes.length > MAX_SCOPES) throw new ScopeError(`at most ${MAX_SCOPES} scopes`);
  return scopes;
}

/** Parses a space-separated list of system scopes; throws ScopeError with a one-line reason naming the bad scope. */
export function parseScopes(text: string): { scopes: string[]; grants: ScopeGrant[] } {
  const scopes = scopeWords(text);
  if (scopes.length === 0) throw new ScopeError('no scopes given: use e.g. "system/Patient.read system/Appointment.write"');
  return { scopes, grants: scopes.map((s) => parseResourceScope(s, ['system'])) };
}

/** One resource scope of one of `levels`; throws ScopeError naming it. */
export function parseResourceScope(scope: string, levels: readonly ScopeLevel[]): ScopeGrant {
  if (scope.includes('?')) throw new ScopeError(`scope "${short(scope)}": query constraints on scopes are not supported`);
  const level = /^(system|patient|user)\//.exec(scope)?.[1] as ScopeLevel | undefined;
  if (level && !levels.includes(level)) {
    throw new ScopeError(
      level === 'system'
        ? `scope "${short(scope)}": system/ scopes are for client credentials; an app acting for a user asks for patient/ or user/ scopes`
        : `scope "${short(scope)}": only system/ scopes exist for client credentials`,
    );
  }
  const m = SCOPE_RE.exec(scope);
  if (!m || m[3] === '') throw new ScopeError(`scope "${short(scope)}" is not ${levels.join('|')}/<ResourceType or *>.<read, write, * or cruds>`);
  const type = m[2]!;
  if (type !== '*' && !KNOWN_TYPES.has(type)) throw new ScopeError(`scope "${short(scope)}": ${type} is not a resource type of this server`);
  const interactions = V1[m[3]!] ?? ([...m[3]!] as Interaction[]);
  return { level: m[1] as ScopeLevel, type, interactions: new Set(interactions) };
}

/** Whether a word has the shape of a resource scope (any level), as opposed to launch/openid/… */
export const isResourceScope = (scope: string) => SCOPE_RE.test(scope);

const short = (scope: string) => (scope.length > 80 ? `${scope.slice(0, 80)}…` : scope).replace(/[^\x20-\x7e]/g, '?');

export function scopeAllows(grants: readonly ScopeGrant[], type: string, interaction: Interaction): boolean {
  return grants.some((g) => (g.type === '*' || g.type === type) && g.interactions.has(interaction));
}

/** Whether every permission the requested grants give is also given by the granted ones (scope narrowing). */
export function grantsCover(granted: readonly ScopeGrant[], requested: readonly ScopeGrant[]): boolean {
  // A requested `*` is covered only by a granted `*`: a list of every type today is not every type tomorrow.
  // A patient/ scope is covered by patient/ grants only, a user/ scope by user/ grants only.
  return requested.every((r) => {
    const same = granted.filter((g) => g.level === r.level);
    return [...r.interactions].every((i) => (r.type === '*' ? same.some((g) => g.type === '*' && g.interactions.has(i)) : scopeAllows(same, r.type, i)));
  });
}

// Access tokens carry their scope text; parsed grants are kept per distinct text.
const parsedCache = new Map<string, ScopeGrant[]>();

function grantsOf(scopes: readonly string[]): ScopeGrant[] {
  const key = scopes.join(' ');
  let grants = parsedCache.get(key);
  if (!grants) {
    grants = scopes.map((s) => parseResourceScope(s, ['system', 'patient', 'user']));
    if (parsedCache.size >= 1000) parsedCache.clear();
    parsedCache.set(key, grants);
  }
  return grants;
}

/** A 403 for a type or interaction outside the token's scopes; the FHIR layer audits it as a denied access. */
export class ScopeRefused extends FhirError {
  constructor(readonly resourceType: string, readonly interaction: Interaction, level: ScopeLevel = 'system') {
    const v1 = interaction === 'r' || interaction === 's' ? 'read' : 'write';
    super(403, operationOutcome('forbidden', `this access token's scopes do not allow ${NAMES[interaction]} of ${resourceType}: it needs ${level}/${resourceType}.${v1} (or ${level}/${resourceType}.${interaction})`));
  }
}

/**
 * Refuses what the actor's scopes do not grant. Actors without scopes (people, the bootstrap
 * admin) pass: their access is decided by the repository's access scope alone.
 */
export function requireScope(actor: Actor | undefined, type: string, interaction: Interaction): void {
  if (!actor?.scopes) return;
  const grants = grantsOf(actor.scopes);
  // A token without a single resource scope reaches nothing (never "no scopes, so no narrowing").
  if (!scopeAllows(grants, type, interaction)) throw new ScopeRefused(type, interaction, grants[0]?.level ?? 'system');
}

/** The scopes a server of these resource types can grant, for the smart-configuration document. */
export function supportedScopes(): string[] {
  return [
    'system/*.read',
    'system/*.write',
    'system/*.*',
    ...[...KNOWN_TYPES].flatMap((t) => [`system/${t}.read`, `system/${t}.write`]),
    'launch/patient',
    'offline_access',
    'patient/*.read',
    'patient/*.rs',
    'user/*.read',
    'user/*.rs',
    ...[...KNOWN_TYPES].flatMap((t) => [`patient/${t}.read`, `user/${t}.read`]),
  ];
}
