import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods, RouteOptions } from 'fastify';
import type { AppContext } from '../server/app-context.js';
import { InMemoryBanStore, type BanStore } from './ban-store.js';
import { FHIR_BASE } from './oauth-parameters.js';
import { bareType, browserOwnPath, inspectRequest, type InspectedRequest, type Verdict } from './request-inspection.js';
import { ShieldStats } from './shield-stats.js';
import { ALLOWED_METHODS, KNOWN_BODY_TYPES } from './protocol-rules.js';
import { API_CONTENT_SECURITY_POLICY, securityHeaders } from './security-headers.js';
import type { TrustedProxies } from './trusted-proxies.js';

const BLOCK_MESSAGE = 'request refused by the shield';
export const REFUSED_HEADER = 'x-refused-by';
/** Bytes of a body sent to no route that are read for inspection (it is refused either way). */
const UNROUTED_BODY_BYTES = 64 * 1024;
/** Points a positive-model refusal (no route, wrong method or type) adds toward a ban. */
const REFUSAL_POINTS = 2;
// Types whose bodies are files: stored sealed and never interpreted, so not read as text.
const FILE_TYPES = new Set(['application/pdf', 'image/png', 'image/jpeg', 'application/dicom', 'application/octet-stream']);
const FILE_ROUTES = new Set(['/api/documents']);

/** What the positive model knows of one route: the body types its scope can parse. */
interface RouteModel {
  types: Set<string>;
  bodyLimit: number | undefined;
}

/** One method of one route as the shield allows it: what the production edge's allowlist is generated from. */
export interface AllowedRoute {
  method: string;
  /** The route's URL as registered (`/fhir/R4/:type/:id`, `/portal/*`). */
  url: string;
  /** Body types the route parses (empty when none it accepts). */
  types: string[];
  /** The route's own body limit, when it sets one (otherwise the app's). */
  bodyLimit: number | undefined;
  /** `pattern` of each path parameter the route's schema constrains (`*` for a wildcard). */
  paramPatterns: Record<string, string>;
}

export interface ShieldOptions {
  bans?: BanStore;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** What the shield refused since the node started, by family (for /metrics). */
    shieldStats: ShieldStats;
    /** The positive model: every route and method the shield lets through (read by `telesalud edge-config`). */
    shieldAllowedRoutes: () => AllowedRoute[];
  }
  interface FastifyRequest {
    /** The body the shield read and inspected, handed on to the route's parser. */
    shieldBody: Buffer | undefined;
  }
}

/**
 * The shield, in the node's own process, before routing reaches any handler: bans, the positive
 * model (the route table is the allowlist), attack inspection with anomaly scoring, security
 * headers. Registered first, at the root, so its hooks run before every other one.
 */
async function shieldPlugin(app: FastifyInstance, ctx: AppContext & ShieldOptions): Promise<void> {
  const headers = securityHeaders(ctx.config.publicUrl);
  const bans = ctx.bans ?? new InMemoryBanStore();
  const enabled = ctx.config.shield === 'on';
  const models = new Map<string, RouteModel>();
  const allowedRoutes: AllowedRoute[] = [];
  const stats = new ShieldStats(bans);
  const publicHost = new URL(ctx.config.publicUrl).hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const fhirBase = `${ctx.config.publicUrl}${FHIR_BASE}`;
  app.decorate('shieldStats', stats);
  app.decorate('shieldAllowedRoutes', () => allowedRoutes.map((route) => ({ ...route, types: [...route.types], paramPatterns: { ...route.paramPatterns } })));
  if (!enabled) ctx.logger.warn('the shield is off (TELESALUD_SHIELD=off): requests are not inspected; use this for benchmarks and diagnosis only');

  app.decorateRequest('shieldBody', undefined);

  // The positive model, from the route table as it is built: which body types each route's scope parses.
  app.addHook('onRoute', function (this: FastifyInstance, route: RouteOptions) {
    const types = new Set<string>();
    const objectBody = (route.schema?.body as { type?: string } | undefined)?.type === 'object';
    for (const type of KNOWN_BODY_TYPES) {
      if (!this.hasContentTypeParser(type)) continue;
      // Every scope parses text/plain and JSON by default; a route whose schema wants an object takes structured bodies only.
      if (objectBody && (type === 'text/plain' || FILE_TYPES.has(type))) continue;
      types.add(type);
    }
    const paramPatterns: Record<string, string> = {};
    const params = (route.schema?.params as { properties?: Record<string, { pattern?: unknown; enum?: unknown }> } | undefined)?.properties ?? {};
    for (const [name, property] of Object.entries(params)) {
      if (typeof property.pattern === 'string') paramPatterns[name] = property.pattern;
      // An enum (the FHIR resource types) as the pattern it amounts to.
      else if (Array.isArray(property.enum) && property.enum.every((v) => typeof v === 'string')) paramPatterns[name] = `^(?:${(property.enum as string[]).map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`;
    }
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
      models.set(`${method} ${route.url}`, { types, bodyLimit: route.bodyLimit });
      allowedRoutes.push({ method, url: route.url, types: [...types], bodyLimit: route.bodyLimit, paramPatterns });
    }
  });

  app.addHook('onSend', async (_request, reply, payload) => {
    for (const [name, value] of Object.entries(headers)) if (!reply.hasHeader(name)) reply.header(name, value);
    if (!reply.hasHeader('content-security-policy')) reply.header('content-security-policy', API_CONTENT_SECURITY_POLICY);
    reply.removeHeader('x-powered-by');
    reply.removeHeader('server');
    return payload;
  });

  if (!enabled) return;

  replaceClientErrorHandler(app, ctx, bans, stats);

  app.addHook('onRequest', async (request, reply) => {
    const source = request.ip;
    const until = await bans.bannedUntil(source);
    if (until !== undefined) {
      reply.header('retry-after', String(Math.ceil((until - Date.now()) / 1000)));
      stats.count('banned');
      return refuse(request, reply, 403);
    }

    const routeUrl = request.is404 ? undefined : request.routeOptions.url;
    const model = routeUrl ? models.get(`${request.method} ${routeUrl}`) : undefined;
    const type = bareType(request.headers['content-type']);
    const hasBody = (request.headers['content-length'] !== undefined && request.headers['content-length'] !== '0') || request.headers['transfer-encoding'] !== undefined;

    // A body no parser of this route would read is refused unread (below), after the rest is inspected.
    const typeRefused = routeUrl !== undefined && hasBody && model !== undefined && !model.types.has(type);
    let body: Buffer | undefined;
    if (hasBody && !typeRefused && !(routeUrl && FILE_ROUTES.has(routeUrl) && (FILE_TYPES.has(type) || type === 'text/plain'))) {
      const limit = routeUrl ? (model?.bodyLimit ?? 1024 * 1024) : UNROUTED_BODY_BYTES;
      const declared = Number(request.headers['content-length'] ?? 0);
      if (routeUrl && declared > limit) return; // the route's own limit answers 413
      body = await readBody(request, limit);
      if (body === undefined && routeUrl) return reply.code(413).send({ error: 'too-long', message: 'the body is larger than this route accepts' });
    }

    // A path that has routes for other methods: the client got the method wrong (405 below).
    const allowed = routeUrl ? [] : [...ALLOWED_METHODS].filter((m) => m !== request.method && app.findRoute({ method: m as HTTPMethods, url: request.url.split('?')[0]! }) !== null);
    const inspected: InspectedRequest = {
      method: request.method,
      url: request.raw.url ?? request.url,
      httpVersion: request.raw.httpVersion,
      headers: headerPairs(request.raw.rawHeaders),
      body,
      route: routeUrl ? { url: routeUrl, fhirSearch: request.method === 'GET' && routeUrl === '/fhir/R4/:type' } : undefined,
      knownPath: allowed.length > 0,
      publicHost,
      fhirBase,
    };
    const verdict = inspectRequest(inspected);
    if (verdict.blocked) {
      stats.count(verdict.family ?? 'protocol');
      // Refused at once; the security event and the ban tally follow in the background.
      void recordBlock(ctx, bans, source, request.id, routeUrl ?? 'unmatched', request.method, verdict);
      return refuse(request, reply, 403);
    }

    // The positive model: no route, a method the path does not have, a body type the route does not parse.
    if (!routeUrl) {
      // A browser asks for its favicon by itself: that miss is not a probe.
      if (!browserOwnPath(request.url.split('?')[0]!)) void offence(bans, ctx.config.trustedProxies, source, REFUSAL_POINTS);
      if (allowed.length > 0) {
        reply.header('allow', allowed.join(', '));
        return positiveRefusal(request, reply, 405, 'not-supported', `${request.method} is not allowed here`);
      }
      return positiveRefusal(request, reply, 404, 'not-found', `no route for ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}`);
    }
    if (typeRefused) {
      void offence(bans, ctx.config.trustedProxies, source, REFUSAL_POINTS);
      return positiveRefusal(request, reply, 415, 'not-supported', 'this content type is not accepted here');
    }
    request.shieldBody = body;
  });

  // Hand the bytes the shield read to the route's parser, as if they came from the socket.
  app.addHook('preParsing', async (request, _reply, payload) => {
    const body = request.shieldBody;
    if (body === undefined) return payload;
    request.shieldBody = undefined;
    const stream = new Readable({ read() {} }) as Readable & { receivedEncodedLength?: number };
    stream.push(body);
    stream.push(null);
    stream.receivedEncodedLength = body.length;
    return stream;
  });
}

/** Skip the encapsulation: the shield's hooks must see every route of the application. */
export const shield = Object.assign(shieldPlugin, { [Symbol.for('skip-override')]: true });

/**
 * Loopback and the configured proxies are never banned: they are this machine (health checks) or
 * the load balancers every client comes through (one that sent no X-Forwarded-For shows as
 * itself), and banning them would shut everyone out. Their attacks are still refused one by one.
 */
function offence(bans: BanStore, proxies: TrustedProxies, source: string, points: number): Promise<number | undefined> {
  if (source === '127.0.0.1' || source === '::1' || source === '::ffff:127.0.0.1' || proxies.has(source)) return Promise.resolve(undefined);
  return bans.offence(source, points);
}

function headerPairs(raw: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
  return out;
}

/**
 * The whole body, or undefined when it is longer than `limit` (a request to no route: its first
 * `limit` bytes). Plain stream events: this runs on every request with a body.
 */
function readBody(request: FastifyRequest, limit: number): Promise<Buffer | undefined> {
  const raw = request.raw;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (body: Buffer | undefined) => {
      raw.off('data', onData);
      raw.off('end', onEnd);
      raw.off('error', onError);
      resolve(body);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      if (!request.is404) return done(undefined);
      chunks.push(chunk.subarray(0, Math.max(0, chunk.length - (size - limit))));
      raw.pause();
      done(Buffer.concat(chunks));
    };
    const onEnd = () => done(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    const onError = (err: Error) => {
      raw.off('data', onData);
      raw.off('end', onEnd);
      reject(err);
    };
    raw.on('data', onData);
    raw.on('end', onEnd);
    raw.on('error', onError);
  });
}

function isFhir(url: string): boolean {
  return url.startsWith('/fhir/');
}

/** 403, with the request id and nothing about why: the reasons are in the security event. */
function refuse(request: FastifyRequest, reply: FastifyReply, status: 403): FastifyReply {
  // The header says the same as the body, for HEAD requests that get no body.
  reply.code(status).header('cache-control', 'no-store').header('connection', 'close').header(REFUSED_HEADER, 'shield').header('x-request-id', request.id);
  if (isFhir(request.url)) {
    return reply.type('application/fhir+json; charset=utf-8').send({
      resourceType: 'OperationOutcome',
      id: request.id,
      issue: [{ severity: 'error', code: 'security', diagnostics: `${BLOCK_MESSAGE} (request ${request.id})` }],
    });
  }
  return reply.type('application/json; charset=utf-8').send({ error: 'blocked', requestId: request.id, message: BLOCK_MESSAGE });
}

function positiveRefusal(request: FastifyRequest, reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  reply.code(status).header('cache-control', 'no-store');
  if (isFhir(request.url)) {
    return reply.type('application/fhir+json; charset=utf-8').send({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics: message }] });
  }
  return reply.type('application/json; charset=utf-8').send({ error: code, message });
}

/**
 * The security event: who (source address), where (route, method), why (rule ids, families,
 * score, field names) — never the values, which may be a patient's note or a password.
 */
async function recordBlock(ctx: AppContext, bans: BanStore, source: string, requestId: string, route: string, method: string, verdict: Verdict): Promise<void> {
  const detail = { route, method, rules: verdict.rules, families: verdict.families, score: verdict.score, locations: verdict.locations };
  try {
    // The tally first: the attacker's next request must already count it.
    const bannedUntil = await offence(bans, ctx.config.trustedProxies, source, verdict.score);
    await ctx.audit.record({ actor: 'shield', action: 'shield-block', outcome: 'denied', source, requestId, detail });
    if (bannedUntil !== undefined) {
      await ctx.audit.record({ actor: 'shield', action: 'shield-ban', outcome: 'denied', source, requestId, detail: { until: new Date(bannedUntil).toISOString() } });
    }
  } catch (err) {
    // The request is refused whatever happens; a failed audit write is logged (without the request's content).
    ctx.logger.error({ err: { message: (err as Error).message }, requestId }, 'shield could not record a security event');
  }
  ctx.logger.warn({ requestId, route, rules: verdict.rules, score: verdict.score }, 'shield blocked a request');
}

/**
 * Requests the HTTP parser itself rejects (an unknown method, Content-Length with
 * Transfer-Encoding, a header with a line break, a broken chunk): smuggling and protocol
 * attacks. They get the shield's 403 and a security event instead of a bare 400.
 */
function replaceClientErrorHandler(app: FastifyInstance, ctx: AppContext, bans: BanStore, stats: ShieldStats): void {
  const server = app.server;
  const previous = server.listeners('clientError') as ((err: Error, socket: Socket) => void)[];
  server.removeAllListeners('clientError');
  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    const code = err.code ?? '';
    if (!code.startsWith('HPE_') || code === 'HPE_HEADER_OVERFLOW' || socket.destroyed) {
      for (const listener of previous) listener.call(app, err, socket);
      return;
    }
    const requestId = randomUUID();
    const source = socket.remoteAddress ?? 'unknown';
    const verdict: Verdict = { score: 5, rules: ['protocol-malformed-request'], families: ['protocol'], family: 'protocol', locations: [code.toLowerCase()], blocked: true };
    stats.count('protocol');
    void recordBlock(ctx, bans, source, requestId, 'unparsed', 'unparsed', verdict);
    const body = JSON.stringify({ error: 'blocked', requestId, message: BLOCK_MESSAGE });
    if (socket.writable) {
      const h = Object.entries(securityHeaders(ctx.config.publicUrl)).map(([n, v]) => `${n}: ${v}\r\n`).join('');
      socket.write(`HTTP/1.1 403 Forbidden\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\ncontent-security-policy: ${API_CONTENT_SECURITY_POLICY}\r\n${h}${REFUSED_HEADER}: shield\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`);
    }
    socket.destroy();
  });
}
