import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { AppContext } from './app-context.js';

/** The browser app's pages: each answers with the same index.html, the app routes by path. */
export const WEB_APP_ROUTES = ['/', '/sign-in', '/privacy', '/authorize', '/consult/guest', '/consult/:appointmentId'] as const;
/** The areas: every path under them is the app's (the portal, the clinician workspace, the admin console, invitations). */
export const WEB_APP_AREAS = ['/portal', '/clinic', '/admin', '/invite'] as const;

/** dist/web beside the compiled server (dist/server), or under the repository root when run from src/. */
export function webAppDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.basename(path.dirname(here)) === 'dist' ? path.resolve(here, '..', 'web') : path.resolve(here, '..', '..', 'dist', 'web');
}

/**
 * What the browser is allowed to do on the app's pages: only this origin's scripts, styles,
 * workers (the frame cryptor) and connections (the API and the signaling socket); no inline
 * script, no framing, camera and microphone for this origin only.
 */
export function contentSecurityPolicy(publicUrl: string): string {
  const host = new URL(publicUrl).host;
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    `connect-src 'self' wss://${host}`,
    "worker-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/**
 * Serves the built browser app (dist/web) and nothing else: hashed assets with a long cache,
 * index.html never cached, no directory listing, no dotfiles, nothing outside dist/web. The
 * pages are public (they hold no health data); every API call they make is authenticated.
 */
export async function webAppRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  // Every route of this plugin, the static ones included, is served without a session.
  app.addHook('onRoute', (route) => {
    route.config = { ...(route.config ?? {}), public: true };
  });

  // The app's own policy on everything served here (the worker script too: a worker runs under
  // its script's policy), set before the edge's default API policy would apply.
  const csp = contentSecurityPolicy(ctx.config.publicUrl);
  app.addHook('onRequest', async (_request, reply) => {
    reply
      .header('content-security-policy', csp)
      .header('permissions-policy', 'camera=(self), microphone=(self), display-capture=(self), clipboard-write=(self), geolocation=(), payment=(), usb=()')
      .header('x-content-type-options', 'nosniff');
  });

  const root = webAppDir();
  const indexFile = path.join(root, 'index.html');
  const built = existsSync(indexFile);
  if (!built) ctx.logger.warn({ root }, 'web app not built (npm run build): its pages answer 503');

  if (built && existsSync(path.join(root, 'assets'))) {
    await app.register(fastifyStatic, {
      root: path.join(root, 'assets'),
      prefix: '/assets/',
      wildcard: true,
      index: false,
      list: false,
      dotfiles: 'deny',
      decorateReply: false,
      // File names carry a content hash: a new build gets new names.
      immutable: true,
      // The build wrote .br and .gz copies (web/build/precompress.ts): sent to browsers that accept them.
      preCompressed: true,
      maxAge: '365d',
    });
  }

  let cached: string | undefined;
  const sendIndex = async (reply: FastifyReply) => {
    if (!built) return reply.code(503).send({ error: 'web-app-not-built', message: 'the web app has not been built on this node' });
    cached ??= await readFile(indexFile, 'utf8');
    return reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('referrer-policy', 'no-referrer')
      .header('x-frame-options', 'DENY')
      .header('cross-origin-opener-policy', 'same-origin')
      .send(cached);
  };
  for (const url of WEB_APP_ROUTES) {
    app.get(url, { schema: url.includes(':') ? { params: { type: 'object', properties: { appointmentId: { type: 'string', pattern: '^[A-Za-z0-9\\-.]{1,64}$' } }, required: ['appointmentId'] } } : {} }, (_request, reply) => sendIndex(reply));
  }
  // The app routes inside an area itself; the path is checked here only for its shape.
  const areaPath = { params: { type: 'object', properties: { '*': { type: 'string', pattern: '^[A-Za-z0-9\\-._/]{0,200}$' } } } };
  for (const area of WEB_APP_AREAS) {
    app.get(area, (_request, reply) => sendIndex(reply));
    app.get(`${area}/*`, { schema: areaPath }, (_request, reply) => sendIndex(reply));
  }
}
