import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { stateDirectories, writeEdgeConfig, type EdgeConfigOptions } from '../../src/edge/edge-config/nginx-config.js';
import { readRouteTable } from '../../src/edge/edge-config/route-table.js';
import { ensureDebianPackages } from './support/debian-packages.js';
import { freePort } from './support/edge-nginx.js';
import { createTestPki, handshakeWithStatusRequest, type StapleSeen, type TestPki } from './support/ocsp-responder.js';
import { request, sendRaw } from './support/raw-https.js';

/** nginx, started by this test and stopped by its pid. */
interface Nginx {
  stop(): Promise<void>;
}

describe('the generated edge staples OCSP for a CA-issued certificate (real nginx, real openssl responder) and does not publish /metrics', () => {
  let root: string;
  let pki: TestPki;
  let edgePort: number;
  let conf: string;
  let stateDir: string;
  let nginx: Nginx | undefined;

  async function startNginx(): Promise<Nginx> {
    const errorLog = path.join(stateDir, 'error.log');
    const child: ChildProcess = spawn('nginx', ['-c', conf, '-e', errorLog, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr += d));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr.trim()} ${await readFile(errorLog, 'utf8').catch(() => '')}`);
      const answer = await sendRaw(edgePort, request('GET', '/healthz', [['Host', 'localhost'], ['User-Agent', 'telesalud-ocsp-test'], ['Accept', 'application/json']]), { timeoutMs: 5000 });
      if (answer.status !== 0) break;
      if (Date.now() > deadline) throw new Error(`nginx did not answer on ${edgePort}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return {
      async stop() {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGQUIT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await gone;
        clearTimeout(timer);
      },
    };
  }

  /** nginx asks the responder on a handshake and staples from the next one on (each worker its own): ask a few times. */
  async function handshakesUntilStapled(tries: number): Promise<StapleSeen[]> {
    const seen: StapleSeen[] = [];
    for (let i = 0; i < tries; i++) {
      const one = await handshakeWithStatusRequest(edgePort, pki.caCert);
      seen.push(one);
      if (one.stapled) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    return seen;
  }

  beforeAll(async () => {
    await ensureDebianPackages(['nginx', 'libnginx-mod-http-modsecurity', 'modsecurity-crs']);
    root = await mkdtemp(path.join(os.tmpdir(), 'telesalud-edge-ocsp-'));
    pki = await createTestPki(path.join(root, 'pki'), await freePort(), { validityMinutes: 10 });
    await pki.startResponder();
    edgePort = await freePort();
    stateDir = path.join(root, 'edge-state');
    for (const d of stateDirectories(stateDir)) await mkdir(d, { recursive: true });
    const config = loadConfig({ TELESALUD_DATA_DIR: '/nonexistent/telesalud-edge-ocsp-test', TELESALUD_PUBLIC_URL: 'https://localhost' });
    const edge: EdgeConfigOptions = {
      dir: path.join(root, 'edge'),
      serverName: 'localhost',
      listen: [`127.0.0.1:${edgePort}`],
      // No node behind it: stapling is the edge's own business, and a closed port answers 502 for routes that exist.
      upstreams: [`127.0.0.1:${await freePort()}`],
      upstreamCa: undefined,
      upstreamName: undefined,
      cert: pki.fullchain,
      key: pki.serverKey,
      trustedCertificate: pki.caCert,
      resolver: undefined,
      crsDir: '/usr/share/modsecurity-crs',
      modulesDir: '/usr/lib/nginx/modules',
      stateDir,
      user: os.userInfo().username,
    };
    const result = await writeEdgeConfig(edge, await readRouteTable(config));
    expect(result.ocspStapling).toBe(true);
    conf = path.join(edge.dir, 'nginx.conf');
    nginx = await startNginx();
  }, 600_000);

  afterAll(async () => {
    await nginx?.stop();
    await pki?.stopResponder();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('writes ssl_stapling with verification against the issuer', async () => {
    const http = await readFile(path.join(path.dirname(conf), 'telesalud-http.conf'), 'utf8');
    expect(http).toContain('ssl_stapling on;');
    expect(http).toContain('ssl_stapling_verify on;');
    expect(http).toContain(`ssl_trusted_certificate ${pki.caCert};`);
  });

  it('staples the responder\'s good answer to handshakes that ask for it', async () => {
    const seen = await handshakesUntilStapled(20);
    const last = seen.at(-1)!;
    expect(last.verified, last.output).toBe(true);
    expect(last.stapled, `${seen.length} handshakes, none stapled: ${last.output}`).toBe(true);
    expect(last.certStatus).toBe('good');
    expect(pki.answered()).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('does not publish /metrics (Prometheus scrapes the nodes directly): 404 at the edge, while a real route goes on to the nodes', async () => {
    const headers: [string, string][] = [['Host', 'localhost'], ['User-Agent', 'Prometheus/2.45.0'], ['Accept', 'text/plain'], ['Authorization', 'Bearer 0123456789abcdef0123456789abcdef']];
    const metrics = await sendRaw(edgePort, request('GET', '/metrics', headers), { ca: await readFile(pki.caCert, 'utf8') });
    expect(metrics.status).toBe(404);
    const http = await readFile(path.join(path.dirname(conf), 'telesalud-http.conf'), 'utf8');
    expect(http).not.toMatch(/location [=~] "?\^?\/metrics/);
    // The same request to a path the edge publishes reaches for a node (none is running: 502).
    const health = await sendRaw(edgePort, request('GET', '/healthz', headers), { ca: await readFile(pki.caCert, 'utf8') });
    expect(health.status).toBe(502);
  });

  it('after the certificate is revoked, a restarted edge asks the responder and staples nothing', async () => {
    await pki.revoke();
    await nginx!.stop();
    const askedBefore = pki.answered();
    nginx = await startNginx();
    const seen = await handshakesUntilStapled(8);
    for (const one of seen) {
      expect(one.verified, one.output).toBe(true);
      expect(one.stapled, one.output).toBe(false);
    }
    expect(seen).toHaveLength(8);
    // nginx did ask (and heard "revoked"): no staple is not just a responder never reached.
    expect(pki.answered()).toBeGreaterThan(askedBefore);
  }, 60_000);
});
