import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SYSTEM_ACTOR } from '../../src/auth/actor.js';
import { createAccount, type NewAccount } from '../../src/auth/accounts/account-service.js';
import { AuditLog } from '../../src/audit/audit-log.js';
import { parseAuditSigningKey } from '../../src/audit/audit-signing-key.js';
import { haproxyConfig } from '../../src/cluster/haproxy-config.js';
import { openPostgres } from '../../src/db/database.js';
import { loadKeyRing } from '../../src/documents/key-ring.js';
import { createLogger } from '../../src/logging/logger.js';
import { SESSION_COOKIE } from '../../src/auth/sessions/session-store.js';
import { recordConsent } from '../../src/privacy/telehealth-consent.js';
import { Repository } from '../../src/records/repository.js';
import { client, freePort, run, serverStates, telesalud, until, waitForLine } from './farm-support.js';

// No vitest here: `npm run bench` (bench/farm.ts) starts the same farm outside a test run.

export const FARM_PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const root = path.resolve(import.meta.dirname, '../..');

export interface FarmOptions {
  /** How many `telesalud serve` processes. */
  nodes: number;
  /** An existing database (empty: the nodes migrate it at start, under their advisory lock). */
  databaseUrl: string;
  /** Absent: nodes without Redis (a single node needs none). */
  redisUrl?: string;
  /** false: no HAProxy; `lb` goes straight to the first node (a single node, as deployed alone). */
  loadBalancer?: boolean;
  /** `source`: the TypeScript tree through tsx (tests); `dist`: bin/telesalud.js as installed (bench). */
  entry?: 'source' | 'dist';
  /** HAProxy's connections to the nodes (src/cluster/haproxy-config.ts); default `keep-alive`, as shipped. */
  serverConnections?: 'close' | 'keep-alive';
  /** HAProxy's health checks, milliseconds apart: 500 (default) so tests see a node go and come back quickly; the shipped default is 1000. */
  checkIntervalMs?: number;
  /** More TELESALUD_* settings for every node. */
  env?: Record<string, string>;
  /** Concurrent HTTPS sockets of the farm's client. */
  maxSockets?: number;
}

export interface Farm {
  dir: string;
  names: string[];
  ports: number[];
  lbPort: number;
  publicUrl: string;
  /** PEM of the certificate HAProxy and the nodes present (the test trusts it as its CA). */
  ca: string;
  adminToken: string;
  /** The TELESALUD_* environment every node shares. */
  shared: Record<string, string>;
  live: Map<string, ChildProcess>;
  statsSocket: string;
  http: ReturnType<typeof client>;
  lb: (options: Parameters<ReturnType<typeof client>['request']>[1]) => ReturnType<ReturnType<typeof client>['request']>;
  /** The same request straight to one node, bypassing HAProxy. */
  node: (name: string, options: Parameters<ReturnType<typeof client>['request']>[1]) => ReturnType<ReturnType<typeof client>['request']>;
  startNode(name: string): Promise<void>;
  /** SIGKILL (a crash) or SIGTERM (a drain); resolves when the process has exited. */
  stopNode(name: string, signal: 'SIGKILL' | 'SIGTERM'): Promise<number | null>;
  /** HAProxy's runtime API, e.g. `disable server nodes/node1`. */
  haproxyCommand(command: string): Promise<string>;
  upCount(): Promise<number>;
  /** How many consultation sockets a node holds, by its own count. */
  socketsOn(name: string): Promise<number>;
  /** Accounts straight into the shared database, as `telesalud user add` makes them; patients have consented to telehealth. */
  accounts(wanted: { key: string; role: 'clinician' | 'patient'; name: string }[]): Promise<(NewAccount & { email: string })[]>;
  pids(): Record<string, number>;
  stop(): Promise<void>;
}

export async function startFarm(options: FarmOptions): Promise<Farm> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-farm-'));
  const processes = new Set<ChildProcess>();
  const live = new Map<string, ChildProcess>();
  let haproxy: ChildProcess | undefined;
  let http: ReturnType<typeof client> | undefined;
  const stop = async () => {
    for (const child of [...live.values()]) child.kill('SIGTERM');
    await Promise.race([Promise.all([...live.values()].map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r))))), new Promise((r) => setTimeout(r, 20_000))]);
    for (const child of processes) child.kill('SIGKILL');
    haproxy?.kill('SIGKILL');
    http?.agent.destroy();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // One certificate for HAProxy and the nodes (re-encryption), trusted by the caller as its CA.
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '1', '-keyout', key, '-out', cert]);
    const ca = await readFile(cert, 'utf8');
    await writeFile(path.join(dir, 'haproxy.pem'), ca + (await readFile(key, 'utf8')));
    const farmClient = client(ca, options.maxSockets ?? 16);
    http = farmClient;

    const names = Array.from({ length: options.nodes }, (_, i) => `node${i + 1}`);
    const ports = await Promise.all(names.map(() => freePort()));
    const balanced = options.loadBalancer !== false;
    const lbPort = balanced ? await freePort() : ports[0]!;
    const publicUrl = `https://127.0.0.1:${lbPort}`;
    const adminToken = randomBytes(24).toString('base64url');
    const auditKey = Buffer.from(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string).toString('base64');
    const shared: Record<string, string> = {
      TELESALUD_DATABASE_URL: options.databaseUrl,
      ...(options.redisUrl ? { TELESALUD_REDIS_URL: options.redisUrl, TELESALUD_REDIS_PREFIX: `telesalud-farm:${randomBytes(5).toString('hex')}:` } : {}),
      TELESALUD_MASTER_KEY: randomBytes(32).toString('base64'),
      TELESALUD_AUDIT_SIGNING_KEY: auditKey,
      TELESALUD_ADMIN_TOKEN: adminToken,
      TELESALUD_PUBLIC_URL: publicUrl,
      TELESALUD_TLS_CERT: cert,
      TELESALUD_TLS_KEY: key,
      TELESALUD_HOST: '127.0.0.1',
      TELESALUD_DB_POOL_SIZE: '5',
      TELESALUD_SHUTDOWN_TIMEOUT_MS: '10000',
      // Farm tests and bench/farm.ts drive the nodes far above a real user's rate on purpose (many
      // sockets of one account, bursts of admin-token requests): the API rate limits stay on, so the
      // figures include counting every request farm-wide as production does, with ceilings the load
      // never reaches; src/edge/rate-limit-farm.test.ts tests them tripping across nodes. A test may set them.
      TELESALUD_RATE_LIMIT_PER_SOURCE: '1000000',
      TELESALUD_RATE_LIMIT_PER_SOURCE_SIGNED_IN: '10000000',
      TELESALUD_RATE_LIMIT_PER_ACCOUNT: '1000000',
      ...(options.env ?? {}),
    };
    const entryArgs = options.entry === 'dist' ? [path.join(root, 'bin/telesalud.js')] : null;

    async function startNode(name: string): Promise<void> {
      const env = { ...shared, TELESALUD_PORT: String(ports[names.indexOf(name)]), TELESALUD_DATA_DIR: path.join(dir, name) };
      let child: ChildProcess;
      if (entryArgs) {
        const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TELESALUD_')));
        child = spawn(process.execPath, [...entryArgs, 'serve'], { cwd: root, env: { ...inherited, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
      } else {
        child = telesalud(['serve'], env);
      }
      processes.add(child);
      child.once('exit', () => processes.delete(child));
      await waitForLine(child, /listening on https:/, 60_000);
      live.set(name, child);
    }
    await Promise.all(names.map(startNode));

    const statsSocket = path.join(dir, 'haproxy.sock');
    const cfg = path.join(dir, 'haproxy.cfg');
    await writeFile(cfg, haproxyConfig({ bind: `127.0.0.1:${lbPort}`, nodes: names.map((name, i) => ({ name, host: '127.0.0.1', port: ports[i]! })), tls: { mode: 'reencrypt', certFile: path.join(dir, 'haproxy.pem'), nodeCaFile: cert }, statsSocket, checkIntervalMs: options.checkIntervalMs ?? 500, foreground: true, ...(options.serverConnections ? { serverConnections: options.serverConnections } : {}) }));
    const upCount = async () => Object.values(await serverStates(statsSocket)).filter((s) => s === 'UP').length;
    if (balanced) {
      haproxy = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'ignore'] });
      processes.add(haproxy);
      await until(`HAProxy to see ${names.length} nodes up`, async () => (await upCount()) === names.length, 20_000);
    }

    const farm: Farm = {
      dir,
      names,
      ports,
      lbPort,
      publicUrl,
      ca,
      adminToken,
      shared,
      live,
      statsSocket,
      http: farmClient,
      lb: (o) => farmClient.request(lbPort, o),
      node: (name, o) => farmClient.request(ports[names.indexOf(name)]!, o),
      startNode,
      async stopNode(name, signal) {
        const child = live.get(name);
        if (!child) throw new Error(`${name} is not running`);
        const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
        child.kill(signal);
        const code = await exited;
        live.delete(name);
        return code;
      },
      haproxyCommand: (command) =>
        new Promise<string>((resolve, reject) => {
          const conn = connect(statsSocket);
          let out = '';
          conn.on('data', (d) => (out += d));
          conn.on('end', () => resolve(out));
          conn.on('error', reject);
          conn.write(`${command}\n`);
        }),
      upCount,
      async socketsOn(name) {
        const res = await farm.node(name, { method: 'GET', path: '/api/consult/status', headers: { authorization: `Bearer ${adminToken}` } });
        if (res.status !== 200) throw new Error(`consult status of ${name}: ${res.status}`);
        return res.body.sockets as number;
      },
      async accounts(wanted) {
        const store = openPostgres(shared.TELESALUD_DATABASE_URL!, 2);
        try {
          const keyRing = await loadKeyRing({ masterKey: Buffer.from(shared.TELESALUD_MASTER_KEY!, 'base64'), dataDir: dir, createIfMissing: false });
          const audit = new AuditLog(store.db, createLogger('silent'), { signingKey: parseAuditSigningKey(auditKey, 'farm') });
          const records = new Repository(store.db, audit, SYSTEM_ACTOR, { requestId: 'farm-setup', source: 'test' });
          const made = [];
          for (const w of wanted) {
            const email = `${w.key}@farm.example.org`;
            const account = await createAccount(store.db, records, keyRing, { email, role: w.role, name: w.name, password: FARM_PASSWORD });
            if (account.patientId) await recordConsent(store.db, { patientRef: `Patient/${account.patientId}`, accountId: account.id, source: 'test' });
            made.push({ ...account, email });
          }
          await audit.drain();
          return made;
        } finally {
          await store.close();
        }
      },
      pids: () => ({ ...Object.fromEntries([...live.entries()].map(([n, c]) => [n, c.pid!])), ...(haproxy?.pid ? { haproxy: haproxy.pid } : {}) }),
      stop,
    };
    return farm;
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

/** A session cookie for this account, signed in through the load balancer. */
export async function signInThrough(farm: Farm, email: string, totpCode?: string): Promise<{ status: number; cookie: string | undefined }> {
  const res = await farm.lb({ method: 'POST', path: '/api/auth/sign-in', headers: { origin: farm.publicUrl, 'content-type': 'application/json' }, body: JSON.stringify({ email, password: FARM_PASSWORD, ...(totpCode ? { code: totpCode } : {}) }) });
  const cookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith(`${SESSION_COOKIE}=`));
  return { status: res.status, cookie: cookie?.slice(SESSION_COOKIE.length + 1).split(';')[0] };
}
