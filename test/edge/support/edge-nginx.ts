import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../../../src/config/config.js';
import { readRouteTable } from '../../../src/edge/edge-config/route-table.js';
import { stateDirectories, writeEdgeConfig, type EdgeConfigOptions } from '../../../src/edge/edge-config/nginx-config.js';
import { sendRaw, request } from './raw-https.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface RunningEdge {
  port: number;
  dir: string;
  stateDir: string;
  /** nginx -s reload (SIGHUP), then wait until `applied` says the new configuration answers. */
  reload(applied: () => Promise<boolean>): Promise<void>;
  stop(): Promise<void>;
}

/**
 * nginx with the configuration `telesalud edge-config` generates, in its own directory, on a
 * loopback port, in front of one node. The process is this test's own: stopped by its pid.
 */
export async function startEdge(options: { root: string; port: number; nodePort: number; config: Config; cert: string; key: string }): Promise<RunningEdge> {
  const dir = path.join(options.root, 'edge');
  const stateDir = path.join(options.root, 'edge-state');
  for (const d of stateDirectories(stateDir)) await mkdir(d, { recursive: true });
  const edge: EdgeConfigOptions = {
    dir,
    serverName: 'localhost',
    listen: [`127.0.0.1:${options.port}`],
    upstreams: [`127.0.0.1:${options.nodePort}`],
    // The node's self-signed certificate is its own CA: the edge verifies the node it talks to.
    upstreamCa: options.cert,
    upstreamName: 'localhost',
    cert: options.cert,
    key: options.key,
    trustedCertificate: undefined,
    resolver: undefined,
    crsDir: '/usr/share/modsecurity-crs',
    modulesDir: '/usr/lib/nginx/modules',
    stateDir,
    user: os.userInfo().username,
  };
  await writeEdgeConfig(edge, await readRouteTable(options.config));
  const conf = path.join(dir, 'nginx.conf');
  const errorLog = path.join(stateDir, 'error.log');
  const child: ChildProcess = spawn('nginx', ['-c', conf, '-e', errorLog, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  let exited = false;
  child.on('exit', () => (exited = true));
  const answering = async () => {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`nginx exited: ${stderr.trim()} ${await readFile(errorLog, 'utf8').catch(() => '')}`);
      const answer = await sendRaw(options.port, request('GET', '/healthz', [['Host', 'localhost'], ['Accept', 'application/json'], ['User-Agent', 'telesalud-edge-test']]), { timeoutMs: 5000 });
      if (answer.status === 200) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`nginx did not answer on ${options.port}: ${await readFile(errorLog, 'utf8').catch(() => '')}`);
  };
  await answering();
  return {
    port: options.port,
    dir,
    stateDir,
    async reload(applied) {
      child.kill('SIGHUP');
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        if (exited) throw new Error(`nginx exited on reload: ${await readFile(errorLog, 'utf8').catch(() => '')}`);
        if (await applied()) return;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      throw new Error(`nginx did not apply the reloaded configuration: ${await readFile(errorLog, 'utf8').catch(() => '')}`);
    },
    async stop() {
      if (exited) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGQUIT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    },
  };
}
