import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createSocket } from 'node:dgram';
import os from 'node:os';
import path from 'node:path';

async function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/**
 * A real coturn, unprivileged, on loopback only, with a throw-away config. `allow-loopback-peers`
 * is what lets it relay between two browsers on this machine: tests only, never in deploy/.
 */
export async function startCoturn(): Promise<{ url: string; secret: string; stop(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-coturn-'));
  const port = await freeUdpPort();
  const relayBase = 50_000 + Math.floor(Math.random() * 10_000);
  const secret = randomBytes(24).toString('base64url');
  const config = [
    'listening-ip=127.0.0.1',
    'relay-ip=127.0.0.1',
    `listening-port=${port}`,
    `min-port=${relayBase}`,
    `max-port=${relayBase + 200}`,
    'use-auth-secret',
    `static-auth-secret=${secret}`,
    'realm=telesalud.test',
    'fingerprint',
    'allow-loopback-peers',
    'no-cli',
    'no-tls',
    'no-dtls',
    'no-multicast-peers',
    `pidfile=${path.join(dir, 'turnserver.pid')}`,
    `userdb=${path.join(dir, 'turndb')}`,
    'log-file=stdout',
    'simple-log',
  ].join('\n');
  const file = path.join(dir, 'turnserver.conf');
  await writeFile(file, config, { mode: 0o600 });
  const child: ChildProcess = spawn('/usr/bin/turnserver', ['-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const until = Date.now() + 10_000;
  while (!/listener opened on|Total General servers/i.test(output)) {
    if (child.exitCode !== null || Date.now() > until) throw new Error(`coturn did not start: ${output.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `turn:127.0.0.1:${port}?transport=udp`,
    secret,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
