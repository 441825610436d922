/**
 * Signaling capacity of one node: how many concurrent consultations it holds with the patient's
 * join → admitted p99 under 100 ms, and what each costs in memory.
 *
 * The node runs in a child process (this file with `--node`, through tsx) on a fresh PGlite
 * data dir, so the simulated browsers never share its event loop and its memory is its own.
 * The child seeds N telehealth appointments, each with its own clinician and patient: the
 * Practitioner, Patient and Appointment through Repository.create like any record; the account
 * rows and their sessions directly (an argon2id hash costs ~0.1 s and 64 MiB, and sign-in is
 * not what is measured here: every join still resolves its session cookie in the database).
 *
 * The parent opens consultations in steps; in each, pairs arrive with bounded concurrency: the
 * clinician joins, the patient joins and waits, the clinician admits on the lobby update, then
 * offer, answer and three candidates cross. Rooms stay open, so load grows step by step.
 * Latency: patient's `join` sent → its `admitted` received (two database-backed joins, the
 * lobby round trip and the admission). Plain WebSocket over loopback HTTP (TLS termination is
 * the edge's cost, not signaling's). Bounded by BENCH_SIGNALING_MAX (consultations, 2000) and
 * BENCH_SIGNALING_SECONDS (100 s for the load phase).
 *
 * `npx tsx bench/consult-signaling.ts` prints the figures; `benchSignaling()` returns them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { WebSocket } from 'ws';

const TARGET_CONSULTATIONS = 1000;
const TARGET_SOCKETS = 2000;
const TARGET_P99_MS = 100;
const PUBLIC_URL = 'https://bench.telesalud.test';
const KEY = 'BBenchIdentityKey0123456789abcdefghijklmnop';
/** Accounts seeded; appointments are spread over them. */
const CLINICIANS = 100;

export interface SignalingBenchOptions {
  /** Most consultations to open (each 2 sockets). */
  maxConsultations?: number;
  /** Consultations added per step. */
  step?: number;
  /** Pairs arriving at once within a step. */
  concurrency?: number;
  /** Time budget of the load phase. */
  seconds?: number;
  /** A PostgreSQL server on which the run creates (and drops) its own database; default: embedded PGlite. */
  databaseUrl?: string | undefined;
  log?: (line: string) => void;
}

export interface SignalingStep {
  consultations: number;
  sockets: number;
  joinP50Ms: number;
  joinP99Ms: number;
  /** Offer, answer and 3 candidates from first send to last receipt. */
  exchangeP99Ms: number;
  rssMiB: number;
  heapMiB: number;
  /** Node CPU (user + system) spent per consultation opened in this step. */
  nodeCpuMsPerConsultation: number;
  /** 1-minute load average at the end of the step: other work on the machine skews latency. */
  machineLoad: number;
  failures: number;
}

export interface SignalingFigures {
  steps: SignalingStep[];
  /** Most concurrent consultations reached while every step's join p99 stayed under the target. */
  consultationsUnderTarget: number;
  socketsUnderTarget: number;
  bytesPerConsultationRss: number;
  bytesPerConsultationHeap: number;
  seedSeconds: number;
  store: 'pglite' | 'postgres';
  stoppedBecause: string;
}

interface Seeded {
  appointmentId: string;
  hostCookie: string;
  patientCookie: string;
}

type ChildMessage = { type: 'ready'; port: number; seeded: Seeded[]; seedSeconds: number } | { type: 'memory'; rss: number; heapUsed: number; cpuMs: number } | { type: 'error'; message: string };

// ── the node (child process) ─────────────────────────────────────────────────────────

async function runNode(count: number): Promise<void> {
  const { loadConfig } = await import('../src/config/config.js');
  const { createLogger } = await import('../src/logging/logger.js');
  const { startNode } = await import('../src/server/node.js');
  const { buildApp } = await import('../src/server/app.js');
  const { Repository } = await import('../src/records/repository.js');
  const { SYSTEM_ACTOR } = await import('../src/auth/actor.js');
  const { CONSULTATION_MODE_SYSTEM } = await import('../src/records/telesalud-codes.js');
  const { recordConsent } = await import('../src/privacy/telehealth-consent.js');

  const dataDir = process.env.BENCH_DATA_DIR!;
  const databaseUrl = process.env.BENCH_NODE_DATABASE_URL;
  const config = loadConfig({ TELESALUD_DATA_DIR: dataDir, TELESALUD_PUBLIC_URL: PUBLIC_URL, TELESALUD_ADMIN_TOKEN: 'bench-admin-token-0123456789abcdefghij', TELESALUD_LOG_LEVEL: 'warn', ...(databaseUrl ? { TELESALUD_DATABASE_URL: databaseUrl } : {}) });
  const node = await startNode(config, createLogger('warn'));
  const started = Date.now();
  const records = new Repository(node.store.db, node.audit, SYSTEM_ACTOR, { requestId: 'bench-seed', source: 'bench' });
  const seeded: Seeded[] = [];
  const base = Date.UTC(2027, 0, 4, 8);
  // One clinician and one patient per CLINICIANS appointments (each at its own time: nobody is
  // booked twice at once); every appointment is still its own room with its own join rights.
  const people: { practitioner: string; patient: string; cookies: [string, string] }[] = [];
  for (let c = 0; c < Math.min(count, CLINICIANS); c++) {
    const practitioner = await records.create({ resourceType: 'Practitioner', active: true, name: [{ family: `Bench${c}`, given: ['Clínica'] }] });
    const patient = await records.create({ resourceType: 'Patient', active: true, name: [{ family: `Bench${c}`, given: ['Paciente'] }], gender: 'female', birthDate: '1980-02-03' });
    const cookies: string[] = [];
    for (const [role, ref] of [['clinician', `Practitioner/${practitioner.id}`], ['patient', `Patient/${patient.id}`]] as const) {
      const id = randomUUID();
      await node.store.db
        .insertInto('account')
        .values({ id, email: `${role}${c}@bench.example.org`, role, display_name: null, fhir_ref: ref, status: 'active', password_hash: null, password_changed_at: null, totp_secret_sealed: null, totp_last_step: null, failed_sign_ins: 0, last_failed_at: null, locked_until: null })
        .execute();
      if (role === 'patient') await recordConsent(node.store.db, { patientRef: ref, accountId: id, source: 'bench' });
      cookies.push((await node.sessions.create({ id, role }, { source: 'bench' })).token);
    }
    people.push({ practitioner: practitioner.id, patient: patient.id, cookies: [cookies[0]!, cookies[1]!] });
  }
  for (let i = 0; i < count; i++) {
    const who = people[i % people.length]!;
    const start = new Date(base + Math.floor(i / people.length) * 20 * 60_000);
    const appointment = await records.create({
      resourceType: 'Appointment',
      status: 'booked',
      appointmentType: { coding: [{ system: CONSULTATION_MODE_SYSTEM, code: 'telehealth' }] },
      start: start.toISOString(),
      end: new Date(start.getTime() + 20 * 60_000).toISOString(),
      participant: [
        { actor: { reference: `Patient/${who.patient}` }, status: 'accepted' },
        { actor: { reference: `Practitioner/${who.practitioner}` }, status: 'accepted' },
      ],
    });
    seeded.push({ appointmentId: appointment.id, hostCookie: who.cookies[0], patientCookie: who.cookies[1] });
  }
  await node.audit.drain();
  const seedSeconds = (Date.now() - started) / 1000;
  const app = await buildApp(node);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.on('message', (m: { type: string }) => {
    if (m.type === 'memory') {
      (globalThis as { gc?: () => void }).gc?.();
      const usage = process.memoryUsage();
      const cpu = process.cpuUsage();
      process.send!({ type: 'memory', rss: usage.rss, heapUsed: usage.heapUsed, cpuMs: (cpu.user + cpu.system) / 1000 } satisfies ChildMessage);
    } else if (m.type === 'stop') {
      void app.close().then(() => node.stop()).finally(() => process.exit(0));
    }
  });
  process.send!({ type: 'ready', port, seeded, seedSeconds } satisfies ChildMessage);
}

// ── the simulated browsers (parent) ─────────────────────────────────────────────────

class Browser {
  private readonly waiters = new Map<string, ((m: any) => void)[]>();
  private readonly backlog: any[] = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString());
      const queue = this.waiters.get(message.type);
      const waiter = queue?.shift();
      if (waiter) waiter(message);
      else this.backlog.push(message);
    });
  }

  static open(url: string, cookie: string): Promise<Browser> {
    const socket = new WebSocket(url, { headers: { origin: PUBLIC_URL, cookie: `__Host-telesalud_session=${cookie}` }, perMessageDeflate: false });
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve(new Browser(socket)));
      socket.once('error', reject);
      socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
  }

  send(message: unknown): void {
    this.socket.send(JSON.stringify(message));
  }

  next(type: string, timeoutMs = 10_000): Promise<any> {
    const index = this.backlog.findIndex((m) => m.type === type || m.type === 'error' || m.type === 'closed');
    if (index >= 0) return Promise.resolve(check(this.backlog.splice(index, 1)[0], type));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} within ${timeoutMs} ms`)), timeoutMs);
      const settle = (m: any) => {
        clearTimeout(timer);
        for (const t of [type, 'error', 'closed']) {
          const q = this.waiters.get(t);
          if (q) this.waiters.set(t, q.filter((w) => w !== settle));
        }
        try {
          resolve(check(m, type));
        } catch (err) {
          reject(err);
        }
      };
      for (const t of new Set([type, 'error', 'closed'])) this.waiters.set(t, [...(this.waiters.get(t) ?? []), settle]);
    });
  }
}

function check(message: any, type: string): any {
  if (message.type !== type) throw new Error(`expected ${type}, got ${JSON.stringify(message).slice(0, 200)}`);
  return message;
}

const percentile = (values: number[], p: number): number => {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

/** One consultation: host in, patient in and admitted, offer/answer/3 candidates. Returns its latencies. */
async function openConsultation(url: string, seeded: Seeded, browsers: Browser[]): Promise<{ joinMs: number; exchangeMs: number }> {
  const host = await Browser.open(url, seeded.hostCookie);
  browsers.push(host);
  host.send({ type: 'join', appointmentId: seeded.appointmentId, e2ee: true, identityKey: KEY });
  const hostWelcome = await host.next('welcome');
  await host.next('lobby');
  const patient = await Browser.open(url, seeded.patientCookie);
  browsers.push(patient);
  const joinSent = performance.now();
  patient.send({ type: 'join', appointmentId: seeded.appointmentId, e2ee: true, identityKey: KEY });
  const patientWelcome = await patient.next('welcome');
  const lobby = await host.next('lobby');
  if (lobby.waiting[0]?.id !== patientWelcome.participant.id) throw new Error('the lobby does not show the patient');
  host.send({ type: 'admit', participantId: patientWelcome.participant.id });
  await patient.next('admitted');
  const joinMs = performance.now() - joinSent;
  await host.next('peer-joined');

  const hostId = hostWelcome.participant.id;
  const patientId = patientWelcome.participant.id;
  const exchangeStart = performance.now();
  patient.send({ type: 'signal', to: hostId, description: { type: 'offer', sdp: SDP } });
  await host.next('signal');
  host.send({ type: 'signal', to: patientId, description: { type: 'answer', sdp: SDP } });
  await patient.next('signal');
  for (let i = 0; i < 3; i++) {
    patient.send({ type: 'signal', to: hostId, candidate: { candidate: `candidate:${i} 1 udp 2122260223 127.0.0.1 ${50000 + i} typ host`, sdpMid: '0', sdpMLineIndex: 0 } });
    host.send({ type: 'signal', to: patientId, candidate: { candidate: `candidate:${i} 1 udp 2122260223 127.0.0.1 ${51000 + i} typ host`, sdpMid: '0', sdpMLineIndex: 0 } });
  }
  for (let i = 0; i < 3; i++) await Promise.all([host.next('signal'), patient.next('signal')]);
  return { joinMs, exchangeMs: performance.now() - exchangeStart };
}

/** A plausible SDP size (audio + video, ~3 kB): the relay copies what browsers send. */
const SDP = `v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n${'a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\n'.repeat(70)}`;

export async function benchSignaling(options: SignalingBenchOptions = {}): Promise<SignalingFigures> {
  const max = options.maxConsultations ?? 2000;
  const step = options.step ?? 250;
  const concurrency = options.concurrency ?? 4;
  const budgetMs = (options.seconds ?? 100) * 1000;
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-bench-signaling-'));
  const database = `telesalud_bench_signaling_${process.pid}`;
  let nodeDatabaseUrl: string | undefined;
  if (options.databaseUrl) {
    await adminQuery(options.databaseUrl, `drop database if exists ${database} with (force)`);
    await adminQuery(options.databaseUrl, `create database ${database}`);
    const u = new URL(options.databaseUrl);
    u.pathname = `/${database}`;
    nodeDatabaseUrl = u.toString();
  }
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--node', String(max)], {
    execArgv: ['--import', 'tsx', '--expose-gc'],
    env: { ...process.env, BENCH_DATA_DIR: dataDir, ...(nodeDatabaseUrl ? { BENCH_NODE_DATABASE_URL: nodeDatabaseUrl } : {}) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const replies: ((m: ChildMessage) => void)[] = [];
  child.on('message', (m: ChildMessage) => replies.shift()?.(m));
  const ask = (message?: unknown) =>
    new Promise<ChildMessage>((resolve, reject) => {
      replies.push((m) => (m.type === 'error' ? reject(new Error(m.message)) : resolve(m)));
      if (message) child.send(message as never);
    });
  const browsers: Browser[] = [];
  try {
    log(`seeding ${max} telehealth appointments with their clinicians and patients…`);
    const ready = await ask();
    if (ready.type !== 'ready') throw new Error('the node did not start');
    log(`seeded in ${ready.seedSeconds.toFixed(1)} s; node listening`);
    const url = `ws://127.0.0.1:${ready.port}/consult/ws`;
    const memory = async () => {
      const m = await ask({ type: 'memory' });
      if (m.type !== 'memory') throw new Error('no memory figure');
      return m;
    };
    const baseline = await memory();
    let cpuBefore = baseline.cpuMs;

    const steps: SignalingStep[] = [];
    const started = Date.now();
    let opened = 0;
    let stoppedBecause = `reached ${max} consultations`;
    while (opened < max) {
      if (Date.now() - started > budgetMs) {
        stoppedBecause = `time budget of ${budgetMs / 1000} s used`;
        break;
      }
      const target = Math.min(max, opened + step);
      const joins: number[] = [];
      const exchanges: number[] = [];
      let failures = 0;
      let nextIndex = opened;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (nextIndex < target) {
            const seeded = ready.seeded[nextIndex++]!;
            try {
              const r = await openConsultation(url, seeded, browsers);
              joins.push(r.joinMs);
              exchanges.push(r.exchangeMs);
            } catch (err) {
              failures++;
              if (failures <= 3) log(`  consultation failed: ${(err as Error).message}`);
            }
          }
        }),
      );
      opened = target;
      const mem = await memory();
      const figures: SignalingStep = {
        consultations: opened - steps.reduce((n, s) => n + s.failures, 0) - failures,
        sockets: browsers.length,
        joinP50Ms: percentile(joins, 50),
        joinP99Ms: percentile(joins, 99),
        exchangeP99Ms: percentile(exchanges, 99),
        rssMiB: mem.rss / 2 ** 20,
        heapMiB: mem.heapUsed / 2 ** 20,
        nodeCpuMsPerConsultation: (mem.cpuMs - cpuBefore) / Math.max(1, joins.length),
        machineLoad: os.loadavg()[0]!,
        failures,
      };
      cpuBefore = mem.cpuMs;
      steps.push(figures);
      log(`  ${String(figures.consultations).padStart(5)} consultations  ${String(figures.sockets).padStart(5)} sockets  join→admitted p50 ${figures.joinP50Ms.toFixed(1)} ms  p99 ${figures.joinP99Ms.toFixed(1)} ms  exchange p99 ${figures.exchangeP99Ms.toFixed(1)} ms  node RSS ${figures.rssMiB.toFixed(0)} MiB  heap ${figures.heapMiB.toFixed(0)} MiB  node CPU ${figures.nodeCpuMsPerConsultation.toFixed(1)} ms/consultation  load ${figures.machineLoad.toFixed(1)}${failures ? `  failures ${failures}` : ''}`);
      if (failures > 0) {
        stoppedBecause = `${failures} consultations failed`;
        break;
      }
      // One slow step can be another process's doing on a shared machine; two in a row is the node.
      const previous = steps.at(-2);
      if (!(figures.joinP99Ms < TARGET_P99_MS) && previous && !(previous.joinP99Ms < TARGET_P99_MS)) {
        stoppedBecause = `join p99 over ${TARGET_P99_MS} ms in two steps in a row`;
        break;
      }
    }

    // Held: the last step before two consecutive breaches (or the last step when there were none).
    let heldIndex = steps.length - 1;
    for (let i = 1; i < steps.length; i++) {
      if (!(steps[i]!.joinP99Ms < TARGET_P99_MS) && !(steps[i - 1]!.joinP99Ms < TARGET_P99_MS)) {
        heldIndex = i - 2;
        break;
      }
    }
    if (steps.length === 1 && !(steps[0]!.joinP99Ms < TARGET_P99_MS)) heldIndex = -1;
    const last = steps.at(-1);
    const held = heldIndex >= 0 ? steps[heldIndex] : undefined;
    return {
      steps,
      consultationsUnderTarget: held?.consultations ?? 0,
      socketsUnderTarget: held?.sockets ?? 0,
      bytesPerConsultationRss: last && last.consultations > 0 ? (last.rssMiB * 2 ** 20 - baseline.rss) / last.consultations : NaN,
      bytesPerConsultationHeap: last && last.consultations > 0 ? (last.heapMiB * 2 ** 20 - baseline.heapUsed) / last.consultations : NaN,
      seedSeconds: ready.seedSeconds,
      store: options.databaseUrl ? 'postgres' : 'pglite',
      stoppedBecause,
    };
  } finally {
    for (const b of browsers) b.socket.terminate();
    child.send({ type: 'stop' });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, 15_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    await rm(dataDir, { recursive: true, force: true });
    if (options.databaseUrl) await adminQuery(options.databaseUrl, `drop database if exists ${database} with (force)`).catch(() => undefined);
  }
}

async function adminQuery(url: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

export function printSignalingFigures(f: SignalingFigures, log: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): void {
  const ratio = (n: number) => `${n.toFixed(2)}×`;
  log('');
  log(`Consultation signaling, one node on ${f.store === 'postgres' ? 'PostgreSQL' : 'PGlite'} (simulated browsers, no media)`);
  log(`  concurrent consultations with join p99 < ${TARGET_P99_MS} ms: ${f.consultationsUnderTarget} (target ≥ ${TARGET_CONSULTATIONS}: ${ratio(f.consultationsUnderTarget / TARGET_CONSULTATIONS)})`);
  log(`  sockets then: ${f.socketsUnderTarget} (target ≥ ${TARGET_SOCKETS}: ${ratio(f.socketsUnderTarget / TARGET_SOCKETS)})`);
  const within = f.steps.filter((s) => s.consultations <= f.consultationsUnderTarget);
  const worst = within.reduce((m, s) => Math.max(m, s.joinP99Ms), 0);
  const median = within.map((s) => s.joinP50Ms).sort((a, b) => a - b)[Math.floor(within.length / 2)] ?? NaN;
  log(`  join→admitted within that: p50 ${median.toFixed(1)} ms (median of steps), worst step p99 ${worst.toFixed(1)} ms (${ratio(worst / TARGET_P99_MS)} of the ${TARGET_P99_MS} ms limit)`);
  log(`  memory per consultation (2 sockets, room, participants): ${(f.bytesPerConsultationHeap / 1024).toFixed(1)} KiB of JS heap; RSS ${(f.bytesPerConsultationRss / 1024).toFixed(1)} KiB${f.store === 'pglite' ? ' (unreliable on PGlite: its WebAssembly memory grows and shrinks in the same process)' : ''}`);
  const cpu = f.steps.map((s) => s.nodeCpuMsPerConsultation).sort((a, b) => a - b)[Math.floor(f.steps.length / 2)] ?? NaN;
  log(`  node CPU per consultation opened (2 joins, admission, offer/answer/6 candidates): ${cpu.toFixed(1)} ms (median of steps)`);
  const load = Math.max(...f.steps.map((s) => s.machineLoad));
  if (load > os.cpus().length) log(`  note: machine load reached ${load.toFixed(1)} on ${os.cpus().length} cores; latencies are inflated by other work`);
  log(`  stopped: ${f.stoppedBecause}; seeding took ${f.seedSeconds.toFixed(1)} s`);
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain && process.argv[2] === '--node') {
  runNode(Number(process.argv[3])).catch((err: Error) => {
    process.send?.({ type: 'error', message: err.message } satisfies ChildMessage);
    process.exit(1);
  });
} else if (isMain) {
  const int = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
  benchSignaling({ maxConsultations: int('BENCH_SIGNALING_MAX', 2000), step: int('BENCH_SIGNALING_STEP', 250), concurrency: int('BENCH_SIGNALING_CONCURRENCY', 4), seconds: int('BENCH_SIGNALING_SECONDS', 100), databaseUrl: process.env.BENCH_SIGNALING_DATABASE_URL || undefined })
    .then((figures) => printSignalingFigures(figures))
    .catch((err: Error) => {
      process.stderr.write(`consult signaling bench failed: ${err.stack ?? err.message}\n`);
      process.exitCode = 1;
    });
}
