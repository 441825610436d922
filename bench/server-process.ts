import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';

export interface ServerOptions {
  repoDir: string;
  dataDir: string;
  databaseUrl: string | undefined;
  adminToken: string;
  /** Write a V8 CPU profile of the server into this directory (node --cpu-prof). */
  cpuProfileDir?: string;
  /** For experiments: a script run instead of bin/telesalud.js (it is given the `serve` argument; `.ts` runs through tsx). */
  entry?: string;
  /** More arguments after `serve` (e.g. `--demo`). */
  serveArgs?: string[];
  /** How long to wait for the node to listen (a `--demo` start seeds the clinic first). */
  startTimeoutMs?: number;
  /** More TELESALUD_* settings for this node (e.g. TELESALUD_AUDIT_COMMIT). */
  env?: Record<string, string>;
}

export interface RunningServer {
  pid: number;
  url: string;
  /** PEM of the self-signed certificate, to verify the smoke checks' TLS. */
  ca: string;
  /** Set when the process ended on its own. */
  exited(): string | undefined;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;

/**
 * `telesalud serve` as its own process, so the load generator never shares its event loop.
 * Resolves once the node printed its address and /readyz answers 200.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const entry = options.entry ? path.resolve(options.entry) : path.join(options.repoDir, 'bin', 'telesalud.js');
  if (!existsSync(path.join(options.repoDir, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` first');

  // Only our settings: a TELESALUD_* variable of the calling shell must not change the run.
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined && !key.startsWith('TELESALUD_')) env[key] = value;
  Object.assign(env, {
    TELESALUD_PORT: '0',
    TELESALUD_HOST: '127.0.0.1',
    TELESALUD_DATA_DIR: options.dataDir,
    TELESALUD_ADMIN_TOKEN: options.adminToken,
    TELESALUD_LOG_LEVEL: 'warn',
    // Load on purpose: one admin token and a few accounts from loopback far above any real user's
    // rate. The API rate limits (src/edge/rate-limit-plugin.ts) stay on, so the figures include what
    // production pays for counting every request, with ceilings no bench reaches (a refusal would
    // measure the 429 path instead).
    TELESALUD_RATE_LIMIT_PER_SOURCE: '1000000',
    TELESALUD_RATE_LIMIT_PER_SOURCE_SIGNED_IN: '10000000',
    TELESALUD_RATE_LIMIT_PER_ACCOUNT: '1000000',
    ...(options.databaseUrl ? { TELESALUD_DATABASE_URL: options.databaseUrl } : {}),
    ...options.env,
  });
  // A TypeScript entry (bench/audit-off-server.ts) runs through tsx; the service itself is dist/, built.
  const nodeArgs = [...(entry.endsWith('.ts') ? ['--import', 'tsx'] : []), '--require', path.join(options.repoDir, 'bench', 'exit-with-parent.cjs'), ...(options.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`] : [])];
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, entry, 'serve', ...(options.serveArgs ?? [])], { cwd: options.repoDir, env, stdio: ['ignore', 'pipe', 'pipe'] });

  const tail: string[] = [];
  const remember = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) tail.push(line);
    tail.splice(0, Math.max(0, tail.length - 40));
  };
  let exitReason: string | undefined;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitReason = `server exited (${signal ?? `code ${code}`})`;
      resolve();
    });
  });
  child.stderr!.on('data', remember);

  const address = await new Promise<string>((resolve, reject) => {
    const startTimeout = options.startTimeoutMs ?? START_TIMEOUT_MS;
    const timer = setTimeout(() => reject(new Error(`server did not start within ${startTimeout / 1000} s`)), startTimeout);
    child.stdout!.on('data', (chunk: Buffer) => {
      remember(chunk);
      const m = /listening on (https:\/\/\S+)/.exec(chunk.toString('utf8'));
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exitedPromise.then(() => {
      clearTimeout(timer);
      reject(new Error(`${exitReason} before listening:\n  ${tail.join('\n  ')}`));
    });
  }).catch(async (err) => {
    await stopChild(child, exitedPromise);
    throw err;
  });

  const ca = await readFile(path.join(options.dataDir, 'tls', 'localhost-cert.pem'), 'utf8');
  const url = address.replace('localhost', '127.0.0.1');
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const status = await get(url, '/readyz', { ca }).then((r) => r.status, () => 0);
    if (status === 200) break;
    if (exitReason || Date.now() > deadline) {
      await stopChild(child, exitedPromise);
      throw new Error(`server never became ready (${exitReason ?? `/readyz answered ${status}`}):\n  ${tail.join('\n  ')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    pid: child.pid!,
    url,
    ca,
    exited: () => (exitReason ? `${exitReason}:\n  ${tail.join('\n  ')}` : undefined),
    stop: () => stopChild(child, exitedPromise),
  };
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

export interface SimpleResponse {
  status: number;
  body: string;
}

/** One GET over a fresh TLS connection that verifies the server's certificate. */
export function get(baseUrl: string, pathAndQuery: string, options: { ca: string; token?: string }): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const url = new URL(pathAndQuery, baseUrl);
    const req = https.request(
      url,
      {
        method: 'GET',
        ca: options.ca,
        // The self-signed certificate names localhost and 127.0.0.1.
        servername: 'localhost',
        agent: false,
        headers: { accept: 'application/fhir+json', ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}
