/**
 * The positive model for the OAuth routes' own parameters. `redirect_uri` is a URL by design (for
 * a native app, `http://127.0.0.1:<port>/…`, RFC 8252 §7.3), `scope` reads like a PHP call to the
 * free-text rules (`system/*.read`), `aud` is this server's own URL (an address, where the service is
 * reached by one): read as free text they are refused. Here each
 * known parameter of these routes is held to its own grammar instead. A value that fits it is not
 * read as free text, except a URL's path and query, the part an attacker writes freely, which are
 * still read by every rule; a value that does not fit is read like any other (so a payload in
 * `state` or a `redirect_uri` naming a metadata host is still caught). Nothing changes elsewhere.
 */

// The OAuth routes (auth/oauth/*-routes.ts). Literals, so the shield does not load the auth code.
const AUTHORIZE = '/oauth2/authorize';
const TOKEN = '/oauth2/token';
const AUTHORIZATION_API = '/api/oauth/authorization';
/** The FHIR base path (records/fhir/fhir-routes.ts): SMART's `aud` is the public URL and this. */
export const FHIR_BASE = '/fhir/R4';
const SMART_CONFIGURATION = `${FHIR_BASE}/.well-known/smart-configuration`;
// The web app's approval page (same request in its query), and sign-in coming back to it (`next`).
const APPROVAL_PAGE = '/authorize';
const SIGN_IN_PAGE = '/sign-in';

/** base64url and the RFC 6749 unreserved characters: codes, verifiers, challenges, client ids, state. */
const OPAQUE = /^[A-Za-z0-9._~-]{1,512}$/;
/** A SMART / OpenID scope token: `patient/Observation.rs`, `system/*.read`, `user/Patient.cruds?category=…`, `launch/patient`, `openid`. */
const SCOPE_TOKEN = /^(?:(?:patient|user|system)\/(?:\*|[A-Z][A-Za-z]{1,63})\.(?:\*|read|write|c?r?u?d?s?)|launch(?:\/(?:patient|encounter))?|openid|fhirUser|profile|offline_access|online_access)$/;
const GRANT_TYPES = new Set(['authorization_code', 'refresh_token', 'client_credentials']);

/** What is left to read of a well-formed value ('' for nothing), or false when it does not fit. */
type Grammar = (value: string, fhirBase: string | undefined) => string | false;

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

/**
 * SMART's `aud`: this server's own FHIR base URL (TELESALUD_PUBLIC_URL + /fhir/R4), exactly the
 * string the authorization code compares it with, whatever form its host takes: a name, an IPv4
 * address, an IPv6 one in brackets, a port. It is the operator's own setting, so nothing of it is
 * free to read. Any other value is an ordinary URL, held to `url` (an address there is refused).
 */
const aud: Grammar = (value, fhirBase) => (fhirBase !== undefined && value === fhirBase ? '' : url(value, false));

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
  aud,
};

const PROBLEM: Grammar = (v) => (/^[a-z-]{1,40}$/.test(v) ? '' : false);
const APPROVAL_PAGE_QUERY: Record<string, Grammar> = { ...AUTHORIZATION_REQUEST, problem: PROBLEM };

/** Sign-in's `next` when it leads back to the approval page: that page's path, its query held to the same grammar (URLs' paths and queries still read). */
const backToApproval: Grammar = (v, fhirBase) => {
  const q = v.indexOf('?');
  if (q < 0 || v.slice(0, q) !== APPROVAL_PAGE || v.length > 4000) return false;
  const remainders: string[] = [];
  for (const [name, value] of new URLSearchParams(v.slice(q + 1))) {
    const remainder = Object.hasOwn(APPROVAL_PAGE_QUERY, name) ? APPROVAL_PAGE_QUERY[name]!(value, fhirBase) : false;
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
export function oauthParameterRemainder(method: string, routeUrl: string | undefined, name: string, decodedValue: string, fhirBase?: string): string | undefined {
  const remainder = oauthParameterGrammar(method, routeUrl, name)?.(decodedValue, fhirBase);
  return remainder === undefined || remainder === false ? undefined : remainder;
}

/**
 * The same model for the production edge (ModSecurity and the OWASP CRS, edge-config/), as PCRE
 * the whole value must match. Each pattern is its grammar above or narrower (the tests hold it to
 * that): what the shield reads whole, the edge reads whole too. `all`: nothing of a fitting value
 * is free, so no CRS rule reads it (scope words, opaque tokens, this server's own FHIR base);
 * `rfi`: only where the URL points is excused (CRS's remote-file-inclusion rules), its path and
 * query still read by every other rule, as the shield reads a URL's remainder.
 */
export interface EdgeOAuthParameter {
  /** The paths it is known on. The method is the allowlist's business; a POST body's values are named as ModSecurity names them. */
  paths: string[];
  /** ModSecurity's name: the parameter's own in a query or a form body, `json.<name>` in a JSON body. */
  arg: string;
  pattern: string;
  excused: 'all' | 'rfi';
  /** A string the value must also equal, with ModSecurity macros: `aud` is the FHIR base at the host the request was sent to. */
  equals?: string;
}

/** Paths, then scheme and host, are lower-case letters only; a path and query hold no ":" or "%" (no second URL, no second decoding) and no "@" or "#". */
const URL_REST = String.raw`(?:[/?][A-Za-z0-9._~/?=&+,-]*)?`;
const DNS_NAME = String.raw`(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}`;
const PORT = String.raw`(?::[0-9]{1,5})?`;
const EDGE_REDIRECT_URI = new RegExp(
  '^(?:' +
    [
      `https://(?![^/?]*\\.(?:local|localhost|internal|localdomain)(?:[:/?]|$))${DNS_NAME}${PORT}${URL_REST}`,
      `http://(?:127\\.0\\.0\\.1|\\[::1\\])${PORT}${URL_REST}`,
      // A native app's private-use scheme (RFC 8252 §7.1), no authority.
      String.raw`[a-z][a-z0-9+-]*(?:\.[a-z0-9+-]+)+:/(?!/)[A-Za-z0-9._~/?=&+,-]*`,
    ].join('|') +
    ')$',
);
/** `aud` at the edge: an https URL of a name or an address (IPv6 in brackets), a port, the FHIR base path; it must also name the Host the request came to. */
const EDGE_AUD = new RegExp(`^https://(?:${DNS_NAME}|[a-z0-9-]{1,63}|[0-9]{1,3}(?:\\.[0-9]{1,3}){3}|\\[[0-9A-Fa-f:.]{2,45}\\])${PORT}${FHIR_BASE.replace(/\//g, '\\/')}$`);
const words = (...allowed: string[]) => new RegExp(`^(?:${allowed.join('|')})$`);

const EDGE_GRAMMARS: Record<string, Omit<EdgeOAuthParameter, 'paths' | 'arg'>> = {
  response_type: { pattern: words('code').source, excused: 'all' },
  client_id: { pattern: OPAQUE.source, excused: 'all' },
  state: { pattern: OPAQUE.source, excused: 'all' },
  code_challenge: { pattern: OPAQUE.source, excused: 'all' },
  code_challenge_method: { pattern: words('S256', 'plain').source, excused: 'all' },
  code: { pattern: OPAQUE.source, excused: 'all' },
  code_verifier: { pattern: OPAQUE.source, excused: 'all' },
  refresh_token: { pattern: OPAQUE.source, excused: 'all' },
  grant_type: { pattern: words(...GRANT_TYPES).source, excused: 'all' },
  scope: { pattern: `^${SCOPE_TOKEN.source.slice(1, -1)}(?: ${SCOPE_TOKEN.source.slice(1, -1)}){0,63}$`, excused: 'all' },
  redirect_uri: { pattern: EDGE_REDIRECT_URI.source, excused: 'rfi' },
  aud: { pattern: EDGE_AUD.source, excused: 'all', equals: `https://%{REQUEST_HEADERS.host}${FHIR_BASE}` },
  problem: { pattern: '^[a-z-]{1,40}$', excused: 'all' },
  decision: { pattern: words('approve', 'deny').source, excused: 'all' },
  // Not a parameter of the shield's model (the shield reads no secret at all): a secret telesalud generated is base64url.
  client_secret: { pattern: OPAQUE.source, excused: 'all' },
};

/** How each POST route's body arrives: the token endpoint takes a form (RFC 6749), the approval page posts JSON. */
const EDGE_BODIES: Record<string, 'form' | 'json'> = { [TOKEN]: 'form', [AUTHORIZATION_API]: 'json' };
/** Known at the edge beyond the shield's model: the confidential client's secret in the token request's body. */
const EDGE_ONLY: Record<string, string[]> = { [`POST ${TOKEN}`]: ['client_secret'] };

/**
 * Every known parameter of the OAuth routes the edge can hold to a grammar, with the paths it is
 * known on. Sign-in's `next` is not among them: its value is a whole approval-page URL, encoded
 * once more, and the web app goes there by itself (history), never through the edge.
 */
export function edgeOAuthParameters(): EdgeOAuthParameter[] {
  const byArg = new Map<string, EdgeOAuthParameter>();
  for (const [key, known] of Object.entries(KNOWN)) {
    const [method, path] = key.split(' ') as [string, string];
    const body = method === 'GET' ? undefined : EDGE_BODIES[path];
    if (method !== 'GET' && body === undefined) continue;
    for (const name of [...Object.keys(known), ...(EDGE_ONLY[key] ?? [])]) {
      const grammar = EDGE_GRAMMARS[name];
      if (!grammar) continue;
      const arg = body === 'json' ? `json.${name}` : name;
      const entry = byArg.get(arg) ?? { paths: [], arg, ...grammar };
      if (!entry.paths.includes(path)) entry.paths.push(path);
      byArg.set(arg, entry);
    }
  }
  return [...byArg.values()];
}
