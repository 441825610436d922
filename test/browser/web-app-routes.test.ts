import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webAppDir } from '../../src/server/web-app-routes.js';
import { startTestNode, type TestNode } from '../../src/test-support/test-node.js';
import { ensureWebBuild } from './support/browser-node.js';

describe('web app serving', () => {
  let node: TestNode;
  let script: string;
  beforeAll(async () => {
    await ensureWebBuild();
    script = (await readdir(path.join(webAppDir(), 'assets'))).find((f) => f.endsWith('.js'))!;
    node = await startTestNode('pglite', { TELESALUD_PUBLIC_URL: 'https://clinica.test' });
  });
  afterAll(async () => node?.stop());

  const get = (url: string) => node.app.inject({ method: 'GET', url, headers: { accept: 'text/html,*/*', host: 'clinica.test' } });

  it('answers the app routes with index.html, uncached, under a strict CSP and camera/microphone for this origin only', async () => {
    for (const url of ['/', '/sign-in', '/consult/guest', '/consult/3f1c2a9e-8d7b-4c1a-9e2f-0a1b2c3d4e5f', '/portal', '/portal/record', '/invite/Zm9vYmFyYmF6', '/clinic', '/clinic/patients/3f1c2a9e', '/admin', '/admin/audit']) {
      const res = await get(url);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.headers['cache-control']).toBe('no-cache');
      const csp = String(res.headers['content-security-policy']);
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).toContain("connect-src 'self' wss://clinica.test");
      expect(res.headers['permissions-policy']).toContain('camera=(self), microphone=(self), display-capture=(self)');
      expect(res.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    }
  });

  it('sends the build\'s Brotli or gzip copy of an asset to a browser that accepts it, the same bytes once decoded', async () => {
    const plain = await node.app.inject({ method: 'GET', url: `/assets/${script}`, headers: { host: 'clinica.test' } });
    expect(plain.statusCode).toBe(200);
    expect(plain.headers['content-encoding']).toBeUndefined();
    for (const [accept, encoding, decode] of [['br, gzip', 'br', brotliDecompressSync], ['gzip', 'gzip', gunzipSync]] as const) {
      const res = await node.app.inject({ method: 'GET', url: `/assets/${script}`, headers: { host: 'clinica.test', 'accept-encoding': accept } });
      expect(res.statusCode, accept).toBe(200);
      expect(res.headers['content-encoding'], accept).toBe(encoding);
      expect(res.headers['content-type'], accept).toMatch(/javascript/);
      expect(res.headers.vary, accept).toMatch(/accept-encoding/i);
      expect(res.rawPayload.length, accept).toBeLessThan(plain.rawPayload.length / 2);
      expect(decode(res.rawPayload).equals(plain.rawPayload), accept).toBe(true);
    }
  });

  it('serves hashed assets for a year, and nothing else: no listing, no dotfiles, nothing outside dist/web', async () => {
    const asset = await get(`/assets/${script}`);
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['cache-control']).toMatch(/max-age=31536000.*immutable/);
    for (const url of ['/assets/', '/assets/.env', '/assets/../index.html', '/assets/%2e%2e/%2e%2e/package.json', '/consult/bad id!', '/index.html', '/package.json', '/portal/%2e%2e/%2e%2e/package.json', '/admin/<script>', '/clinic/a%00b']) {
      expect([400, 401, 403, 404]).toContain((await get(url)).statusCode);
    }
  });
});
