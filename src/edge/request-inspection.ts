import { inspectValue, SEVERITY, type Family, type Hit, type ValueContext } from './attack-rules.js';
import { decode } from './normalize.js';
import { proseField, secretField } from './clinical-free-text.js';
import { protocolHits, SCANNER_AGENTS } from './protocol-rules.js';
import { oauthParameterRemainder } from './oauth-parameters.js';
import { REQUEST_ID } from './trusted-proxies.js';

/** A request as it reached the node, before any handler: what the shield reads. */
export interface InspectedRequest {
  method: string;
  /** The request target exactly as sent (path and query). */
  url: string;
  httpVersion: string;
  /** Header names (lower case) and values, in order, repeats kept. */
  headers: [string, string][];
  /** The body bytes, when the shield read them; undefined when there was none or it is a file. */
  body: Buffer | undefined;
  /** The route the request matched, or undefined for none. */
  route: { url: string; fhirSearch: boolean } | undefined;
  /** No route for this method, but the path has one for another (a client's mistake, answered 405): read as a route's. */
  knownPath?: boolean;
  /** The host name of TELESALUD_PUBLIC_URL: a Host header naming it is never an anomaly, even as an address. */
  publicHost?: string;
  /** This server's FHIR base URL (TELESALUD_PUBLIC_URL + /fhir/R4): SMART's `aud` names it, whatever its host. */
  fhirBase?: string;
}

export interface Verdict {
  score: number;
  /** Rule ids, each once, in the order they fired. */
  rules: string[];
  families: Family[];
  /** The family that weighed most (first of the highest severity): what a block is counted under. */
  family: Family | undefined;
  /** Where the hits were (kind and field name, never the value). */
  locations: string[];
  blocked: boolean;
}

/** Block at this anomaly score: one critical hit, or an error with a notice, as in CRS. */
export const BLOCK_THRESHOLD = 5;
/**
 * A request to no route is refused whatever it carries; any anomaly at all (a notice) makes that
 * refusal the shield's — an attack recorded and counted toward a ban — instead of a plain 404.
 * Browsers' own requests (BROWSER_OWN_PATHS) are held to the normal threshold.
 */
export const UNROUTED_BLOCK_THRESHOLD = 2;

/** Paths browsers and their tools request by themselves: a miss there is no probe. */
const BROWSER_OWN_PATHS =
  /^\/(?:favicon\.ico|apple-touch-icon(?:-precomposed)?(?:-\d+x\d+)?\.png|robots\.txt|(?:site\.)?(?:manifest\.json|webmanifest|manifest\.webmanifest)|browserconfig\.xml|\.well-known\/(?:change-password|security\.txt|appspecific\/com\.chrome\.devtools\.json|traffic-advice|assetlinks\.json|apple-app-site-association))$/;

export function browserOwnPath(path: string): boolean {
  return BROWSER_OWN_PATHS.test(path);
}
const MAX_VALUES = 4000;
const MAX_DEPTH = 64;

const VERDICT_CACHE = new Map<string, Hit[]>();
const VERDICT_CACHE_SIZE = 20_000;

class Collector {
  readonly hits: Hit[] = [];
  readonly locations = new Set<string>();
  values = 0;

  /** Prose rules only where clinical text can be: a request to no route carries none. */
  constructor(
    private readonly proseAllowed: boolean,
    /** The matched route, for the OAuth routes' positive model of their parameters (oauth-parameters.ts). */
    private readonly route?: { method: string; url: string; fhirBase?: string | undefined },
  ) {}

  /**
   * A known OAuth parameter that fits its grammar: reads only what of it is free (a URL's path
   * and query) and answers true; false for any other parameter, to be read whole.
   */
  oauthParameter(name: string, raw: string, ctx: ValueContext, location: string, plusIsSpace: boolean): boolean {
    if (!this.route) return false;
    let value: string;
    try {
      value = decodeURIComponent(plusIsSpace ? raw.replace(/\+/g, ' ') : raw);
    } catch {
      return false;
    }
    const remainder = oauthParameterRemainder(this.route.method, this.route.url, name, value, this.route.fhirBase);
    if (remainder === undefined) return false;
    if (remainder !== '') this.value(remainder, ctx, location);
    return true;
  }

  add(hits: Hit[], location: string): void {
    if (hits.length === 0) return;
    this.hits.push(...hits);
    if (this.locations.size < 8) this.locations.add(location);
  }

  value(raw: string, ctx: ValueContext, location: string, plusIsSpace = false): void {
    if (raw === '' || ++this.values > MAX_VALUES) return;
    const context = ctx.prose && !this.proseAllowed ? { ...ctx, prose: false } : ctx;
    // The same short values come again and again (headers, codes, systems, ids): judged once.
    // Prose (names, notes) is never kept: health data does not outlive its request here.
    const key = raw.length <= 256 && !context.prose ? `${context.kind}|${context.prose ? 1 : 0}|${context.pl}|${context.header ?? ''}|${plusIsSpace ? 1 : 0}|${raw}` : undefined;
    let hits = key === undefined ? undefined : VERDICT_CACHE.get(key);
    if (hits === undefined) {
      hits = [];
      inspectValue(decode(raw, plusIsSpace), context, hits);
      if (key !== undefined) {
        if (VERDICT_CACHE.size >= VERDICT_CACHE_SIZE) VERDICT_CACHE.clear();
        VERDICT_CACHE.set(key, hits);
      }
    }
    this.add(hits, location);
  }

  verdict(threshold = BLOCK_THRESHOLD): Verdict {
    const seen = new Map<string, Hit>();
    for (const h of this.hits) if (!seen.has(h.rule)) seen.set(h.rule, h);
    // Each rule counts once per request, however many fields it fired in.
    const score = [...seen.values()].reduce((sum, h) => sum + SEVERITY[h.severity], 0);
    const families = [...new Set([...seen.values()].map((h) => h.family))];
    let top: Hit | undefined;
    for (const h of seen.values()) if (top === undefined || SEVERITY[h.severity] > SEVERITY[top.severity]) top = h;
    return { score, rules: [...seen.keys()], families, family: top?.family, locations: [...this.locations], blocked: score >= threshold };
  }
}

/** A field name safe to put in a security event: shape only, never content. */
function label(kind: string, name: string): string {
  const clean = name.replace(/[^\w.\-\[\]]/g, '_').slice(0, 40);
  return clean ? `${kind}:${clean}` : kind;
}

/** FHIR search values: `system|code` and comma lists are syntax, read piece by piece. */
function fhirSearchPieces(value: string): string[] {
  if (!/[|,]/.test(value) || !/^[\w:/.%\-|,~@#]*$/.test(value)) return [value];
  return value.split(/[|,]/).filter((p) => p !== '');
}

// Search parameters whose values are words someone typed.
const FHIR_TEXT_SEARCH = new Set(['_text', '_content', 'name', 'family', 'given', 'address', 'address-city', 'phonetic', 'description', 'title', 'display', 'text', 'note']);

function inspectQuery(c: Collector, query: string, pl: ValueContext['pl'], fhirSearch: boolean, routed: boolean): void {
  if (query === '') return;
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? '' : pair.slice(eq + 1);
    const bareName = decode(name, true).text;
    c.value(name, { kind: 'name', prose: false, pl: pl }, 'query-name', true);
    const where = label('query', bareName);
    const base = bareName.split(':')[0]!;
    if (c.oauthParameter(bareName, value, { kind: 'value', prose: false, pl }, where, true)) continue;
    if (fhirSearch && !FHIR_TEXT_SEARCH.has(base)) {
      for (const piece of fhirSearchPieces(value)) c.value(piece, { kind: 'value', prose: false, pl }, where, true);
    } else {
      // Words people type (a name searched, a document's title) are read as prose.
      const prose = routed && (fhirSearch ? FHIR_TEXT_SEARCH.has(base) : proseField(base));
      c.value(value, { kind: 'value', prose, pl }, where, true);
    }
  }
}

function inspectForm(c: Collector, body: string, pl: ValueContext['pl']): void {
  if (/%(?![0-9a-fA-F]{2}|u[0-9a-fA-F]{4})/.test(body)) c.add([{ rule: 'protocol-invalid-url-encoding', family: 'protocol', severity: 'critical' }], 'form');
  if (body.length > 64_000) c.add([{ rule: 'protocol-arguments-too-large', family: 'protocol', severity: 'critical' }], 'form');
  for (const pair of body.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? '' : pair.slice(eq + 1);
    const bareName = decode(name, true).text;
    c.value(name, { kind: 'name', prose: false, pl: pl }, 'form-name', true);
    if (c.oauthParameter(bareName, value, { kind: 'value', prose: false, pl }, label('form', bareName), true)) continue;
    if (!secretField(bareName)) c.value(value, { kind: 'value', prose: proseField(bareName), pl }, label('form', bareName), true);
    // "a%3Dpayload": what a parser that decodes first would read as the value.
    const smuggled = eq < 0 ? bareName.indexOf('=') : -1;
    if (smuggled >= 0) c.value(bareName.slice(smuggled + 1), { kind: 'value', prose: false, pl }, 'form-name');
  }
}

function inspectJson(c: Collector, node: unknown, path: string, key: string, pl: ValueContext['pl'], depth: number): void {
  if (depth > MAX_DEPTH || c.values > MAX_VALUES) return;
  if (typeof node === 'string') {
    // Top-level fields only: the OAuth routes' JSON bodies are flat.
    if (depth === 1 && c.oauthParameter(key, encodeURIComponent(node), { kind: 'value', prose: false, pl }, label('json', path), false)) return;
    if (!secretField(key)) c.value(node, { kind: 'value', prose: proseField(key), pl }, label('json', path));
  } else if (Array.isArray(node)) {
    for (const item of node) inspectJson(c, item, `${path}[]`, key, pl, depth + 1);
  } else if (node !== null && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      c.value(k, { kind: 'name', prose: false, pl: pl }, 'json-key');
      inspectJson(c, v, path ? `${path}.${k}` : k, k, pl, depth + 1);
    }
  }
}

function inspectMultipart(c: Collector, body: string, boundary: string, pl: ValueContext['pl']): void {
  const parts = body.split(`--${boundary}`);
  for (const part of parts.slice(1)) {
    if (part.startsWith('--')) break;
    const split = part.search(/\r?\n\r?\n/);
    const head = split < 0 ? part : part.slice(0, split);
    const content = split < 0 ? '' : part.slice(split).replace(/^\r?\n\r?\n/, '').replace(/\r?\n$/, '');
    const disposition = /content-disposition:([^\r\n]*)/i.exec(head)?.[1] ?? '';
    const name = /\bname="([^"]*)"|\bname=([^;\s]*)/i.exec(disposition.replace(/filename\*?=("[^"]*"|[^;]*)/gi, ''));
    const filename = /\bfilename\*?="((?:[^"\\]|\\.)*)"|\bfilename\*?=([^;\r\n]*)/i.exec(disposition);
    const fieldName = name?.[1] ?? name?.[2] ?? '';
    const hits: Hit[] = protocolHits.multipartPart(head, fieldName, filename ? (filename[1] ?? filename[2] ?? '') : undefined, pl);
    c.add(hits, 'multipart');
    c.value(fieldName, { kind: 'name', prose: false, pl: pl }, 'multipart-name');
    if (filename) c.value(filename[1] ?? filename[2] ?? '', { kind: 'filename', prose: false, pl }, 'multipart-filename');
    // File contents are stored sealed and never executed; field values are read like form values.
    else c.value(content, { kind: 'value', prose: proseField(fieldName), pl }, label('multipart', fieldName));
  }
}

/** XML is accepted by no route; its attribute values and text are still read, so an attack in it is named. */
function inspectXml(c: Collector, body: string, pl: ValueContext['pl']): void {
  for (const m of body.matchAll(/[\w:.-]+\s*=\s*"([^"]*)"|[\w:.-]+\s*=\s*'([^']*)'|>([^<]+)</g)) {
    c.value(m[1] ?? m[2] ?? m[3] ?? '', { kind: 'value', prose: false, pl }, 'xml');
  }
  if (/<!(?:doctype|entity)/i.test(body)) c.add([{ rule: 'xml-external-entity', family: 'injection', severity: 'critical' }], 'xml');
}

/**
 * How strictly to read, by route: parameters of a real route at paranoia 2, anything sent to no
 * route at 4 (refused anyway; reading hard catches the probe and feeds the ban).
 */
function paranoia(req: InspectedRequest, path: string): ValueContext['pl'] {
  return req.route || req.knownPath || browserOwnPath(path) ? 2 : 4;
}

export function bareType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/**
 * The parts of a path the client chose: segments equal to the matched route's own literal
 * segments (`$everything`, `_history`) are the application's words, not input, and are blanked.
 */
function routeParameters(rawPath: string, routeUrl: string | undefined): string {
  if (!routeUrl) return rawPath;
  const pattern = routeUrl.split('/');
  const parts = rawPath.split('/');
  if (pattern.length !== parts.length) return rawPath;
  return parts.map((part, i) => (pattern[i] === part ? '' : part)).join('/');
}

/** Reads everything the request carries, and scores it. */
export function inspectRequest(req: InspectedRequest): Verdict {
  const c = new Collector(req.route !== undefined, req.route ? { method: req.method, url: req.route.url, fhirBase: req.fhirBase } : undefined);
  const q = req.url.indexOf('?');
  const rawPath = q < 0 ? req.url : req.url.slice(0, q);
  const query = q < 0 ? '' : req.url.slice(q + 1);
  const pl = paranoia(req, rawPath);
  c.add(protocolHits.request(req, pl), 'request');

  c.value(routeParameters(rawPath, req.route?.url), { kind: 'path', prose: false, pl }, 'path');
  inspectQuery(c, query, pl, req.route?.fhirSearch ?? false, req.route !== undefined);

  for (const [name, value] of req.headers) {
    if (name === 'cookie') {
      for (const pair of value.split(';')) {
        const eq = pair.indexOf('=');
        const cname = (eq < 0 ? pair : pair.slice(0, eq)).trim();
        const cvalue = eq < 0 ? '' : pair.slice(eq + 1).trim();
        c.value(cname, { kind: 'cookie', prose: false, pl }, 'cookie-name');
        // An opaque token (a session id, base64url) has no syntax to read hard: random letters and "-" make SQL words and "--".
        const opaque = cvalue.length >= 16 && /^[\w-]+={0,2}$/.test(cvalue);
        c.value(cvalue, { kind: 'cookie', prose: false, pl: opaque && pl > 2 ? 2 : pl }, label('cookie', cname));
      }
      continue;
    }
    if (STRUCTURED_HEADERS.has(name)) continue; // checked for their grammar in protocol-rules.ts
    // The load balancer's id, new on every request behind HAProxy or nginx: letters, digits and . _ : - carry no
    // code, and read as text each one missed the verdict cache (every request paid a full read, and the cache filled
    // with ids until it was cleared). Anything else in this header is read as text below.
    if (name === 'x-request-id' && REQUEST_ID.test(value)) continue;
    if (name === 'user-agent') {
      if (SCANNER_AGENTS.test(value)) c.add([{ rule: 'scanner-user-agent', family: 'scanner', severity: 'critical' }], 'header:user-agent');
      // "(X11; Linux x86_64)": inside a product comment ";" is the grammar's separator, not a shell's.
      c.value(value.replace(/\(([^()]*)\)/g, (_m, inner: string) => `(${inner.replace(/;/g, ',')})`), { kind: 'header', prose: false, pl, header: name }, 'header:user-agent');
      continue;
    }
    const kind: ValueContext['kind'] = /^x[-_.]?file[-_.]?name$|^x[-_.]filename$/.test(name) ? 'filename' : 'header';
    c.value(value, { kind, prose: false, pl, header: name }, label('header', name));
    // Where nothing legitimate goes, the Referer's own parameters are read too (payloads meant for a log viewer).
    if (name === 'referer' && pl >= 3 && value.includes('?')) inspectQuery(c, value.slice(value.indexOf('?') + 1).split('#')[0]!, pl, false, false);
  }

  if (req.body && req.body.length > 0) {
    const type = bareType(headerValue(req.headers, 'content-type'));
    const text = req.body.toString('utf8');
    if (type === 'application/json' || type === 'application/fhir+json' || type.endsWith('+json')) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      if (parsed === undefined) c.value(text, { kind: 'value', prose: false, pl }, 'body');
      else inspectJson(c, parsed, '', '', pl, 0);
    } else if (type === 'multipart/form-data') {
      const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(headerValue(req.headers, 'content-type') ?? '');
      if (boundary) inspectMultipart(c, text, boundary[1] ?? boundary[2]!, pl);
      else c.value(text, { kind: 'value', prose: false, pl }, 'body');
    } else if (type === 'application/x-www-form-urlencoded' || type === '') {
      if (type === '' && /^\s*[{[]/.test(text)) {
        try {
          inspectJson(c, JSON.parse(text), '', '', pl, 0);
        } catch {
          c.value(text, { kind: 'value', prose: false, pl }, 'body');
        }
      } else inspectForm(c, text, pl);
    } else if (type.includes('xml')) {
      inspectXml(c, text, pl);
    } else {
      // Any other text: read whole, and as a form if it looks like one.
      c.value(text, { kind: 'value', prose: false, pl }, 'body');
      if (/^[\w.\-\[\]%]+=/.test(text)) inspectForm(c, text, pl);
      else if (/^\s*[{[]/.test(text)) {
        try {
          inspectJson(c, JSON.parse(text), '', '', pl, 0);
        } catch {
          /* read whole above */
        }
      }
    }
  }
  return c.verdict(pl === 2 ? BLOCK_THRESHOLD : UNROUTED_BLOCK_THRESHOLD);
}

/** Headers whose grammar protocol-rules.ts checks; free-text rules would misread their syntax. */
const STRUCTURED_HEADERS = new Set([
  'host', 'accept', 'accept-language', 'accept-encoding', 'accept-charset', 'content-type', 'content-length', 'transfer-encoding', 'connection',
  'cache-control', 'pragma', 'authorization', 'x-csrf-token', 'if-match', 'if-none-match', 'if-modified-since', 'upgrade', 'sec-websocket-key',
  'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'sec-ch-ua', 'sec-ch-ua-mobile', 'sec-ch-ua-platform',
  'sec-fetch-site', 'sec-fetch-mode', 'sec-fetch-dest', 'sec-fetch-user', 'upgrade-insecure-requests', 'dnt', 'priority', 'te', 'keep-alive',
  'range', 'origin',
]);

export function headerValue(headers: [string, string][], name: string): string | undefined {
  for (const [n, v] of headers) if (n === name) return v;
  return undefined;
}

/**
 * One message of the consultation signaling, as text. SDP and ICE candidates are relayed as
 * they are (the protocol validator bounds them; they are full of addresses and "=" by design);
 * a display name is read like free text, everything else like a parameter.
 */
export function inspectWebSocketMessage(text: string): Verdict {
  const c = new Collector(true);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    c.value(text, { kind: 'ws', prose: false, pl: 2 }, 'ws');
    return c.verdict();
  }
  const walk = (node: unknown, key: string, depth: number): void => {
    if (depth > 16) return;
    if (typeof node === 'string') {
      if (key === 'sdp' || key === 'candidate') return;
      c.value(node, { kind: 'ws', prose: key === 'displayName', pl: 2 }, label('ws', key));
    } else if (Array.isArray(node)) node.forEach((n) => walk(n, key, depth + 1));
    else if (node !== null && typeof node === 'object') for (const [k, v] of Object.entries(node)) {
      c.value(k, { kind: 'name', prose: false, pl: 2 }, 'ws-key');
      walk(v, k, depth + 1);
    }
  };
  walk(parsed, '', 0);
  return c.verdict();
}
