import { pino } from 'pino';
import type { Config } from '../../config/config.js';
import type { AppContext } from '../../server/app-context.js';
import { buildApp } from '../../server/app.js';
import type { AllowedRoute } from '../shield-plugin.js';

/** One path of the application with everything the edge lets through on it. */
export interface EdgeRoute {
  /** As registered in the app: `/fhir/R4/:type/:id`, `/portal/*`. */
  url: string;
  /** Methods, HEAD included wherever GET is. */
  methods: string[];
  /** Body types any method of the path parses (bodyless requests always pass). */
  types: string[];
  /** Largest body any method of the path accepts, in bytes. */
  bodyLimit: number;
  paramPatterns: Record<string, string>;
}

/**
 * A service that must never be reached: the route table is read by building the app, and no
 * route handler runs while it is read, so the store, keys and rooms are stand-ins. A plugin that
 * builds a helper from one at registration gets another stand-in; nothing is opened, so the
 * command works beside a running service (whose embedded database admits one process).
 */
function standIn(name: string): never {
  const target = function () {};
  return new Proxy(target, {
    get: (_t, property) => (property === 'then' ? undefined : standIn(`${name}.${String(property)}`)),
    apply: () => standIn(`${name}()`),
    construct: () => standIn(`new ${name}`) as object,
  }) as never;
}

/**
 * The application's route table as the shield's positive model holds it: the same build of the
 * app a node serves, so a new route reaches the edge's allowlist the moment it is written.
 */
export async function readRouteTable(config: Config): Promise<EdgeRoute[]> {
  const ctx: AppContext = {
    config,
    logger: pino({ level: 'silent' }),
    store: standIn('store'),
    bus: standIn('bus'),
    audit: standIn('audit'),
    keyRing: standIn('keyRing'),
    adminToken: standIn('adminToken'),
    sessions: standIn('sessions'),
    signIn: standIn('signIn'),
    consult: standIn('consult'),
    version: 'route-table',
    nodeId: 'route-table',
    lifecycle: { draining: false },
  };
  // Never readied nor closed: no hook of the stand-in services may run.
  const app = await buildApp(ctx);
  return mergeRoutes(app.shieldAllowedRoutes(), app.initialConfig.bodyLimit ?? 1024 * 1024);
}

/** Per-method entries of the positive model, folded into one entry per path. */
export function mergeRoutes(allowed: AllowedRoute[], defaultBodyLimit: number): EdgeRoute[] {
  const byUrl = new Map<string, EdgeRoute>();
  for (const route of allowed) {
    let entry = byUrl.get(route.url);
    if (!entry) {
      entry = { url: route.url, methods: [], types: [], bodyLimit: 0, paramPatterns: { ...route.paramPatterns } };
      byUrl.set(route.url, entry);
    }
    if (!entry.methods.includes(route.method)) entry.methods.push(route.method);
    const takesBody = route.method !== 'GET' && route.method !== 'HEAD';
    if (takesBody) {
      for (const type of route.types) if (!entry.types.includes(type)) entry.types.push(type);
      entry.bodyLimit = Math.max(entry.bodyLimit, route.bodyLimit ?? defaultBodyLimit);
    }
  }
  for (const entry of byUrl.values()) {
    if (entry.methods.includes('GET') && !entry.methods.includes('HEAD')) entry.methods.push('HEAD');
    entry.methods.sort();
    entry.types.sort();
  }
  return [...byUrl.values()].sort((a, b) => a.url.localeCompare(b.url));
}
