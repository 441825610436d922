import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { currentTotpCode } from '../../src/auth/mfa/totp.js';
import { SYSTEM_ACTOR } from '../../src/auth/actor.js';
import { createAccount, type NewAccount } from '../../src/auth/accounts/account-service.js';
import { recordConsent } from '../../src/privacy/telehealth-consent.js';
import { AuditLog } from '../../src/audit/audit-log.js';
import { parseAuditSigningKey } from '../../src/audit/audit-signing-key.js';
import { openPostgres } from '../../src/db/database.js';
import { loadKeyRing } from '../../src/documents/key-ring.js';
import { Repository } from '../../src/records/repository.js';
import { testLogger } from '../../src/test-support/test-node.js';
import { SESSION_COOKIE } from '../../src/auth/sessions/session-store.js';
import { haproxyConfig } from '../../src/cluster/haproxy-config.js';
import { TEST_REDIS_URL } from '../../src/cluster/throwaway-redis.js';
import { SignalingTestClient } from '../../src/consult/signaling-test-client.js';
import type { ClientMessage } from '../../src/consult/signaling-protocol.js';
import { appointment, heartRate } from '../../src/test-support/fixtures.js';
import { adminQuery, databaseUrl } from '../../src/test-support/global-setup.js';
import { pgTemplateDatabase, testLogDir } from '../../src/test-support/paths.js';
import { client, freePort, haproxyStats, run, runTelesalud, serverStates, sleep, telesalud, until, waitForLine } from './farm-support.js';

const base = process.env.TELESALUD_TEST_DATABASE_URL;
const haproxyInstalled = (process.env.PATH ?? '').split(':').some((dir) => existsSync(path.join(dir, 'haproxy')));
const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
/** Concurrent load clients: at most this many requests are in flight when a node is killed. */
const CONCURRENCY = 4;
const MARK = 'urn:telesalud:farm-test';

/**
 * Three `telesalud serve` processes on one PostgreSQL and one Redis, behind HAProxy, under a
 * load of FHIR writes and reads and one consultation's signaling: one node is killed
 * (SIGKILL), then every node is restarted in turn (SIGTERM) while HAProxy keeps its connections
 * to them, and nothing acknowledged may be lost.
 */
describe.skipIf(!base || !haproxyInstalled)('farm of three nodes behind HAProxy', () => {
  const processes = new Set<ChildProcess>();
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const child of processes) child.kill('SIGKILL');
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });

  const phases: Record<string, number> = {};
  /** A phase reached, in ms since the start, printed as it happens: a run that times out still says where it was. */
  const mark = (phase: string, at: number) => {
    phases[phase] = at;
    process.stdout.write(`farm phase ${phase} at ${at} ms\n`);
  };
  it('loses no acknowledged write, fails only requests in flight on the killed node, keeps the audit chain and the consultation', async () => {
    const started = Date.now();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-farm-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const dbName = `telesalud_farm_${randomBytes(5).toString('hex')}`;
    await adminQuery(base!, `create database ${dbName} template ${pgTemplateDatabase()}`);
    cleanups.push(() => adminQuery(base!, `drop database if exists ${dbName} with (force)`));

    // One certificate for HAProxy and the nodes (re-encryption), trusted by this test as its CA.
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '1', '-keyout', key, '-out', cert]);
    const ca = await readFile(cert, 'utf8');
    await writeFile(path.join(dir, 'haproxy.pem'), ca + (await readFile(key, 'utf8')));

    const lbPort = await freePort();
    const publicUrl = `https://127.0.0.1:${lbPort}`;
    const adminToken = randomBytes(24).toString('base64url');
    const auditKey = Buffer.from(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string).toString('base64');
    await mkdir(testLogDir(), { recursive: true });
    const shared: Record<string, string> = {
      TELESALUD_DATABASE_URL: databaseUrl(base!, dbName),
      TELESALUD_REDIS_URL: TEST_REDIS_URL,
      TELESALUD_REDIS_PREFIX: `telesalud-farm:${randomBytes(5).toString('hex')}:`,
      TELESALUD_MASTER_KEY: randomBytes(32).toString('base64'),
      TELESALUD_AUDIT_SIGNING_KEY: auditKey,
      TELESALUD_ADMIN_TOKEN: adminToken,
      TELESALUD_PUBLIC_URL: publicUrl,
      TELESALUD_TLS_CERT: cert,
      TELESALUD_TLS_KEY: key,
      TELESALUD_HOST: '127.0.0.1',
      TELESALUD_DB_POOL_SIZE: '5',
      TELESALUD_SHUTDOWN_TIMEOUT_MS: '10000',
      TELESALUD_LOG_FILE: path.join(testLogDir(), `farm-${process.pid}.log`),
      // Load through HAProxy on purpose: the API rate limits stay on (counted farm-wide, as in
      // production) with ceilings the load never reaches, so they are paid for, not tripped
      // (src/edge/rate-limit-farm.test.ts tests them tripping across nodes).
      TELESALUD_RATE_LIMIT_PER_SOURCE: '1000000',
      TELESALUD_RATE_LIMIT_PER_SOURCE_SIGNED_IN: '10000000',
      TELESALUD_RATE_LIMIT_PER_ACCOUNT: '1000000',
    };

    const names = ['node1', 'node2', 'node3'];
    const ports = await Promise.all(names.map(() => freePort()));
    const live = new Map<string, ChildProcess>();
    async function startServe(name: string): Promise<void> {
      const i = names.indexOf(name);
      const child = telesalud(['serve'], { ...shared, TELESALUD_PORT: String(ports[i]), TELESALUD_DATA_DIR: path.join(dir, name) });
      processes.add(child);
      child.once('exit', () => processes.delete(child));
      await waitForLine(child, /listening on https:/, 45_000);
      live.set(name, child);
    }
    // Accounts straight into the shared database, as `telesalud user add` makes them (one process less to start).
    const accounts = (async () => {
      const store = openPostgres(shared.TELESALUD_DATABASE_URL!, 2);
      try {
        const keyRing = await loadKeyRing({ masterKey: Buffer.from(shared.TELESALUD_MASTER_KEY!, 'base64'), dataDir: dir, createIfMissing: false });
        const audit = new AuditLog(store.db, testLogger(), { signingKey: parseAuditSigningKey(auditKey, 'test') });
        const records = new Repository(store.db, audit, SYSTEM_ACTOR, { requestId: 'farm-test', source: 'test' });
        const made = [];
        for (const role of ['clinician', 'patient'] as const) made.push(await createAccount(store.db, records, keyRing, { email: `${role}@farm.example.org`, role, name: role === 'clinician' ? 'Lucía Fernández' : 'Tomás Romero', password: PASSWORD }));
        for (const account of made) if (account.patientId) await recordConsent(store.db, { patientRef: `Patient/${account.patientId}`, accountId: account.id, source: 'test' });
        await audit.drain();
        return made;
      } finally {
        await store.close();
      }
    })();
    await Promise.all(names.map(startServe));
    const [clinician, patientAccount] = (await accounts) as [NewAccount, NewAccount];

    const statsSocket = path.join(dir, 'haproxy.sock');
    const cfg = path.join(dir, 'haproxy.cfg');
    await writeFile(cfg, haproxyConfig({ bind: `127.0.0.1:${lbPort}`, nodes: names.map((name, i) => ({ name, host: '127.0.0.1', port: ports[i]! })), tls: { mode: 'reencrypt', certFile: path.join(dir, 'haproxy.pem'), nodeCaFile: cert }, statsSocket, checkIntervalMs: 500, foreground: true }));
    const haproxy = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    processes.add(haproxy);
    let haproxyLog = '';
    haproxy.stderr.on('data', (d) => (haproxyLog += d));
    await until('HAProxy to see three nodes up', async () => Object.values(await serverStates(statsSocket)).filter((s) => s === 'UP').length === 3, 15_000);
    const setupMs = Date.now() - started;
    mark('setup', setupMs);

    const http = client(ca, CONCURRENCY + 4);
    const admin = { authorization: `Bearer ${adminToken}` };
    const lb = (options: Parameters<typeof http.request>[1]) => http.request(lbPort, options);

    // Sign-in through the load balancer (any node answers: sessions are in PostgreSQL).
    async function signIn(email: string, totpSecret?: string): Promise<string> {
      const res = await lb({ method: 'POST', path: '/api/auth/sign-in', headers: { origin: publicUrl, 'content-type': 'application/json' }, body: JSON.stringify({ email, password: PASSWORD, ...(totpSecret ? { code: currentTotpCode(totpSecret) } : {}) }) });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const cookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith(`${SESSION_COOKIE}=`))!;
      return cookie.slice(SESSION_COOKIE.length + 1).split(';')[0]!;
    }
    const cookies = { clinician: await signIn(clinician.email, clinician.totpSecret), patient: await signIn(patientAccount.email) };
    const subject = await lb({ method: 'POST', path: '/fhir/R4/Patient', headers: admin, body: { resourceType: 'Patient', name: [{ family: 'Carga', given: ['Prueba'] }] } });
    expect(subject.status).toBe(201);
    const appt = await lb({ method: 'POST', path: '/fhir/R4/Appointment', headers: admin, body: appointment(patientAccount.patientId!, clinician.practitionerId!, new Date(Date.UTC(2027, 5, 1, 9)).toISOString()) });
    expect(appt.status).toBe(201);

    // ── the consultation: two sockets through HAProxy that reconnect with resume when their node goes ──
    const join = (extra: Partial<Extract<ClientMessage, { type: 'join' }>> = {}): ClientMessage => ({ type: 'join', appointmentId: appt.body.id, e2ee: true, identityKey: 'FarmKey', ...extra }) as ClientMessage;
    class Participant {
      socket!: SignalingTestClient;
      id = '';
      secret = '';
      rejoinMs: number[] = [];
      closes: string[] = [];
      constructor(readonly who: 'clinician' | 'patient') {}
      async connect(): Promise<void> {
        const socket = await SignalingTestClient.connect(publicUrl, { origin: publicUrl, cookie: cookies[this.who], ca });
        this.socket = socket;
        socket.socket.once('close', (code) => this.closes.push(`${Date.now() - started}ms:${code}:${JSON.stringify(socket.received.map((m) => m.type).slice(-3))}`));
        this.socket.send(join(this.id ? { resume: { participantId: this.id, secret: this.secret } } : {}));
        const welcome = await this.socket.next('welcome');
        if (this.id) expect(welcome.participant.id).toBe(this.id);
        this.id = welcome.participant.id;
        this.secret = welcome.resumeSecret;
      }
      /** The browser's behaviour: when the socket goes, reconnect through the load balancer with resume. */
      async rejoin(): Promise<void> {
        const lost = Date.now();
        await until(`${this.who} to rejoin`, async () => (await this.connect(), true), 10_000, 200);
        this.rejoinMs.push(Date.now() - lost);
      }
    }
    const host = new Participant('clinician');
    const guest = new Participant('patient');
    await host.connect();
    await guest.connect();
    host.socket.send({ type: 'admit', participantId: guest.id });
    await guest.socket.next('admitted');
    const relay = async (from: Participant, to: Participant, sdp: string) => {
      from.socket.send({ type: 'signal', to: to.id, description: { type: 'offer', sdp } });
      expect((await to.socket.next('signal', 5000)).description?.sdp).toBe(sdp);
    };
    await relay(guest, host, 'v=0 before');

    /** Which node holds the consultation's sockets, by each node's own count. */
    async function socketsOn(name: string): Promise<number> {
      const res = await http.request(ports[names.indexOf(name)]!, { method: 'GET', path: '/api/consult/status', headers: admin });
      return res.body.sockets as number;
    }

    // ── the load: writes (each with a unique marker) and reads of what was written ──
    const acked: { id: string; marker: string }[] = [];
    const failures: { at: number; what: string }[] = [];
    let served = 0;
    let running = true;
    const worker = async () => {
      while (running) {
        const marker = randomUUID();
        const t = Date.now();
        try {
          const res = await lb({ method: 'POST', path: '/fhir/R4/Observation', headers: admin, body: { ...heartRate(subject.body.id, 60 + (served % 40), new Date().toISOString()), identifier: [{ system: MARK, value: marker }] } });
          if (res.status !== 201) throw new Error(`write ${res.status}`);
          acked.push({ id: res.body.id, marker });
          served++;
          const read = await lb({ method: 'GET', path: `/fhir/R4/Observation/${res.body.id}`, headers: admin });
          if (read.status !== 200 || read.body.identifier?.[0]?.value !== marker) throw new Error(`read ${read.status}`);
          served++;
        } catch (err) {
          failures.push({ at: t, what: (err as Error).message });
        }
      }
    };
    const load = Promise.all(Array.from({ length: CONCURRENCY }, worker));
    await sleep(2000);

    // ── SIGKILL the node that holds the patient's socket (or any, if it can't be told) ──
    const counts = await Promise.all(names.map(socketsOn));
    const victim = names[counts.findIndex((c) => c > 0)] ?? names[0]!;
    const killedAt = Date.now();
    mark('kill', killedAt - started);
    live.get(victim)!.kill('SIGKILL');
    live.delete(victim);
    // Whoever was on it reconnects (the close arrives when HAProxy or the kernel drops the tunnel).
    const moved: Promise<void>[] = [];
    for (const p of [host, guest]) moved.push(p.socket.closed(8000).then(() => p.rejoin(), () => undefined));
    await Promise.all(moved);
    await relay(guest, host, 'v=0 after kill');
    await relay(host, guest, 'v=0 answer after kill');
    await until('HAProxy to mark the killed node down', async () => (await serverStates(statsSocket))[victim] !== 'UP', 5000);
    // Requests in flight on the killed node have failed by now; anything failing later is not its doing.
    await sleep(500);
    const killWindowEnd = Date.now();
    await startServe(victim);
    mark('killed node restarting', Date.now() - started);
    await until('the killed node back in rotation', async () => Object.values(await serverStates(statsSocket)).filter((s) => s === 'UP').length === 3, 15_000);

    // ── rolling restart: every node in turn gets SIGTERM, exits, starts again and is back in
    // rotation before the next, the one holding consultation sockets first. HAProxy keeps its
    // connections to the nodes (http-reuse safe), so this is where a node closing a connection
    // HAProxy is about to reuse would show up as a failed request. ──
    const holding = await Promise.all(names.map(socketsOn));
    const order = [...names].sort((a, b) => holding[names.indexOf(b)]! - holding[names.indexOf(a)]!);
    const upgraded = order[0]!;
    const restarts: { node: string; exitCode: number | null; drainMs: number; backInMs: number }[] = [];
    mark('term', Date.now() - started);
    for (const name of order) {
      const termAt = Date.now();
      const child = live.get(name)!;
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      const exitCode = await exited;
      const drainMs = Date.now() - termAt;
      live.delete(name);
      // A draining node says `reconnect` and closes (1012) before it exits: its sockets move now.
      await Promise.all([host, guest].map((p) => p.socket.closed(1000).then(() => p.rejoin(), () => undefined)));
      await startServe(name);
      await until(`${name} back in rotation`, async () => Object.values(await serverStates(statsSocket)).filter((s) => s === 'UP').length === 3, 15_000);
      restarts.push({ node: name, exitCode, drainMs, backInMs: Date.now() - termAt });
      mark(`restarted ${name}`, Date.now() - started);
      // The consultation survives each restart: both participants still reach each other.
      await relay(guest, host, `v=0 after restarting ${name}`);
    }
    mark('allBack', Date.now() - started);
    await sleep(1000);
    running = false;
    await load;
    const reuse = await connectionReuse(statsSocket);
    const termWindow = failures.filter((f) => f.at >= killWindowEnd);
    mark('beforeLastRelay', Date.now() - started);
    await relay(guest, host, 'v=0 after restart');

    // ── what the database holds: every acknowledged write, once ──
    const pool = new pg.Pool({ connectionString: shared.TELESALUD_DATABASE_URL, max: 1 });
    cleanups.push(() => pool.end());
    const rows = await pool.query<{ marker: string; n: number }>(`select content->'identifier'->0->>'value' as marker, count(*)::int as n from observation where content->'identifier'->0->>'system' = $1 group by 1`, [MARK]);
    const found = new Map(rows.rows.map((r) => [r.marker, r.n]));
    const lost = acked.filter((a) => found.get(a.marker) !== 1);
    const extra = rows.rows.length - acked.length;

    host.socket.send({ type: 'end' });
    await guest.socket.next('closed');
    // Let the nodes' audit group commits land before verifying the chain.
    for (const [, child] of live) child.kill('SIGTERM');
    await until('nodes to stop', () => live.size === 0 || [...live.values()].every((c) => c.exitCode !== null), 15_000);
    const verify = await runTelesalud(['audit', 'verify'], { ...shared, TELESALUD_DATA_DIR: path.join(dir, 'cli') });

    const figures = {
      setupMs,
      requestsServed: served,
      acknowledgedWrites: acked.length,
      writesFound: acked.length - lost.length,
      unacknowledgedButStored: extra,
      failedRequests: failures.length,
      failedDuringRollingRestart: termWindow.length,
      failures: failures.map((f) => `${f.at - killedAt}ms:${f.what}`),
      rejoinMs: [...host.rejoinMs, ...guest.rejoinMs],
      socketCloses: [...host.closes, ...guest.closes],
      restarts,
      haproxyToNodes: reuse,
      killedNode: victim,
      firstRestarted: upgraded,
      totalMs: Date.now() - started,
    };
    process.stdout.write(`farm figures: ${JSON.stringify(figures)}\n`);
    process.stdout.write(`farm phases (ms since start): ${JSON.stringify(phases)}\n`);
    expect(lost, 'acknowledged writes missing or duplicated').toEqual([]);
    // A write whose answer died with the killed node may be stored without acknowledgement; never more than were in flight.
    expect(extra).toBeGreaterThanOrEqual(0);
    expect(extra).toBeLessThanOrEqual(CONCURRENCY);
    expect(failures.length).toBeLessThanOrEqual(CONCURRENCY);
    expect(failures.every((f) => f.at >= killedAt - 15_000 && f.at < killWindowEnd), 'failures only around the kill').toBe(true);
    expect(termWindow).toEqual([]);
    expect(restarts.map((r) => r.node).sort()).toEqual([...names].sort());
    expect(restarts.every((r) => r.exitCode === 0), 'every node exits cleanly on SIGTERM').toBe(true);
    // Keep-alive was really in play: most requests went over a connection HAProxy already had.
    expect(reuse.reused).toBeGreaterThan(reuse.connects);
    expect(figures.rejoinMs.length).toBeGreaterThanOrEqual(1);
    expect(Math.max(...figures.rejoinMs)).toBeLessThan(5000);
    expect(served).toBeGreaterThan(50);
    expect(verify.code, verify.stderr + verify.stdout).toBe(0);

  }, 300_000);
});

/** HAProxy's count of new connections to the nodes and of requests sent on a kept one (its backend's `connect` and `reuse`). */
async function connectionReuse(socket: string): Promise<{ connects: number; reused: number; retries: number; redispatches: number }> {
  const [header, ...rows] = (await haproxyStats(socket)).split('\n');
  const columns = header!.replace(/^# /, '').split(',');
  const backend = rows.map((r) => r.split(',')).find((cols) => cols[0] === 'nodes' && cols[1] === 'BACKEND');
  const field = (name: string) => Number(backend?.[columns.indexOf(name)] ?? NaN);
  return { connects: field('connect'), reused: field('reuse'), retries: field('wretr'), redispatches: field('wredis') };
}
