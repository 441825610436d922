import { connect as connectTcp, type Socket } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/server/app.js';
import { CONNECTION_LIMITS, loadTlsMaterial, TLS_OPTIONS } from '../../src/server/tls.js';
import { startTestNode, type TestNode } from '../../src/test-support/test-node.js';
import { request, sendRaw } from './support/raw-https.js';

/** Resolves with how long the peer took to close the socket, or rejects after `limitMs`. */
function closedWithin(socket: Socket | TLSSocket, startedAt: number, limitMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still open after ${limitMs} ms`)), limitMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - startedAt);
    });
  });
}

describe('slow and oversized clients on the node\'s HTTPS port (the limits `telesalud serve` sets)', () => {
  let node: TestNode;
  let https: FastifyInstance;
  let port: number;

  beforeAll(async () => {
    node = await startTestNode('pglite');
    const tls = await loadTlsMaterial(node.config);
    https = await buildApp(node.ctx, { ...TLS_OPTIONS, ...CONNECTION_LIMITS, cert: tls.cert, key: tls.key });
    await https.listen({ port: 0, host: '127.0.0.1' });
    port = (https.server.address() as { port: number }).port;
  }, 120_000);

  afterAll(async () => {
    await https?.close();
    await node?.stop();
  });

  it('closes a connection that trickles its request head a byte at a time (slowloris)', async () => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    socket.on('error', () => undefined);
    const startedAt = Date.now();
    const head = 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nX-Slow: ' + 'a'.repeat(200);
    let i = 0;
    // A byte a second: never idle long enough for the 60 s idle timeout, never done with its headers.
    const trickle = setInterval(() => {
      if (!socket.destroyed && i < head.length) socket.write(head[i++]!);
    }, 1000);
    try {
      // headersTimeout, checked every connectionsCheckingInterval, with room for a loaded machine.
      const took = await closedWithin(socket, startedAt, CONNECTION_LIMITS.headersTimeout + CONNECTION_LIMITS.connectionsCheckingInterval + 30_000);
      expect(took).toBeGreaterThanOrEqual(CONNECTION_LIMITS.headersTimeout - 1000);
      expect(i).toBeLessThan(head.length);
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
  }, 90_000);

  it('closes a connection that never finishes its TLS handshake', async () => {
    const socket = connectTcp({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.on('error', () => undefined);
    const startedAt = Date.now();
    try {
      const took = await closedWithin(socket, startedAt, CONNECTION_LIMITS.handshakeTimeout + 30_000);
      expect(took).toBeGreaterThanOrEqual(CONNECTION_LIMITS.handshakeTimeout - 1000);
    } finally {
      socket.destroy();
    }
  }, 60_000);

  it('refuses a request head over 16 KiB — a long URL or too many headers — with 431, and still answers normal requests', async () => {
    const longUrl = await sendRaw(port, request('GET', `/fhir/R4/Patient?name=${'a'.repeat(20_000)}`, [['Host', 'localhost'], ['Accept', 'application/json']]));
    expect(longUrl.status).toBe(431);
    const headers: [string, string][] = [['Host', 'localhost'], ['Accept', 'application/json']];
    for (let n = 0; n < 400; n++) headers.push([`X-Extra-${n}`, 'x'.repeat(40)]);
    const many = await sendRaw(port, request('GET', '/healthz', headers));
    expect(many.status).toBe(431);
    const normal = await sendRaw(port, request('GET', '/healthz', [['Host', 'localhost'], ['Accept', 'application/json'], ['User-Agent', 'telesalud-test']]));
    expect(normal.status).toBe(200);
  }, 60_000);
});
