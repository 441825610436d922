/**
 * The positive model for the OAuth routes' own parameters. `redirect_uri` is a URL by design (for
 * a native app, `http://127.0.0.1:<port>/…`, RFC 8252 §7.3), `scope` reads like a PHP call to the
 * free-text rules (`system/*.read`), `aud` is a URL: read as free text they are refused. Here each
 * known parameter of these routes is held to its own grammar instead. A value that fits it is not
 * read as free text, except a URL's path and query, the part an attacker writes freely, which are
 * still read by every rule; a value that does not fit is read like any other (so a payload in
 * `state` or a `redirect_uri` naming a metadata host is still caught). Nothing changes elsewhere.
 */

// The OAuth routes (auth/oauth/*-routes.ts). Literals, so the shield does not load the auth code.
const AUTHORIZE = '/oauth2/authorize';
const TOKEN = '/oauth2/token';
const AUTHORIZATION_API = '/api/oauth/authorization';
const SMART_CONFIGURATION = '/fhir/R4/.well-known/smart-configuration';
// The web app's approval page (same request in its query), and sign-in coming back to it (`next`).
const APPROVAL_PAGE = '/authorize';
const SIGN_IN_PAGE = '/sign-in';

/** base64url and the RFC 6749 unreserved characters: codes, verifiers, challenges, client ids, state. */
const OPAQUE = /^[A-Za-z0-9._~-]{1,512}$/;
/** A SMART / OpenID scope token: `patient/Observation.rs`, `system/*.read`, `user/Patient.cruds?category=…`, `launch/patient`, `openid`. */
const SCOPE_TOKEN = /^(?:(?:patient|user|system)\/(?:\*|[A-Z][A-Za-z]{1,63})\.(?:\*|read|write|c?r?u?d?s?)|launch(?:\/(?:patient|encounter))?|openid|fhirUser|profile|offline_access|online_access)$/;
const GRANT_TYPES = new Set(['authorization_code', 'refresh_token', 'client_credentials']);

/** What is left to read of a well-formed value ('' for nothing), or false when it does not fit. */
type Grammar = (value: string, publicHost: string | undefined) => string | false;

const scope: Grammar = (value) => {
  if (value.length > 2000) return false;
  const tokens = value.split(' ');
  return tokens.length <= 64 && tokens.every((t) => SCOPE_TOKEN.test(t)) ? '' : false;
};

/** Hosts a redirect may name as an address: the loopback listener of a native app (RFC 8252 §7.3), nothing else. */
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]']);

/**
 * An absolute URL with nothing a URL needs no part of: no credentials, no spaces or quotes or
 * angle brackets, a DNS name (or the loopback address over http only), a plain path. Whether it
 * is a client's registered URI is the OAuth code's question; this only says it carries no payload.
 */
function url(value: string, allowLoopback: boolean): string | false {
  if (value.length > 2000 || !/^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/.test(value) || /['()*;$!]/.test(value)) return false;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    return false;
  }
  if (parsed.username || parsed.password) return false;
  if (/%(?![0-9A-Fa-f]{2})|%(?:00|2[eEfF]|5[cC])/.test(value) || parsed.pathname.split('/').some((s) => s === '..' || s === '.')) return false;
  const remainder = `${parsed.pathname}${parsed.search}`;
  if (parsed.protocol === 'https:') return /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/.test(parsed.hostname) && !/\.(?:local|localhost|internal|localdomain)$/.test(parsed.hostname) ? remainder : false;
  if (parsed.protocol === 'http:') return allowLoopback && LOOPBACK_HOSTS.has(parsed.hostname) ? remainder : false;
  // A native app's private-use scheme (RFC 8252 §7.1): reverse domain name, no authority.
  return allowLoopback && /^[a-z][a-z0-9+-]*(?:\.[a-z0-9+-]+)+:$/.test(parsed.protocol) && /^(?:[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*)?$/.test(parsed.host) ? remainder : false;
}

/** A URL at this server's own public host (SMART's `aud`), whatever that host is (an address on a test bench). */
function ownUrl(value: string, publicHost: string | undefined): string | undefined {
  if (!publicHost || value.length > 2000 || !/^[A-Za-z0-9\-._~:/[\]%]+$/.test(value)) return undefined;
  try {
    const parsed = new URL(value);
    return parsed.protocol === 'https:' && !parsed.username && !parsed.password && !parsed.search && parsed.hostname.replace(/^\[|\]$/g, '').toLowerCase() === publicHost ? parsed.pathname : undefined;
  } catch {
    return undefined;
  }
}

const opaque: Grammar = (v) => (OPAQUE.test(v) ? '' : false);
const exactly = (...allowed: string[]): Grammar => (v) => (allowed.includes(v) ? '' : false);
const AUTHORIZATION_REQUEST: Record<string, Grammar> = {
  response_type: exactly('code'),
  client_id: opaque,
  redirect_uri: (v) => url(v, true),
  scope,
  state: opaque,
  code_challenge: opaque,
  code_challenge_method: exactly('S256', 'plain'),
  aud: (v, publicHost) => ownUrl(v, publicHost) ?? url(v, false),
};

const PROBLEM: Grammar = (v) => (/^[a-z-]{1,40}$/.test(v) ? '' : false);
const APPROVAL_PAGE_QUERY: Record<string, Grammar> = { ...AUTHORIZATION_REQUEST, problem: PROBLEM };

/** Sign-in's `next` when it leads back to the approval page: that page's path, its query held to the same grammar (URLs' paths and queries still read). */
const backToApproval: Grammar = (v, publicHost) => {
  const q = v.indexOf('?');
  if (q < 0 || v.slice(0, q) !== APPROVAL_PAGE || v.length > 4000) return false;
  const remainders: string[] = [];
  for (const [name, value] of new URLSearchParams(v.slice(q + 1))) {
    const remainder = Object.hasOwn(APPROVAL_PAGE_QUERY, name) ? APPROVAL_PAGE_QUERY[name]!(value, publicHost) : false;
    if (remainder === false) return false;
    if (remainder !== '') remainders.push(remainder);
  }
  return remainders.join(' ');
};

const KNOWN: Record<string, Record<string, Grammar>> = {
  [`GET ${APPROVAL_PAGE}`]: APPROVAL_PAGE_QUERY,
  [`GET ${SIGN_IN_PAGE}`]: { next: backToApproval },
  [`GET ${AUTHORIZE}`]: AUTHORIZATION_REQUEST,
  [`GET ${AUTHORIZATION_API}`]: AUTHORIZATION_REQUEST,
  [`POST ${AUTHORIZATION_API}`]: { ...AUTHORIZATION_REQUEST, decision: exactly('approve', 'deny') },
  [`POST ${TOKEN}`]: {
    grant_type: exactly(...GRANT_TYPES),
    client_id: opaque,
    code: opaque,
    code_verifier: opaque,
    refresh_token: opaque,
    redirect_uri: (v) => url(v, true),
    scope,
  },
  [`GET ${SMART_CONFIGURATION}`]: {},
};

/** The grammar of this parameter on this route, when it is one of the OAuth routes' known parameters. */
export function oauthParameterGrammar(method: string, routeUrl: string | undefined, name: string): Grammar | undefined {
  if (!routeUrl) return undefined;
  const known = KNOWN[`${method === 'HEAD' ? 'GET' : method} ${routeUrl}`];
  return known && Object.hasOwn(known, name) ? known[name] : undefined;
}

/**
 * For a known OAuth parameter of this route that fits its grammar: what of it is still to be read
 * ('' for nothing). Undefined when the value is to be read whole, like any parameter.
 */
export function oauthParameterRemainder(method: string, routeUrl: string | undefined, name: string, decodedValue: string, publicHost?: string): string | undefined {
  const remainder = oauthParameterGrammar(method, routeUrl, name)?.(decodedValue, publicHost);
  return remainder === undefined || remainder === false ? undefined : remainder;
}
