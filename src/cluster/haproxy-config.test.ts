import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { haproxyConfig } from './haproxy-config.js';

const run = promisify(execFile);
const HAPROXY = (process.env.PATH ?? '').split(':').some((dir) => existsSync(path.join(dir, 'haproxy')));
const nodes = [
  { name: 'node1', host: '10.0.0.11', port: 8443 },
  { name: 'node2', host: '10.0.0.12', port: 8443 },
];

describe('HAProxy configuration of a farm', () => {
  it('checks readiness, retries only what is safe to replay, and keeps WebSockets open', () => {
    const text = haproxyConfig({ bind: '0.0.0.0:443', nodes, tls: { mode: 'reencrypt', certFile: '/etc/haproxy/telesalud.pem' } });
    expect(text).toContain('http-check send meth GET uri /readyz');
    expect(text).toContain('retry-on conn-failure 503');
    expect(text).not.toMatch(/empty-response|all-retryable-errors/);
    expect(text).toContain('timeout tunnel 2h');
    expect(text).toMatch(/server node2 10\.0\.0\.12:8443 ssl verify none alpn http\/1\.1 check inter 1000/);
    expect(haproxyConfig({ bind: '0.0.0.0:443', nodes, tls: { mode: 'passthrough' } })).toContain('mode tcp');
  });

  it('keeps its connections to the nodes by default, and never replays a request that may have reached a node', () => {
    const kept = haproxyConfig({ bind: '0.0.0.0:443', nodes, tls: { mode: 'reencrypt', certFile: '/etc/haproxy/telesalud.pem' } });
    expect(kept).toContain('http-reuse safe');
    expect(kept).not.toContain('http-server-close');
    // HAProxy 2.6 replays POSTs under L7 retries: an empty response (a node gone after committing) must not be one.
    expect(kept).toMatch(/^ {2}retry-on conn-failure 503$/m);
    const closed = haproxyConfig({ bind: '0.0.0.0:443', nodes, tls: { mode: 'reencrypt', certFile: '/etc/haproxy/telesalud.pem' }, serverConnections: 'close' });
    expect(closed).toContain('option http-server-close');
    expect(closed).not.toContain('http-reuse');
  });

  it('refuses what would produce a broken or injected configuration', () => {
    expect(() => haproxyConfig({ bind: '0.0.0.0:443', nodes: [], tls: { mode: 'passthrough' } })).toThrow(/at least one node/);
    expect(() => haproxyConfig({ bind: '0.0.0.0:443', nodes: [{ name: 'a\n  server evil 6.6.6.6:80', host: 'h', port: 1 }], tls: { mode: 'passthrough' } })).toThrow(/node name/);
    expect(() => haproxyConfig({ bind: '0.0.0.0:443', nodes: [{ name: 'a', host: 'h', port: 70000 }], tls: { mode: 'passthrough' } })).toThrow(/port/);
  });

  it.skipIf(!HAPROXY)('is accepted by haproxy -c in both TLS modes', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-haproxy-'));
    try {
      const key = path.join(dir, 'key.pem');
      const cert = path.join(dir, 'cert.pem');
      await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', cert]);
      const { readFile } = await import('node:fs/promises');
      await writeFile(path.join(dir, 'both.pem'), (await readFile(cert, 'utf8')) + (await readFile(key, 'utf8')));
      for (const tls of [{ mode: 'reencrypt' as const, certFile: path.join(dir, 'both.pem') }, { mode: 'passthrough' as const }]) {
        const file = path.join(dir, `${tls.mode}.cfg`);
        await writeFile(file, haproxyConfig({ bind: '127.0.0.1:18443', nodes, tls, statsSocket: path.join(dir, 'admin.sock'), foreground: true }));
        const checked = await run('haproxy', ['-c', '-f', file]);
        expect(checked.stdout + checked.stderr).toMatch(/Configuration file is valid/);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
