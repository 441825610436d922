import { grantsCover, isResourceScope, parseResourceScope, ScopeError, scopeWords, type ScopeGrant } from './smart-scopes.js';

/**
 * The scopes of a SMART App Launch app (an app a user signs in to through telesalud):
 *
 *   patient/<Type|*>.<read|write|cruds>   the patient in context: a patient's own record
 *   user/<Type|*>.<read|write|cruds>      whatever the user may see under the access policy
 *   launch/patient                        standalone launch: the token answers `patient`
 *   offline_access                        a refresh token (refresh-tokens.ts), if the app was registered with it
 *
 * Scopes this server does not grant (yet) but that apps commonly ask for — `openid`, `fhirUser`,
 * `online_access`, EHR launch (`launch`, `launch/encounter`) — are left out of
 * what is granted rather than failing the request: the token's `scope` tells the app what it got
 * (RFC 6749 §3.3). Anything else is a malformed scope and refused.
 */
export const LAUNCH_PATIENT = 'launch/patient';
export const OFFLINE_ACCESS = 'offline_access';
const NOT_GRANTED = new Set(['openid', 'fhirUser', 'profile', 'online_access', 'launch', 'launch/encounter']);

export interface AppScopes {
  /** What is granted, as scope words: resource scopes, then launch/patient and offline_access when asked for. */
  scopes: string[];
  grants: ScopeGrant[];
  launchPatient: boolean;
  offlineAccess: boolean;
  /** Asked for, known, but not granted by this server. */
  notGranted: string[];
}

/** Parses an app's scope list; throws ScopeError with a one-line reason naming the bad scope. */
export function parseAppScopes(text: string): AppScopes {
  const words = scopeWords(text);
  const resource: string[] = [];
  const grants: ScopeGrant[] = [];
  const notGranted: string[] = [];
  let launchPatient = false;
  let offlineAccess = false;
  for (const word of words) {
    if (word === LAUNCH_PATIENT) launchPatient = true;
    else if (word === OFFLINE_ACCESS) offlineAccess = true;
    else if (NOT_GRANTED.has(word)) notGranted.push(word);
    else if (isResourceScope(word) || word.includes('/')) {
      grants.push(parseResourceScope(word, ['patient', 'user']));
      resource.push(word);
    } else throw new ScopeError(`scope "${word.slice(0, 80).replace(/[^\x20-\x7e]/g, '?')}" is not a scope of this server`);
  }
  if (grants.length === 0) throw new ScopeError('no resource scope given: ask for e.g. "launch/patient patient/*.read"');
  return { scopes: [...resource, ...(launchPatient ? [LAUNCH_PATIENT] : []), ...(offlineAccess ? [OFFLINE_ACCESS] : [])], grants, launchPatient, offlineAccess, notGranted };
}

/** Whether a client registered with `registered` may be granted `requested`. */
export function appScopesCover(registered: AppScopes, requested: AppScopes): boolean {
  return grantsCover(registered.grants, requested.grants) && (!requested.launchPatient || registered.launchPatient) && (!requested.offlineAccess || registered.offlineAccess);
}

/** Whether any granted scope is patient-level: such a token needs a patient in context. */
export const needsPatientContext = (scopes: AppScopes) => scopes.launchPatient || scopes.grants.some((g) => g.level === 'patient');
