import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { SYSTEM_ACTOR } from '../../../src/auth/actor.js';
import { createAccount, type NewAccount } from '../../../src/auth/accounts/account-service.js';
import { recordConsent } from '../../../src/privacy/telehealth-consent.js';
import { Repository } from '../../../src/records/repository.js';
import { buildApp } from '../../../src/server/app.js';
import { loadTlsMaterial } from '../../../src/server/tls.js';
import { webAppDir } from '../../../src/server/web-app-routes.js';
import { appointment } from '../../../src/test-support/fixtures.js';
import { startTestNode, type StoreKind, type TestNode } from '../../../src/test-support/test-node.js';

export const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const repoRoot = path.resolve(import.meta.dirname, '../../..');

/** A node serving the built web app over HTTPS on 127.0.0.1:<random port>, its public URL that origin. */
export interface BrowserNode {
  node: TestNode;
  https: FastifyInstance;
  origin: string;
  account(key: string, role: 'clinician' | 'reception' | 'patient' | 'admin', name: string): Promise<NewAccount & { email: string }>;
  /** A booked telehealth appointment of this patient with this practitioner, each at its own time. */
  appointment(patientId: string, practitionerId: string): Promise<string>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The app bundle the node serves; built once if this checkout has none (npm run build makes it). */
export async function ensureWebBuild(): Promise<void> {
  if (existsSync(path.join(webAppDir(), 'index.html'))) return;
  await promisify(execFile)(path.join(repoRoot, 'node_modules/.bin/vite'), ['build', '--config', 'web/vite.config.ts', '--logLevel', 'warn'], { cwd: repoRoot, timeout: 120_000 });
}

/**
 * `hostname`: the name in the public URL the browser opens (the node listens on 127.0.0.1 either
 * way). 'localhost' where the page needs a secure context with a domain, as WebAuthn does: an IP
 * address can not be a WebAuthn relying party id.
 */
export async function startBrowserNode(env: Record<string, string> = {}, kind: StoreKind = 'pglite', hostname: '127.0.0.1' | 'localhost' = '127.0.0.1'): Promise<BrowserNode> {
  await ensureWebBuild();
  const port = await freePort();
  const origin = `https://${hostname}:${port}`;
  // The shield on, as in production: real Chromium traffic must pass it.
  const node = await startTestNode(kind, { TELESALUD_PUBLIC_URL: origin, TELESALUD_SHIELD: 'on', ...env });
  const tls = await loadTlsMaterial({ tls: undefined, dataDir: node.config.dataDir });
  const https = await buildApp(node.ctx, { cert: tls.cert, key: tls.key });
  await https.listen({ port, host: '127.0.0.1' });
  const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'browser-test', source: 'test' });
  let slot = 0;
  return {
    node,
    https,
    origin,
    async account(key, role, name) {
      const email = `${key.toLowerCase()}@clinica.example.org`;
      const made = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email, role, name, password: PASSWORD });
      // These patients have agreed to telehealth; the consent step itself is test/browser/privacy-consent.test.ts's.
      if (made.patientId) await recordConsent(node.ctx.store.db, { patientRef: `Patient/${made.patientId}`, accountId: made.id, source: 'test' });
      return { ...made, email };
    },
    async appointment(patientId, practitionerId) {
      // Today, so the appointment is open for its consultation.
      const start = new Date(Date.now() - 5 * 60_000 + slot++ * 30 * 60_000).toISOString();
      // Straight through the repository (as the system): the fixture is not what these tests are about.
      return ((await records.create(appointment(patientId, practitionerId, start, 20) as never)) as { id: string }).id;
    },
    async stop() {
      await https.close();
      await node.stop();
    },
  };
}
