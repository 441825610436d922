import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:https';
import { createServer } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

export const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const FROM_SOURCE = path.join(root, 'test/farm/telesalud-from-source.ts');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** `telesalud ARGS` from the sources, with only the given TELESALUD_* environment. */
export function telesalud(args: string[], env: Record<string, string>): ChildProcess {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TELESALUD_')));
  return spawn(process.execPath, ['--import', 'tsx', FROM_SOURCE, ...args], { cwd: root, env: { ...inherited, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
}

export function runTelesalud(args: string[], env: Record<string, string>, stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = telesalud(args, env);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin!.end(stdin);
  });
}

export function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let seen = '';
    let errors = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; stdout: ${seen.slice(-400)}; stderr: ${errors.slice(-400)}`)), timeoutMs);
    child.stderr!.on('data', (d) => (errors += d));
    child.stdout!.on('data', (d) => {
      seen += d;
      const m = seen.match(pattern);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ${pattern}; stderr: ${errors.slice(-800)}`));
    });
  });
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

/** HTTPS with our CA, keep-alive, and a hard timeout (a request lost with a killed node must not hang the test). */
export function client(ca: string, maxSockets: number) {
  const agent = new Agent({ keepAlive: true, ca, maxSockets });
  return {
    agent,
    request(port: number, options: { method: string; path: string; headers?: Record<string, string>; body?: unknown; timeoutMs?: number }): Promise<HttpResult> {
      return new Promise((resolve, reject) => {
        const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
        const req = request(
          {
            host: '127.0.0.1',
            port,
            method: options.method,
            path: options.path,
            agent,
            headers: { ...(body !== undefined && typeof options.body !== 'string' ? { 'content-type': 'application/fhir+json' } : {}), ...(options.headers ?? {}) },
            timeout: options.timeoutMs ?? 15_000,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString();
              let parsed: unknown = text;
              try {
                parsed = JSON.parse(text);
              } catch {
                // not JSON
              }
              resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
            });
            res.on('error', reject);
          },
        );
        req.on('timeout', () => req.destroy(new Error('request timed out')));
        req.on('error', reject);
        req.end(body);
      });
    },
  };
}

/** HAProxy's `show stat` (CSV, one line per proxy and server) through its admin socket. */
export async function haproxyStats(socket: string): Promise<string> {
  const { connect } = await import('node:net');
  return new Promise<string>((resolve, reject) => {
    const conn = connect(socket);
    let out = '';
    conn.on('data', (d) => (out += d));
    conn.on('end', () => resolve(out));
    conn.on('error', reject);
    conn.write('show stat\n');
  });
}

/** HAProxy's view of its servers through the admin socket: name → UP/DOWN/MAINT. */
export async function serverStates(socket: string): Promise<Record<string, string>> {
  const text = await haproxyStats(socket);
  const states: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const cols = line.split(',');
    if (cols[0] === 'nodes' && cols[1] !== 'BACKEND') states[cols[1]!] = cols[17]!;
  }
  return states;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await Promise.resolve().then(check).catch(() => false)) return;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
