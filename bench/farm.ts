/**
 * What the farm costs: one mixed workload (FHIR reads, searches, writes, and consultation
 * signaling over WebSockets) against one telesalud node on PostgreSQL alone, then against three
 * nodes on the same PostgreSQL plus Redis behind HAProxy (TLS re-encrypted to the nodes), each
 * process its own (dist/, as installed). Printed side by side: requests/s, latency by kind, and
 * the CPU every part of the service spent per request (nodes, HAProxy, Redis, PostgreSQL, from
 * /proc), whose ratio is the farm's overhead per request (target: at most +15%), and where the
 * time went (the bottleneck). On a 2-core machine three nodes can not be faster than one: CPU
 * per request is the figure that shows what the farm adds, throughput swings with other work.
 *
 * `npm run bench` runs it as its `farm` part (BENCH_SECTIONS=farm for it alone). Environment:
 * BENCH_FARM_SECONDS (15) per configuration after a warm-up of at least BENCH_WARMUP_SECONDS (2) and
 * 400 operations per node (at most a minute), BENCH_CONNECTIONS (8,
 * closed loop; as many consultations signal, one per connection), BENCH_FARM_PATIENTS (40),
 * TELESALUD_BENCH_DATABASE_URL (the PostgreSQL server: each configuration gets, and drops, its own
 * database), TELESALUD_BENCH_REDIS_URL (redis://127.0.0.1:6379; keys under a prefix of their own),
 * BENCH_FARM_CLOSE (1: also run the farm with HAProxy opening a new connection to a node per request,
 * as shipped before keep-alive, to show what that costs; 0: not). HAProxy checks each node's /readyz every
 * second, as shipped (the farm tests check twice as often).
 */
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import pg from 'pg';
import { currentTotpCode } from '../src/auth/mfa/totp.js';
import { SignalingTestClient } from '../src/consult/signaling-test-client.js';
import type { ClientMessage } from '../src/consult/signaling-protocol.js';
import { appointment } from '../src/test-support/fixtures.js';
import { signInThrough, startFarm, type Farm } from '../test/farm/farm-harness.js';
import { sampleCpu } from './cpu-meter.js';
import { int, ms, ratio, table } from './report.js';

export interface FarmBenchOptions {
  seconds: number;
  warmupSeconds: number;
  connections: number;
  patients: number;
  adminUrl: string;
  redisUrl: string;
  /** Also run the farm with HAProxy opening a connection to a node per request, to show what keep-alive saves. */
  closeVariant: boolean;
}

type Kind = 'read' | 'search' | 'write' | 'signal';
const KINDS: Kind[] = ['read', 'search', 'write', 'signal'];
/** Per connection, in turn: 4 reads, 3 searches, 2 writes, 1 signal of every 10 operations. */
const MIX: Kind[] = ['read', 'search', 'read', 'write', 'search', 'read', 'signal', 'search', 'write', 'read'];
/** Operations each node serves before measuring: enough for the hot paths to be optimised. */
const WARM_OPERATIONS_PER_NODE = 400;
const NAMES = ['García', 'Núñez', 'Martínez', 'Thompson', 'López', 'Santos', 'Ibáñez', 'Romero', 'Castro', 'Whitfield'];
const GIVEN = ['Lucía', 'Tomás', 'Ana', 'José', 'Hugo', 'Carmen', 'Olivia', 'Mateo'];

export interface ConfigurationFigures {
  label: string;
  nodes: number;
  connections: number;
  seconds: number;
  operations: number;
  errors: number;
  firstErrors: string[];
  perSecond: number;
  latency: Record<Kind, { count: number; p50: number; p99: number }>;
  /** Cores busy on average, per part of the service, and the load generator and the whole machine. */
  cores: { nodes: number; haproxy: number; redis: number; postgres: number; bench: number; machine: number | undefined };
  /** Milliseconds of CPU per operation, the service's parts together (nodes + HAProxy + Redis + PostgreSQL). */
  serviceCpuMsPerOp: number;
  /** Cores the service's parts use with no load at all (health checks, heartbeats, sweeps): a fixed cost, not per request. */
  idleCores: number;
  /** serviceCpuMsPerOp less that fixed cost. */
  loadCpuMsPerOp: number;
}

export interface FarmFigures {
  one: ConfigurationFigures;
  /** As shipped: HAProxy keeps its TLS connections to the nodes and reuses them. */
  farm: ConfigurationFigures;
  /** The comparison: HAProxy opens a new TLS connection to a node per request (`option http-server-close`). */
  farmClose: ConfigurationFigures | undefined;
}

const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]! : NaN);

function ticksPerSecond(): number {
  return 100; // Linux USER_HZ on every architecture Debian ships.
}

/** utime + stime of a process in seconds (0 once it is gone). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
  } catch {
    return 0;
  }
}

/** Every redis-server of the machine (the farm's Redis is one of them; others are other work's noise). */
function redisPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'redis-server') pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

interface CpuPoint {
  at: number;
  nodes: number;
  haproxy: number;
  redis: number;
  postgres: Map<number, number>;
  bench: number;
  machineBusy: number | undefined;
}

function cpuPoint(farm: Farm, database: string): CpuPoint {
  const pids = farm.pids();
  const sample = sampleCpu(undefined, database);
  return {
    at: performance.now(),
    nodes: Object.entries(pids).filter(([n]) => n.startsWith('node')).reduce((s, [, pid]) => s + cpuSeconds(pid), 0),
    haproxy: pids.haproxy ? cpuSeconds(pids.haproxy) : 0,
    redis: farm.shared.TELESALUD_REDIS_URL ? redisPids().reduce((s, pid) => s + cpuSeconds(pid), 0) : 0,
    postgres: sample.postgres ?? new Map(),
    bench: sample.bench,
    machineBusy: sample.machineBusy,
  };
}

function coresBetween(a: CpuPoint, b: CpuPoint): ConfigurationFigures['cores'] {
  const seconds = (b.at - a.at) / 1000;
  let postgres = 0;
  for (const [pid, s] of b.postgres) postgres += s - (a.postgres.get(pid) ?? 0);
  return {
    nodes: (b.nodes - a.nodes) / seconds,
    haproxy: (b.haproxy - a.haproxy) / seconds,
    redis: (b.redis - a.redis) / seconds,
    postgres: Math.max(0, postgres) / seconds,
    bench: (b.bench - a.bench) / seconds,
    machine: a.machineBusy === undefined || b.machineBusy === undefined ? undefined : (b.machineBusy - a.machineBusy) / seconds,
  };
}

async function runConfiguration(label: string, nodes: number, options: FarmBenchOptions, serverConnections: 'close' | 'keep-alive' = 'keep-alive'): Promise<ConfigurationFigures> {
  const database = `telesalud_bench_farm_${process.pid}_${nodes}_${serverConnections.replace('-', '_')}`;
  const admin = new pg.Pool({ connectionString: options.adminUrl, max: 1 });
  await admin.query(`drop database if exists ${database} with (force)`);
  await admin.query(`create database ${database}`);
  const url = new URL(options.adminUrl);
  url.pathname = `/${database}`;
  let farm: Farm | undefined;
  const sockets: SignalingTestClient[] = [];
  try {
    farm = await startFarm({
      nodes,
      databaseUrl: url.toString(),
      ...(nodes > 1 ? { redisUrl: options.redisUrl } : {}),
      loadBalancer: nodes > 1,
      serverConnections,
      checkIntervalMs: 1000,
      entry: 'dist',
      maxSockets: options.connections + 4,
      env: { TELESALUD_LOG_LEVEL: 'warn' },
    });
    const f = farm;
    const auth = { authorization: `Bearer ${f.adminToken}` };

    // ── data: patients with a few observations each, through the API ──
    const patientIds: string[] = [];
    const observationIds: string[] = [];
    for (let i = 0; i < options.patients; i++) {
      const res = await f.lb({ method: 'POST', path: '/fhir/R4/Patient', headers: auth, body: { resourceType: 'Patient', name: [{ family: NAMES[i % NAMES.length], given: [GIVEN[i % GIVEN.length]] }], birthDate: `19${50 + (i % 50)}-0${1 + (i % 9)}-1${i % 10}` } });
      if (res.status !== 201) throw new Error(`seeding a patient: ${res.status}`);
      patientIds.push(res.body.id);
      for (let j = 0; j < 3; j++) {
        const obs = await f.lb({ method: 'POST', path: '/fhir/R4/Observation', headers: auth, body: heartRate(res.body.id, 60 + j) });
        if (obs.status !== 201) throw new Error(`seeding an observation: ${obs.status}`);
        observationIds.push(obs.body.id);
      }
    }

    // ── one consultation per connection: a clinician and a patient in it, both admitted ──
    const people = await f.accounts([{ key: 'medico', role: 'clinician', name: 'Lucía Fernández' }, ...Array.from({ length: options.connections }, (_, i) => ({ key: `paciente${i}`, role: 'patient' as const, name: `${GIVEN[i % GIVEN.length]} ${NAMES[i % NAMES.length]}` }))]);
    const clinician = people[0]!;
    const clinicianCookie = (await signInThrough(f, clinician.email, currentTotpCode(clinician.totpSecret!))).cookie!;
    const rooms: { host: SignalingTestClient; guest: SignalingTestClient; hostId: string; guestId: string }[] = [];
    for (const patient of people.slice(1)) {
      const cookie = (await signInThrough(f, patient.email)).cookie!;
      const appt = await f.lb({ method: 'POST', path: '/fhir/R4/Appointment', headers: auth, body: appointment(patient.patientId!, clinician.practitionerId!, new Date(Date.UTC(2027, 5, 1, 9) + rooms.length * 30 * 60_000).toISOString()) });
      if (appt.status !== 201) throw new Error(`booking: ${appt.status} ${JSON.stringify(appt.body).slice(0, 200)}`);
      const join = (identityKey: string): ClientMessage => ({ type: 'join', appointmentId: appt.body.id, e2ee: true, identityKey }) as ClientMessage;
      const host = await SignalingTestClient.connect(f.publicUrl, { origin: f.publicUrl, cookie: clinicianCookie, ca: f.ca });
      sockets.push(host);
      host.send(join('HostKey'));
      const hostId = (await host.next('welcome', 15_000)).participant.id;
      const guest = await SignalingTestClient.connect(f.publicUrl, { origin: f.publicUrl, cookie, ca: f.ca });
      sockets.push(guest);
      guest.send(join('GuestKey'));
      const guestId = (await guest.next('welcome', 15_000)).participant.id;
      host.send({ type: 'admit', participantId: guestId });
      await guest.next('admitted', 15_000);
      rooms.push({ host, guest, hostId, guestId });
    }

    // ── the fixed cost: the service idle, every room open ──
    const idleFrom = cpuPoint(f, database);
    await new Promise((r) => setTimeout(r, 3000));
    const idle = coresBetween(idleFrom, cpuPoint(f, database));
    const idleCores = idle.nodes + idle.haproxy + idle.redis + idle.postgres;

    // ── the closed loop ──
    const latencies: Record<Kind, number[]> = { read: [], search: [], write: [], signal: [] };
    const errors: string[] = [];
    let measuring = false;
    let running = true;
    const op = async (kind: Kind, n: number, room: (typeof rooms)[number]): Promise<void> => {
      const pick = <T>(list: T[]) => list[(n * 7919 + list.length) % list.length]!;
      if (kind === 'read') {
        const res = n % 2 ? await f.lb({ method: 'GET', path: `/fhir/R4/Patient/${pick(patientIds)}`, headers: auth }) : await f.lb({ method: 'GET', path: `/fhir/R4/Observation/${pick(observationIds)}`, headers: auth });
        if (res.status !== 200) throw new Error(`read ${res.status}`);
      } else if (kind === 'search') {
        const res = n % 2 ? await f.lb({ method: 'GET', path: `/fhir/R4/Patient?name=${encodeURIComponent(pick(NAMES).slice(0, 3))}&_count=10`, headers: auth }) : await f.lb({ method: 'GET', path: `/fhir/R4/Observation?patient=${pick(patientIds)}&_count=10`, headers: auth });
        if (res.status !== 200) throw new Error(`search ${res.status}`);
      } else if (kind === 'write') {
        const res = await f.lb({ method: 'POST', path: '/fhir/R4/Observation', headers: auth, body: heartRate(pick(patientIds), 60 + (n % 40)) });
        if (res.status !== 201) throw new Error(`write ${res.status}`);
      } else {
        // One SDP-sized message from one participant to the other, in alternating directions: across nodes in the farm.
        const [from, to, toId] = n % 2 ? [room.guest, room.host, room.hostId] : [room.host, room.guest, room.guestId];
        from.send({ type: 'signal', to: toId, description: { type: 'offer', sdp: `v=0 ${'a=candidate '.repeat(60)}${n}` } });
        await to.next('signal', 10_000);
      }
    };
    const worker = async (index: number) => {
      const room = rooms[index]!;
      for (let n = index; running; n++) {
        const kind = MIX[n % MIX.length]!;
        const started = performance.now();
        try {
          await op(kind, n, room);
          if (measuring) latencies[kind].push(performance.now() - started);
          else warmed++;
        } catch (err) {
          if (measuring) errors.push((err as Error).message);
        }
      }
    };
    let warmed = 0;
    const workers = Promise.all(rooms.map((_, i) => worker(i)));
    // Warm until every node has run each kind of operation often enough for V8 to optimise it
    // (three nodes each see a third of the traffic), at most a minute.
    const warmUntil = Date.now() + 60_000;
    const warmFrom = Date.now();
    while (Date.now() < warmUntil && (Date.now() - warmFrom < options.warmupSeconds * 1000 || warmed < WARM_OPERATIONS_PER_NODE * nodes)) await new Promise((r) => setTimeout(r, 200));
    measuring = true;
    const before = cpuPoint(f, database);
    await new Promise((r) => setTimeout(r, options.seconds * 1000));
    const after = cpuPoint(f, database);
    measuring = false;
    running = false;
    await workers;

    const seconds = (after.at - before.at) / 1000;
    const operations = KINDS.reduce((s, k) => s + latencies[k].length, 0);
    const cores = coresBetween(before, after);
    const latency = Object.fromEntries(
      KINDS.map((k) => {
        const sorted = latencies[k].sort((a, b) => a - b);
        return [k, { count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99) }];
      }),
    ) as ConfigurationFigures['latency'];
    return {
      label,
      nodes,
      connections: options.connections,
      seconds,
      operations,
      errors: errors.length,
      firstErrors: [...new Set(errors)].slice(0, 3),
      perSecond: operations / seconds,
      latency,
      cores,
      serviceCpuMsPerOp: ((cores.nodes + cores.haproxy + cores.redis + cores.postgres) * seconds * 1000) / operations,
      idleCores,
      loadCpuMsPerOp: (Math.max(0, cores.nodes + cores.haproxy + cores.redis + cores.postgres - idleCores) * seconds * 1000) / operations,
    };
  } finally {
    for (const s of sockets) s.close();
    await farm?.stop().catch(() => undefined);
    await admin.query(`drop database if exists ${database} with (force)`).catch(() => undefined);
    await admin.end();
  }
}

function heartRate(patientId: string, value: number) {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: new Date().toISOString(),
    valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
  };
}

export async function benchFarm(options: FarmBenchOptions): Promise<FarmFigures> {
  console.log(`\nfarm: mixed workload, one node vs three nodes behind HAProxy (${options.connections} connections, ${options.seconds} s each)`);
  const one = await runConfiguration('one node', 1, options);
  console.log(`  one node: ${int(one.perSecond)} operations/s`);
  const farm = await runConfiguration('3 nodes + HAProxy + Redis', 3, options);
  console.log(`  farm: ${int(farm.perSecond)} operations/s`);
  let farmClose: ConfigurationFigures | undefined;
  if (options.closeVariant) {
    farmClose = await runConfiguration('farm, a connection per request to the nodes', 3, options, 'close');
    console.log(`  farm with a new HAProxy connection to a node per request: ${int(farmClose.perSecond)} operations/s`);
  }
  return { one, farm, farmClose };
}

/** The farm's added CPU per operation against one node; the issue's target is at most 15%. */
export const FARM_OVERHEAD_TARGET = 0.15;

export function printFarmFigures(f: FarmFigures): void {
  const { one, farm, farmClose: alive } = f;
  console.log('\nfarm: one node vs three nodes behind HAProxy');
  const share = (kind: Kind) => `${MIX.filter((k) => k === kind).length * 10}%`;
  console.log(`  workload per connection: ${share('read')} FHIR reads, ${share('search')} searches, ${share('write')} writes, ${share('signal')} consultation signals (one SDP-sized message between the two participants of a room, timed to its arrival)`);
  console.log(`  one node: PostgreSQL only, clients straight to it. farm: 3 nodes, PostgreSQL + Redis, HAProxy terminating TLS and re-encrypting to the nodes over kept connections (as shipped)${alive ? '; "per-request": the same farm with HAProxy opening a new connection to a node per request (option http-server-close, shipped before)' : ''}. Same machine: ${os.cpus().length} CPUs`);
  const configs = [one, farm, ...(alive ? [alive] : [])];
  const line = (label: string, value: (c: ConfigurationFigures) => number, format: (n: number) => string, withRatio = true) => [
    label,
    ...configs.map((c) => format(value(c))),
    ...(withRatio ? configs.slice(1).map((c) => ratio(value(c) / value(one))) : configs.slice(1).map(() => '')),
  ];
  const cores = (c: ConfigurationFigures['cores'][keyof ConfigurationFigures['cores']]) => (c === undefined ? NaN : c);
  const rows: string[][] = [
    line('operations/s', (c) => c.perSecond, int),
    ...KINDS.flatMap((k) => [line(`${k} p50 ms`, (c) => c.latency[k].p50, ms), line(`${k} p99 ms`, (c) => c.latency[k].p99, ms)]),
    line('errors', (c) => c.errors, int, false),
    line('cores: telesalud nodes', (c) => c.cores.nodes, (n) => n.toFixed(2), false),
    line('cores: HAProxy', (c) => c.cores.haproxy, (n) => n.toFixed(2), false),
    line('cores: Redis', (c) => c.cores.redis, (n) => n.toFixed(2), false),
    line('cores: PostgreSQL', (c) => c.cores.postgres, (n) => n.toFixed(2), false),
    line('cores: load generator', (c) => c.cores.bench, (n) => n.toFixed(2), false),
    line('cores: whole machine', (c) => cores(c.cores.machine), (n) => (Number.isFinite(n) ? n.toFixed(2) : '—'), false),
    line('service CPU ms per operation', (c) => c.serviceCpuMsPerOp, ms),
    line('service cores when idle', (c) => c.idleCores, (n) => n.toFixed(3), false),
    line('… less the idle cost', (c) => c.loadCpuMsPerOp, ms),
  ];
  const headers = ['', 'one node', 'farm', ...(alive ? ['per-request'] : []), 'farm/one', ...(alive ? ['per-request/one'] : [])];
  console.log(table(headers, rows, headers.map((_, i) => i > 0)));
  for (const c of configs) if (c.errors) console.log(`  ⚠ ${c.label}: ${c.errors} failed operations (${c.firstErrors.join('; ')}): its figures are not valid`);

  const overhead = (c: ConfigurationFigures) => c.serviceCpuMsPerOp / one.serviceCpuMsPerOp - 1;
  const pct = (n: number) => `${n >= 0 ? '+' : ''}${(n * 100).toFixed(1)}%`;
  console.log(`  overhead per operation (service CPU, farm as shipped): ${pct(overhead(farm))} (target ≤ +${FARM_OVERHEAD_TARGET * 100}%) → ${overhead(farm) <= FARM_OVERHEAD_TARGET ? 'met' : 'NOT met'}${alive ? `; with a new connection to a node per request: ${pct(overhead(alive))}` : ''}`);
  const net = (c: ConfigurationFigures) => c.loadCpuMsPerOp / one.loadCpuMsPerOp - 1;
  console.log(`  the same less each configuration's idle cost (fixed per second, not per request; it weighs less the busier the farm): ${pct(net(farm))}${alive ? `; per-request connections: ${pct(net(alive))}` : ''}`);
  const perOp = (c: number) => (c * farm.seconds * 1000) / farm.operations;
  const ranked = (
    [
      ['telesalud nodes', farm.cores.nodes],
      ['PostgreSQL', farm.cores.postgres],
      ['HAProxy', farm.cores.haproxy],
      ['Redis', farm.cores.redis],
    ] as const
  ).slice().sort((a, b) => b[1] - a[1]);
  const machine = farm.cores.machine;
  const saturated = machine !== undefined && machine >= os.cpus().length * 0.9;
  const service = farm.cores.nodes + farm.cores.haproxy + farm.cores.redis + farm.cores.postgres;
  console.log(`  where the farm's CPU goes (ms per operation): ${ranked.map(([n, c]) => `${n} ${ms(perOp(c))}`).join(', ')}`);
  console.log(
    `  bottleneck: ${saturated ? `the machine's CPU (${machine!.toFixed(2)} of ${os.cpus().length} cores busy); of the service's share, ${ranked[0]![0]} take ${((ranked[0]![1] / service) * 100).toFixed(0)}%` : `not the CPU (${machine?.toFixed(2) ?? '?'} of ${os.cpus().length} cores busy): the ${farm.connections} closed-loop connections mostly wait, on PostgreSQL commits first (write p50 ${ms(farm.latency.write.p50)} ms)`}; the load generator itself took ${farm.cores.bench.toFixed(2)} cores`,
  );
  for (const c of configs) {
    const otherWork = c.cores.machine === undefined ? 0 : c.cores.machine - c.cores.nodes - c.cores.haproxy - c.cores.redis - c.cores.postgres - c.cores.bench;
    if (otherWork > 0.25) console.log(`  ⚠ other work on this machine took ${otherWork.toFixed(2)} cores during "${c.label}": its throughput and latency understate a quiet machine; CPU per operation is less affected, but fixed costs (health checks, heartbeats) and code V8 has not optimised yet weigh more per operation at a low rate — rerun on a quiet machine before quoting the overhead`);
  }
}

export function farmBenchOptions(): FarmBenchOptions {
  const int = (name: string, fallback: number, min: number) => {
    const raw = process.env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be a whole number ≥ ${min}, got "${raw}"`);
    return value;
  };
  return {
    seconds: int('BENCH_FARM_SECONDS', 15, 1),
    warmupSeconds: int('BENCH_WARMUP_SECONDS', 2, 0),
    connections: int('BENCH_CONNECTIONS', 8, 1),
    patients: int('BENCH_FARM_PATIENTS', 40, 1),
    adminUrl: process.env.TELESALUD_BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
    redisUrl: process.env.TELESALUD_BENCH_REDIS_URL || 'redis://127.0.0.1:6379',
    closeVariant: process.env.BENCH_FARM_CLOSE !== '0',
  };
}

// `npx tsx bench/farm.ts` runs this part alone (after `npm run build`).
if (import.meta.url === `file://${process.argv[1]}`) {
  const options = farmBenchOptions();
  benchFarm(options).then(
    (figures) => printFarmFigures(figures),
    (err) => {
      console.error(`bench farm: ${(err as Error).stack ?? err}`);
      process.exitCode = 1;
    },
  );
}
