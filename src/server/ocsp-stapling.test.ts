import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, handshakeWithStatusRequest, type TestPki } from '../../test/edge/support/ocsp-responder.js';
import { freePort } from '../../test/edge/support/edge-nginx.js';
import { createLogger } from '../logging/logger.js';
import { startTestNode, type TestNode } from '../test-support/test-node.js';
import { buildApp } from './app.js';
import { OcspStapler, staplingPlan } from './ocsp-stapling.js';
import { CONNECTION_LIMITS, loadTlsMaterial, TLS_OPTIONS } from './tls.js';

/** Log lines the stapler wrote, parsed. */
type LogLine = { level: string; msg: string; [key: string]: unknown };

describe('OCSP stapling on the node\'s own TLS server, against a real openssl OCSP responder', () => {
  let root: string;
  let pki: TestPki;
  let node: TestNode;
  const servers: FastifyInstance[] = [];
  /** The node of the good-answer test, kept running for the revocation that follows. */
  let running: { port: number; app: FastifyInstance } | undefined;
  const logs: LogLine[] = [];
  const logger = createLogger('debug', { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });

  /** The HTTPS app of a node serving the CA-issued certificate, wired as `telesalud serve` wires it. */
  async function serveWithCertificate(): Promise<{ port: number; app: FastifyInstance; stapler: OcspStapler }> {
    const tls = await loadTlsMaterial({ tls: { certFile: pki.fullchain, keyFile: pki.serverKey }, dataDir: node.config.dataDir });
    expect(tls.selfSigned).toBe(false);
    const stapler = OcspStapler.forCertificate(tls.cert, logger)!;
    expect(stapler).toBeDefined();
    node.ctx.ocspStapling = stapler;
    const app = await buildApp(node.ctx, { ...TLS_OPTIONS, ...CONNECTION_LIMITS, cert: tls.cert, key: tls.key });
    stapler.attach(app.server as unknown as TlsServer);
    servers.push(app);
    await app.listen({ host: '127.0.0.1', port: 0 });
    return { port: (app.server.address() as { port: number }).port, app, stapler };
  }

  async function metrics(app: FastifyInstance): Promise<string> {
    const answer = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${node.token}` } });
    expect(answer.statusCode).toBe(200);
    return answer.body;
  }

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'telesalud-ocsp-'));
    // Each answer is good for one minute: the node asks again after 30 s, so a revocation shows within the test.
    pki = await createTestPki(path.join(root, 'pki'), await freePort(), { validityMinutes: 1 });
    await pki.startResponder();
    node = await startTestNode('pglite');
  }, 120_000);

  afterAll(async () => {
    for (const app of servers) await app.close();
    await node?.stop();
    await pki?.stopResponder();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('staples only to a CA-issued certificate that names a responder and comes with its issuer; the self-signed default gets none, without error', async () => {
    const selfSigned = await loadTlsMaterial({ tls: undefined, dataDir: node.config.dataDir });
    expect(selfSigned.selfSigned).toBe(true);
    expect(staplingPlan(selfSigned.cert)).toEqual({ on: false, reason: 'self-signed certificate' });
    expect(OcspStapler.forCertificate(selfSigned.cert, logger)).toBeUndefined();
    const leafOnly = (await readFile(pki.fullchain, 'utf8')).split(/(?<=-----END CERTIFICATE-----\n)/)[0]!;
    expect(staplingPlan(leafOnly)).toMatchObject({ on: false, reason: expect.stringMatching(/no issuer certificate/) });
    expect(staplingPlan(await readFile(pki.fullchain, 'utf8'))).toMatchObject({ on: true, responder: new URL(`http://127.0.0.1:${pki.responderPort}`) });
  });

  it('staples the responder\'s good answer, asks the responder once for many handshakes, and reports it in /metrics', async () => {
    const { port, app } = (running = await serveWithCertificate());
    // The first handshakes wait up to 3 s for the first answer; on a loaded machine the answer may come just after.
    let first = await handshakeWithStatusRequest(port, pki.caCert);
    for (let i = 0; i < 5 && !first.stapled; i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      first = await handshakeWithStatusRequest(port, pki.caCert);
    }
    expect(first.verified, first.output).toBe(true);
    expect(first.stapled, first.output).toBe(true);
    expect(first.certStatus).toBe('good');
    const asked = pki.answered();
    for (let i = 0; i < 4; i++) {
      const again = await handshakeWithStatusRequest(port, pki.caCert);
      expect(again.certStatus, again.output).toBe('good');
    }
    // Cached until it is due for refresh: one request to the responder, however many handshakes.
    expect(asked).toBe(1);
    expect(pki.answered()).toBe(asked);
    const text = await metrics(app);
    expect(text).toMatch(/^telesalud_ocsp_stapling 1$/m);
    expect(text).toMatch(/^telesalud_ocsp_fetches_total\{result="good"\} 1$/m);
    const until = Number(/^telesalud_ocsp_response_valid_until_timestamp_seconds (\d+)$/m.exec(text)?.[1]);
    expect(until * 1000).toBeGreaterThan(Date.now());
    expect(until * 1000).toBeLessThanOrEqual(Date.now() + 61_000);
  });

  it('stops stapling as soon as its background refresh hears the certificate is revoked, and logs a warning', async () => {
    const { port, app } = running!;
    await pki.revoke();
    // The next refresh is due half way through the answer's minute; handshakes meanwhile still get the good one.
    const deadline = Date.now() + 75_000;
    let seen = await handshakeWithStatusRequest(port, pki.caCert);
    while (seen.stapled && Date.now() < deadline) {
      expect(seen.certStatus).toBe('good');
      await new Promise((resolve) => setTimeout(resolve, 2000));
      seen = await handshakeWithStatusRequest(port, pki.caCert);
    }
    expect(seen.stapled, seen.output).toBe(false);
    expect(seen.verified, 'the handshake itself still succeeds').toBe(true);
    const warning = logs.find((l) => l.level === 'warn' && l.ocspStatus === 'revoked');
    expect(warning?.msg).toMatch(/revoked: it is not stapled/);
    expect(warning?.responder).toBe(`http://127.0.0.1:${pki.responderPort}`);
    const text = await metrics(app);
    expect(text).toMatch(/^telesalud_ocsp_stapling 0$/m);
    expect(text).toMatch(/^telesalud_ocsp_fetches_total\{result="revoked"\} 1$/m);
  }, 120_000);

  it('a restarted node whose responder is down still completes every handshake, unstapled, warns and counts it', async () => {
    await pki.stopResponder();
    const before = logs.length;
    const { port, app } = await serveWithCertificate();
    const started = Date.now();
    const seen = await handshakeWithStatusRequest(port, pki.caCert);
    expect(seen.verified, seen.output).toBe(true);
    expect(seen.stapled).toBe(false);
    // The first handshakes wait at most a few seconds for the first answer, never indefinitely.
    expect(Date.now() - started).toBeLessThan(10_000);
    const warning = logs.slice(before).find((l) => l.level === 'warn' && l.ocspFetch === 'unreachable');
    expect(warning, JSON.stringify(logs.slice(before))).toBeDefined();
    expect(warning!.reason).toBe('ECONNREFUSED');
    expect(warning!.stillStapling).toBe(false);
    // Nothing about the key or the certificate's contents goes into the log.
    const key = await readFile(pki.serverKey, 'utf8');
    const keyBody = key.split('\n').slice(1, -2).join('');
    expect(JSON.stringify(logs)).not.toContain(keyBody.slice(0, 40));
    const text = await metrics(app);
    expect(text).toMatch(/^telesalud_ocsp_stapling 0$/m);
    expect(text).toMatch(/^telesalud_ocsp_fetches_total\{result="unreachable"\} [1-9]\d*$/m);
  });

  it('refuses an answer signed by another CA, and one that is out of date, and staples neither', async () => {
    const cert = await readFile(pki.fullchain, 'utf8');
    // Another CA's responder on this certificate's responder address: it answers, but it may not speak for our CA.
    const impostor = await createTestPki(path.join(root, 'impostor'), pki.responderPort, { validityMinutes: 1 });
    await impostor.startResponder();
    try {
      const stapler = OcspStapler.forCertificate(cert, logger)!;
      await stapler.refresh();
      stapler.close();
      expect(stapler.status()).toMatchObject({ stapling: false, fetches: { invalid: 1, good: 0 } });
      expect(logs.at(-1)).toMatchObject({ level: 'warn', ocspFetch: 'invalid', reason: expect.stringMatching(/not signed by the issuer/) });
    } finally {
      await impostor.stopResponder();
    }
    // Our own responder again, with the certificate back in good standing, seen from a clock two minutes ahead.
    await writeFile(path.join(pki.dir, 'index.txt'), (await readFile(path.join(pki.dir, 'index.txt'), 'utf8')).replace(/^R\t(\S+)\t\S+\t/m, 'V\t$1\t\t'));
    await pki.startResponder();
    const late = OcspStapler.forCertificate(cert, logger, { now: () => Date.now() + 2 * 60_000 })!;
    await late.refresh();
    late.close();
    expect(late.status()).toMatchObject({ stapling: false, fetches: { invalid: 1 } });
    expect(logs.at(-1)).toMatchObject({ ocspFetch: 'invalid', reason: 'OCSP response already expired' });
    // The same answer on a right clock is good: the refusal above was the date, not the answer.
    const onTime = OcspStapler.forCertificate(cert, logger)!;
    await onTime.refresh();
    onTime.close();
    expect(onTime.status()).toMatchObject({ stapling: true, fetches: { good: 1 } });
  });
});
