import type { EdgeRoute } from './route-table.js';

/** The router's own limit on one path parameter (app.ts `maxParamLength`). */
const MAX_PARAM_LENGTH = 128;
/** A request with no body to a path that takes none may still say `Content-Length: 0`. */
const BODYLESS_LIMIT = '1';

/** One `location` of the edge: a path of the app and what may be sent to it. */
export interface EdgeLocation {
  /** `= /path` for a fixed path, `~ "^…$"` for one with parameters. */
  match: string;
  route: EdgeRoute;
  methods: string[];
  types: string[];
  bodyLimit: number;
  regex: RegExp | undefined;
}

/** A JSON-schema `pattern` as a piece of a PCRE path regex, when it is one nginx can use safely. */
function patternPiece(pattern: string | undefined, fallback: string): string {
  if (pattern === undefined) return fallback;
  const m = /^\^(.*)\$$/.exec(pattern);
  // Only a plain anchored pattern: a quote, `$` (an nginx variable), `;` or a space would break the quoted regex.
  if (!m || /["'$;\s]/.test(m[1]!)) return fallback;
  return `(?:${m[1]})`;
}

/** The route's URL as an anchored regex over the decoded, normalised path nginx routes on (`$uri`). */
export function routeRegex(route: EdgeRoute): string {
  const parts = route.url.split('/').map((segment) => {
    if (segment === '*') return patternPiece(route.paramPatterns['*'], '.*');
    if (segment.startsWith(':')) return patternPiece(route.paramPatterns[segment.slice(1)], `[^/]{1,${MAX_PARAM_LENGTH}}`);
    return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  });
  // `/portal/*` also answers `/portal/` (an empty wildcard).
  return `^${parts.join('/')}$`;
}

function isFixed(url: string): boolean {
  return !url.includes(':') && !url.includes('*');
}

/** Fastify's order: fixed segments before parameters before wildcards, so the most specific path is tried first. */
function specificity(url: string): [number, number, number] {
  const segments = url.split('/');
  return [segments.includes('*') ? 1 : 0, segments.filter((s) => s.startsWith(':')).length, -url.replace(/:[^/]+|\*/g, '').length];
}

/** A concrete path the route answers, to see which less specific routes also match it. */
function samplePath(url: string): string {
  return url.replace(/:[^/]+/g, 'x').replace(/\*/g, 'x');
}

/**
 * The allowlist as nginx locations. nginx picks one location per path (an exact one, else the
 * first regex that matches) while Fastify routes per method, so a location also allows what the
 * less specific routes it shadows allow on the same path (POST `/fhir/R4/Patient/_search` and GET
 * `/fhir/R4/Patient/_search` reach different routes, both behind one location).
 */
export function edgeLocations(routes: EdgeRoute[]): EdgeLocation[] {
  const ordered = [...routes].sort((a, b) => {
    const [x, y] = [specificity(a.url), specificity(b.url)];
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2] || a.url.localeCompare(b.url);
  });
  const regexes = new Map(ordered.map((route) => [route.url, new RegExp(routeRegex(route))]));
  return ordered.map((route, index) => {
    const methods = new Set(route.methods);
    const types = new Set(route.types);
    let bodyLimit = route.bodyLimit;
    const sample = samplePath(route.url);
    for (const other of ordered.slice(index + 1)) {
      if (!regexes.get(other.url)!.test(sample)) continue;
      for (const m of other.methods) methods.add(m);
      for (const t of other.types) types.add(t);
      bodyLimit = Math.max(bodyLimit, other.bodyLimit);
    }
    const fixed = isFixed(route.url);
    return {
      match: fixed ? `= ${route.url}` : `~ "${routeRegex(route)}"`,
      route,
      methods: [...methods].sort(),
      types: [...types].sort(),
      bodyLimit,
      regex: fixed ? undefined : regexes.get(route.url),
    };
  });
}

/** A content-type allowlist as an nginx map: bare type, optional parameters, any case. */
export function contentTypeMap(variable: string, types: string[]): string {
  const lines = [`map $content_type ${variable} {`, '    default 0;', '    "" 1;'];
  for (const type of types) lines.push(`    "~*^${type.replace(/[.+]/g, '\\$&')}\\s*(?:;.*)?$" 1;`);
  lines.push('}');
  return lines.join('\n');
}

/**
 * The generated allowlist: one map per distinct set of body types, then one location per path
 * with its methods (anything else 405 at the edge), body size and body types, and a final
 * location that refuses every path the app does not have.
 */
export function allowlistConfig(routes: EdgeRoute[], proxyInclude: string, websocketInclude: string, websocketPaths: string[], emptyRoot: string): { maps: string; locations: string } {
  const locations = edgeLocations(routes);
  const typeSets = new Map<string, string>();
  const maps: string[] = [];
  for (const location of locations) {
    const key = location.types.join(' ');
    if (!typeSets.has(key)) {
      const variable = `$telesalud_body_type_${typeSets.size}`;
      typeSets.set(key, variable);
      maps.push(`# Body types: ${location.types.length ? location.types.join(', ') : 'none (bodyless requests only)'}\n${contentTypeMap(variable, location.types)}`);
    }
  }
  const blocks: string[] = [];
  for (const location of locations) {
    const takesBody = location.methods.some((m) => m !== 'GET' && m !== 'HEAD');
    const limit = takesBody ? String(location.bodyLimit) : BODYLESS_LIMIT;
    const lines = [
      `# ${location.route.url}: ${location.methods.join(' ')}`,
      `location ${location.match} {`,
      `    if ($telesalud_method_${methodSetName(location.methods)} = 0) { return 405; }`,
      `    if (${typeSets.get(location.types.join(' '))} = 0) { return 415; }`,
      `    client_max_body_size ${limit};`,
      `    include ${websocketPaths.includes(location.route.url) ? websocketInclude : proxyInclude};`,
      '}',
    ];
    blocks.push(lines.join('\n'));
  }
  const methodSets = new Set(locations.map((l) => l.methods.join(' ')));
  for (const set of methodSets) {
    const methods = set.split(' ');
    maps.push(`map $request_method $telesalud_method_${methodSetName(methods)} {\n    default 0;\n${methods.map((m) => `    ${m} 1;`).join('\n')}\n}`);
  }
  // 404 from the content phase (try_files), not `return`: ModSecurity inspects the request first,
  // so an attack on a path that does not exist is still seen and refused as one (403).
  blocks.push(`# Every other path: the app has no route for it, so it never reaches a node.\nlocation / {\n    root ${emptyRoot};\n    try_files /.no-route-in-telesalud =404;\n}`);
  return { maps: maps.join('\n\n'), locations: blocks.join('\n\n') };
}

function methodSetName(methods: string[]): string {
  return methods.map((m) => m.toLowerCase()).join('_');
}
