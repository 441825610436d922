import type { Hit, ValueContext } from './attack-rules.js';
import type { InspectedRequest } from './request-inspection.js';

/**
 * HTTP itself used as a weapon: request smuggling, methods and versions nobody here speaks,
 * headers that only attacks send, content types and charsets that smuggle a payload past a
 * parser, and the grammar of the headers the shield does not read as free text.
 */

export const ALLOWED_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']);
const BODYLESS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/** Tools that announce themselves. */
export const SCANNER_AGENTS =
  /\b(?:sqlmap|nikto|nmap|nuclei|havij|acunetix|w3af|dirbuster|dirb|gobuster|wpscan|masscan|zgrab|openvas|nessus|arachni|skipfish|jaeles|wfuzz|ffuf|feroxbuster|whatweb|netsparker|appscan|paros|webinspect|commix|xsser|hydra|medusa|sqlninja|pangolin|bsqlbf|fimap|grabber|nsauditor|vega|webshag|zmeu|morfeus|jorgee|masscan|internet-?scanner|zap\/|owasp[ _-]?zap|burp(?:suite|collaborator)|brutus|metis|teh forest lobster|blackwidow|webvulnscan|n-stealth|struts-pwn|log4shell|interactsh|censys|x-?scan|security ?scan|vulnerability ?scan)\b/i;

// Headers telesalud never uses, and that only attacks or foreign protocols send (httpoxy, WebDAV, method override, range abuse).
const RESTRICTED_HEADERS = new Set([
  'proxy', 'lock-token', 'content-range', 'if', 'x-http-method-override', 'x-http-method', 'x-method-override', 'x-middleware-subrequest',
  'request-range', 'translate', 'x-original-url', 'x-rewrite-url', 'destination', 'overwrite', 'depth', 'timeout', 'x-forwarded-server',
  'x-http-destinationurl', 'front-end-https', 'x-proxy-url', 'content-md5', 'expect', 'unless-modified-since', 'x-arr-log-id',
]);

// The types some route of telesalud accepts (a route that does not parse one answers 415).
export const KNOWN_BODY_TYPES = new Set([
  'application/json', 'application/fhir+json', 'application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain', 'application/pdf',
  'image/png', 'image/jpeg', 'application/dicom',
]);
/**
 * Types a legitimate client may still send where telesalud does not take them, answered 415 so
 * the person learns why: formats a FHIR client may be configured for (XML, JSON Patch), and files
 * a person may pick for an upload (a photo from a phone, an office document, a saved web page).
 * Every other type is one no client of telesalud sends — XML and serialised objects for a parser
 * to confuse or deserialise, multipart/related, event and report formats — and the shield refuses
 * it as an attack (OWASP CRS 920420 does the same with its allowlist).
 */
export const FOREIGN_FHIR_TYPES = new Set(['application/fhir+xml', 'application/xml+fhir', 'application/json-patch+json', 'application/fhir+turtle']);
const FILE_TYPES = /^(?:image|audio|video|font)\/[\w.+-]+$|^text\/(?:html|csv|markdown|rtf|calendar|vcard|x-vcard|tab-separated-values)$|^application\/(?:pdf|msword|rtf|zip|x-zip-compressed|gzip|x-gzip|x-tar|x-7z-compressed|octet-stream|dicom|vnd\.(?:openxmlformats-officedocument\.[\w.-]+|ms-[\w.-]+|oasis\.opendocument\.[\w.-]+|apple\.[\w.-]+|rar))$/;

/** A type telesalud refuses with 415 rather than as an attack (see above). */
export function acceptableType(bare: string): boolean {
  return KNOWN_BODY_TYPES.has(bare) || FOREIGN_FHIR_TYPES.has(bare) || FILE_TYPES.test(bare);
}

// Content codings a client may ask for; anything else in Accept-Encoding is a probe or a fuzzer.
const CODINGS = new Set(['gzip', 'x-gzip', 'deflate', 'br', 'zstd', 'compress', 'x-compress', 'identity', '*', 'dcb', 'dcz']);

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const CHARSETS = /^(?:utf-8|utf8|us-ascii)$/;

function hit(rule: string, severity: Hit['severity'] = 'critical', family: Hit['family'] = 'protocol'): Hit {
  return { rule, family, severity };
}

/** `type/subtype; charset=utf-8; boundary=…` and nothing else. */
function contentTypeHits(value: string, hits: Hit[]): void {
  const [type, ...params] = value.split(';');
  const bare = type!.trim().toLowerCase();
  if (!/^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(bare)) hits.push(hit('protocol-content-type-malformed'));
  let charsets = 0;
  for (const p of params) {
    const m = /^\s*([a-z-]+)\s*=\s*(?:"([^"]*)"|([^\s;"]*))\s*$/i.exec(p);
    if (!m) {
      if (p.trim() !== '') hits.push(hit('protocol-content-type-malformed'));
      continue;
    }
    const name = m[1]!.toLowerCase();
    const v = (m[2] ?? m[3] ?? '').toLowerCase();
    if (name === 'charset') {
      charsets++;
      if (!CHARSETS.test(v)) hits.push(hit('protocol-charset-not-utf8'));
    } else if (name === 'boundary') {
      if (!bare.startsWith('multipart/')) hits.push(hit('protocol-content-type-malformed'));
    } else if (!(bare.endsWith('json') && (name === 'fhirversion' || name === 'profile'))) hits.push(hit('protocol-content-type-malformed'));
  }
  if (charsets > 1) hits.push(hit('protocol-charset-not-utf8'));
}

/** `Host` without the port, lower case, brackets kept off IPv6. */
export function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']'));
  return h.replace(/:\d*$/, '');
}

function request(req: InspectedRequest, pl: ValueContext['pl']): Hit[] {
  const hits: Hit[] = [];
  if (!ALLOWED_METHODS.has(req.method)) hits.push(hit('protocol-method-not-allowed'));
  if (req.httpVersion !== '1.1' && req.httpVersion !== '1.0' && req.httpVersion !== '2.0') hits.push(hit('protocol-http-version'));
  if (!req.url.startsWith('/') && !(req.method === 'OPTIONS' && req.url === '*')) hits.push(hit('protocol-absolute-uri'));
  if (req.url.length > 8192) hits.push(hit('protocol-uri-too-long'));

  const q = req.url.indexOf('?');
  if (q >= 0) {
    const query = req.url.slice(q + 1);
    if (/%(?![0-9a-fA-F]{2}|u[0-9a-fA-F]{4})/.test(query)) hits.push(hit('protocol-invalid-url-encoding'));
    const args = query.split('&').filter((a) => a !== '');
    if (args.length > 64) hits.push(hit('protocol-too-many-arguments'));
    if (args.some((a) => a.split('=')[0]!.length > 100)) hits.push(hit('protocol-argument-name-too-long'));
    if (pl >= 3) {
      const names = args.map((a) => a.split('=')[0]!.toLowerCase());
      // Parameter pollution: the same name again and again, each backend picking a different one.
      if (names.length - new Set(names).size >= 2) hits.push(hit('protocol-parameter-pollution'));
    }
  }
  if (/%(?![0-9a-fA-F]{2})/.test(req.url.slice(0, q < 0 ? undefined : q))) hits.push(hit('protocol-invalid-url-encoding'));

  let contentLength: string | undefined;
  let transferEncoding: string | undefined;
  let contentType: string | undefined;
  let host = 0;
  let userAgent: string | undefined;
  let accept: string | undefined;
  let upgrade = false;
  if (req.headers.length > 100) hits.push(hit('protocol-too-many-headers'));
  for (const [name, value] of req.headers) {
    if (RESTRICTED_HEADERS.has(name)) hits.push(hit('protocol-restricted-header'));
    if (!TOKEN.test(name)) hits.push(hit('protocol-header-name'));
    if (/[\r\n\0]/.test(value)) hits.push(hit('protocol-header-injection'));
    switch (name) {
      case 'content-length':
        if (contentLength !== undefined || !/^\d{1,12}$/.test(value.trim())) hits.push(hit('protocol-content-length'));
        contentLength = value;
        break;
      case 'transfer-encoding':
        if (transferEncoding !== undefined || value.trim().toLowerCase() !== 'chunked') hits.push(hit('protocol-transfer-encoding'));
        transferEncoding = value;
        break;
      case 'content-type':
        if (contentType !== undefined) hits.push(hit('protocol-content-type-malformed'));
        contentType = value;
        contentTypeHits(value, hits);
        break;
      case 'host':
        host++;
        // Reaching a node by address is what scanners do, and what staff on an internal network may do too:
        // the node's own public host is fine, any other address only a notice.
        if (/^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.%a-z]+\])(?::\d+)?$/i.test(value.trim()) && hostName(value) !== req.publicHost) hits.push(hit('protocol-host-is-ip', 'notice'));
        if (!/^[a-z0-9.\-]+(?::\d{1,5})?$|^\[[0-9a-f:.]+\](?::\d{1,5})?$/i.test(value.trim())) hits.push(hit('protocol-host-malformed'));
        break;
      case 'user-agent':
        userAgent = value;
        break;
      case 'accept':
        accept = value;
        if (/;\s*charset\s*=/i.test(value)) hits.push(hit('protocol-accept-charset'));
        if (!/^[\w*.+\-\/\s,;=".]*$/.test(value)) hits.push(hit('protocol-header-grammar'));
        break;
      case 'accept-charset':
        if (!/^[\w\-\s,;=.*]*$/.test(value)) hits.push(hit('protocol-header-grammar'));
        break;
      case 'accept-language':
        if (!/^[\w\-\s,;=.*]*$/.test(value)) hits.push(hit('protocol-header-grammar'));
        break;
      case 'accept-encoding':
        if (!/^[\w\-\s,;=.*]*$/.test(value)) hits.push(hit('protocol-header-grammar'));
        else if (value.split(',').some((c) => { const coding = c.split(';')[0]!.trim().toLowerCase(); return coding !== '' && !CODINGS.has(coding); })) hits.push(hit('protocol-accept-encoding-unknown', 'notice'));
        break;
      case 'connection': {
        const tokens = value.toLowerCase().split(',').map((t) => t.trim()).filter((t) => t !== '');
        if (new Set(tokens).size !== tokens.length || tokens.some((t) => !TOKEN.test(t))) hits.push(hit('protocol-connection-header'));
        break;
      }
      case 'range': {
        const ranges = value.replace(/^\s*bytes\s*=/i, '').split(',');
        if (!/^\s*bytes\s*=/i.test(value) || ranges.length > 5) hits.push(hit('protocol-range-abuse'));
        if (!BODYLESS.has(req.method)) hits.push(hit('protocol-range-abuse'));
        break;
      }
      case 'upgrade':
        upgrade = /^\s*websocket\s*$/i.test(value);
        if (!/^[\w\-\s,;=."*\/:+?]*$/.test(value)) hits.push(hit('protocol-header-grammar'));
        break;
      case 'cache-control':
      case 'pragma':
      case 'if-none-match':
      case 'if-match':
      case 'if-modified-since':
      case 'sec-fetch-site':
      case 'sec-fetch-mode':
      case 'sec-fetch-dest':
      case 'sec-fetch-user':
      case 'sec-websocket-key':
      case 'sec-websocket-version':
      case 'sec-websocket-extensions':
      case 'sec-websocket-protocol':
      case 'dnt':
      case 'upgrade-insecure-requests':
      case 'priority':
      case 'te':
      case 'keep-alive':
        if (!/^[\w\-\s,;=."*\/:+?]*$/.test(value)) hits.push(hit('protocol-header-grammar'));
        break;
      case 'sec-ch-ua':
      case 'sec-ch-ua-mobile':
      case 'sec-ch-ua-platform':
        if (!/^[\w\-\s,;=."?!()\/:]*$/.test(value)) hits.push(hit('protocol-header-grammar'));
        break;
      case 'authorization':
        // RFC 6750 b64token / RFC 7617 base64: "=" only as trailing padding.
        if (!/^(?:bearer|basic)\s+[\w\-.~+\/]+=*$/i.test(value.trim())) hits.push(hit('protocol-header-grammar', 'error'));
        break;
      case 'x-csrf-token':
        if (!/^[\w\-.~+\/=]*$/.test(value)) hits.push(hit('protocol-header-grammar'));
        break;
      case 'origin':
        if (!/^(?:null|https?:\/\/[a-z0-9.\-]+(?::\d{1,5})?|https?:\/\/\[[0-9a-f:.]+\](?::\d{1,5})?)$/i.test(value.trim())) hits.push(hit('protocol-header-grammar'));
        break;
    }
  }
  if (host > 1) hits.push(hit('protocol-host-repeated'));
  if (contentLength !== undefined && transferEncoding !== undefined) hits.push(hit('protocol-request-smuggling'));
  const hasBody = (contentLength !== undefined && contentLength.trim() !== '0') || transferEncoding !== undefined || (req.body?.length ?? 0) > 0;
  if (hasBody && BODYLESS.has(req.method)) hits.push(hit('protocol-body-not-allowed'));
  if (hasBody && contentType === undefined && (req.body?.length ?? 1) > 0) hits.push(hit('protocol-body-without-type', 'error'));
  // Browsers, fetch(), curl and FHIR clients all say how long a POST is (0 when empty). Health
  // checks and bare scripts may not, and they only call real routes: read where no route is.
  if (pl >= 3 && !BODYLESS.has(req.method) && req.method !== 'DELETE' && contentLength === undefined && transferEncoding === undefined) hits.push(hit('protocol-missing-content-length', 'notice'));
  if (contentType !== undefined && (hasBody || pl >= 3)) {
    const bare = contentType.split(';')[0]!.trim().toLowerCase();
    if (bare !== '' && !acceptableType(bare)) hits.push(hit('protocol-content-type-not-allowed'));
  }
  if (userAgent === undefined || userAgent.trim() === '') hits.push(hit('protocol-missing-user-agent', 'notice'));
  // Every HTTP client sends Accept, except a browser opening a WebSocket (and load balancers' health checks, to real routes).
  if (pl >= 3 && (accept === undefined || accept.trim() === '') && !upgrade) hits.push(hit('protocol-missing-accept', 'notice'));
  return hits;
}

/** One part of a multipart body: names and file names a parser can read one way and the app another. */
function multipartPart(head: string, name: string, filename: string | undefined, pl: ValueContext['pl']): Hit[] {
  const hits: Hit[] = [];
  if (!/content-disposition:\s*form-data/i.test(head)) hits.push(hit('multipart-disposition'));
  if (!/^[\w.\-\[\]]{1,100}$/.test(name)) hits.push(hit('multipart-field-name'));
  if (name === '_charset_') hits.push(hit('multipart-charset-field'));
  if (filename !== undefined && /["';=\\\x00-\x1f]|\.\.|^\s|\s$/.test(filename) && (pl >= 3 || /["=\\;\x00-\x1f]/.test(filename))) hits.push(hit('multipart-file-name'));
  const type = /content-type:\s*([^\r\n]*)/i.exec(head)?.[1];
  if (type !== undefined) {
    const charset = /charset\s*=\s*"?([^";\s]+)/i.exec(type)?.[1];
    if (charset !== undefined && !CHARSETS.test(charset.toLowerCase())) hits.push(hit('multipart-charset'));
    if (/;.*;|boundary/i.test(type) && /charset/i.test(type)) hits.push(hit('multipart-charset'));
  }
  if (/content-transfer-encoding/i.test(head)) hits.push(hit('multipart-transfer-encoding'));
  return hits;
}

export const protocolHits = { request, multipartPart };
