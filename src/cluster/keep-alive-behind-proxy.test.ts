import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../test-support/test-node.js';
import { DIRECT_KEEP_ALIVE_TIMEOUT_MS, KEEP_ALIVE_TIMEOUT_MS } from './keep-alive-behind-proxy.js';

/** One HTTP/1.1 connection, as HAProxy holds it to a node: requests one after another, and whether the node has closed it. */
class ProxyConnection {
  private buffer = '';
  private waiting: (() => void) | undefined;
  closed = false;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buffer += d;
      this.waiting?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiting?.();
    });
  }

  static open(port: number): Promise<ProxyConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => resolve(new ProxyConnection(socket)));
      socket.once('error', reject);
    });
  }

  /** GET a path; the status and the response's headers (lower-cased names). */
  async get(path: string): Promise<{ status: number; headers: Record<string, string> }> {
    this.buffer = '';
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    const end = Date.now() + 10_000;
    for (;;) {
      const head = this.buffer.indexOf('\r\n\r\n');
      if (head >= 0) {
        const [statusLine, ...lines] = this.buffer.slice(0, head).split('\r\n');
        const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
        const length = Number(headers['content-length'] ?? 0);
        if (this.buffer.length >= head + 4 + length) return { status: Number(statusLine!.split(' ')[1]), headers };
      }
      if (this.closed) throw new Error('connection closed before a response');
      if (Date.now() > end) throw new Error('no response within 10 s');
      await new Promise<void>((r) => {
        this.waiting = r;
        setTimeout(r, 100);
      });
    }
  }

  async closedWithin(ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (!this.closed && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

describe('a node behind a load balancer that keeps its connections', () => {
  let node: TestNode | undefined;
  const connections: ProxyConnection[] = [];
  afterEach(async () => {
    for (const c of connections.splice(0)) c.destroy();
    await node?.stop().catch(() => undefined);
    node = undefined;
  });

  async function listening(env: Record<string, string> = { TELESALUD_TRUSTED_PROXIES: '127.0.0.1' }): Promise<number> {
    node = await startTestNode('pglite', env);
    await node.app.listen({ host: '127.0.0.1', port: 0 });
    const address = node.app.server.address();
    return typeof address === 'object' && address ? address.port : 0;
  }

  it('keeps an idle connection longer than HAProxy keeps one in its pool (tens of seconds), and says so', async () => {
    const port = await listening();
    expect(node!.app.server.keepAliveTimeout).toBe(KEEP_ALIVE_TIMEOUT_MS);
    expect(KEEP_ALIVE_TIMEOUT_MS).toBeGreaterThanOrEqual(60_000);
    const conn = await ProxyConnection.open(port);
    connections.push(conn);
    const first = await conn.get('/healthz');
    expect(first.status).toBe(200);
    expect(first.headers.connection).toBe('keep-alive');
    expect(first.headers['keep-alive']).toBe(`timeout=${KEEP_ALIVE_TIMEOUT_MS / 1000}`);
    // The same connection serves the next request.
    expect((await conn.get('/healthz')).status).toBe(200);
    expect(conn.closed).toBe(false);
  });

  it('keeps the usual short idle timeout for browsers that reach it directly', async () => {
    const port = await listening({});
    expect(node!.app.server.keepAliveTimeout).toBe(DIRECT_KEEP_ALIVE_TIMEOUT_MS);
    const conn = await ProxyConnection.open(port);
    connections.push(conn);
    expect((await conn.get('/healthz')).headers['keep-alive']).toBe(`timeout=${DIRECT_KEEP_ALIVE_TIMEOUT_MS / 1000}`);
  });

  it('while draining answers every request with Connection: close, and closes idle connections only when it stops listening', async () => {
    const port = await listening();
    const idle = await ProxyConnection.open(port);
    const busy = await ProxyConnection.open(port);
    const kept = await ProxyConnection.open(port);
    connections.push(idle, busy, kept);
    for (const c of [idle, busy, kept]) expect((await c.get('/healthz')).headers.connection).toBe('keep-alive');

    node!.ctx.lifecycle.draining = true;
    // The load balancer's check sees 503 and takes the node out; that answer closes its connection too.
    const ready = await busy.get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.headers.connection).toBe('close');
    expect(await busy.closedWithin(2000)).toBe(true);

    // A request on a connection kept from before the drain is served, and the connection then closes.
    const served = await kept.get('/healthz');
    expect(served.status).toBe(200);
    expect(served.headers.connection).toBe('close');
    expect(await kept.closedWithin(2000)).toBe(true);

    // The idle one is left alone while the load balancer may still pick it…
    expect(await idle.closedWithin(500)).toBe(false);
    // …and closed once the node stops listening (after TELESALUD_DRAIN_DELAY_MS in `telesalud serve`).
    await node!.app.close();
    expect(await idle.closedWithin(2000)).toBe(true);
  });
});
