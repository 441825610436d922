/**
 * What the shield costs: FHIR read and note-write throughput of one node (embedded PGlite), each
 * `telesalud serve` in its own process (bench/server-process.ts) so the load generator never
 * shares its event loop, with the shield on (the real server, dist/) and off
 * (bench/shield-off-server.ts: the same server with TELESALUD_SHIELD=off), runs alternated
 * on/off, off/on… so machine noise falls on both; plus the inspection time alone, in µs per
 * request. Requests carry what a browser sends (User-Agent, Accept-Language, client hints), so
 * the shield reads what it reads in production. Prints both figures and the on/off ratio
 * (target ≥ 0.90), and the server's CPU time per request on and off: on a machine shared with
 * other work, throughput swings by ±15% from run to run, while CPU per request shows what the
 * shield itself adds.
 *
 * `npm run bench` runs it as its `shield` part (BENCH_SECTIONS); `npx tsx bench/shield.ts` runs
 * it alone (after `npm run build`). Environment: BENCH_SHIELD_SECONDS (8) per run,
 * BENCH_CONNECTIONS (8), BENCH_SHIELD_ROUNDS (3).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { REPO_DIR } from './build.js';
import { startServer, type RunningServer } from './server-process.js';
import { sampleCpu } from './cpu-meter.js';
import { inspectRequest } from '../src/edge/request-inspection.js';

const NOTE = "Paciente O'Brien refiere \"mareos\" -- bajar la dosis; glucosa <5 mmol/L; select the best option and review. TA 140/90 > objetivo.";
const SHIELD_OFF_ENTRY = path.join(REPO_DIR, 'bench', 'shield-off-server.ts');

/** Headers of a clinician's Chromium calling the API (the shield reads every one of them). */
const BROWSER_HEADERS: Record<string, string> = {
  'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  accept: 'application/fhir+json',
  'accept-language': 'es-AR,es;q=0.9,en;q=0.8',
  'accept-encoding': 'gzip, deflate, br, zstd',
  'sec-ch-ua': '"Not/A)Brand";v="8", "Chromium";v="126", "Google Chrome";v="126"',
  'sec-ch-ua-mobile': '?0',
  'sec-ch-ua-platform': '"Windows"',
  'sec-fetch-site': 'same-origin',
  'sec-fetch-mode': 'cors',
  'sec-fetch-dest': 'empty',
};

interface Scenario {
  name: string;
  request: (patientId: string) => { method: 'GET' | 'POST'; path: string; body?: string; headers: Record<string, string> };
}

const SCENARIOS: Scenario[] = [
  { name: 'FHIR read', request: (id) => ({ method: 'GET', path: `/fhir/R4/Patient/${id}`, headers: {} }) },
  {
    name: 'note write',
    request: (id) => ({
      method: 'POST',
      path: '/fhir/R4/Observation',
      headers: { 'content-type': 'application/fhir+json' },
      body: JSON.stringify({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }], text: 'Frecuencia cardíaca' }, subject: { reference: `Patient/${id}` }, effectiveDateTime: '2026-03-01T10:00:00Z', valueQuantity: { value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' }, note: [{ text: NOTE }] }),
    }),
  },
];

export interface ShieldBenchOptions {
  seconds: number;
  connections: number;
  rounds: number;
}

export interface ShieldFigures {
  scenarios: { name: string; on: number; off: number; ratio: number; cpuOn: number; cpuOff: number; non2xx: number }[];
  inspectionMicros: Record<string, number>;
}

function post(server: RunningServer, token: string, pathName: string, body: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const req = https.request(new URL(pathName, server.url), { method: 'POST', ca: server.ca, servername: 'localhost', agent: false, headers: { ...BROWSER_HEADERS, authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json', 'content-length': String(payload.length) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function startNode(shield: 'on' | 'off'): Promise<{ server: RunningServer; token: string; patientId: string; stop(): Promise<void> }> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `telesalud-bench-${process.pid}-shield-${shield}-`));
  const token = randomBytes(32).toString('base64url');
  try {
    const server = await startServer({ repoDir: REPO_DIR, dataDir, databaseUrl: undefined, adminToken: token, ...(shield === 'off' ? { entry: SHIELD_OFF_ENTRY } : {}) });
    const created = await post(server, token, '/fhir/R4/Patient', { resourceType: 'Patient', name: [{ family: "O'Brien", given: ['Ana'] }], gender: 'female', birthDate: '1980-02-03' });
    if (created.status !== 201) {
      await server.stop();
      throw new Error(`could not create the bench patient (shield ${shield}): ${created.status}`);
    }
    return {
      server,
      token,
      patientId: created.json.id as string,
      async stop() {
        await server.stop();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
}

function load(url: string, token: string, seconds: number, connections: number, r: ReturnType<Scenario['request']>): Promise<{ rps: number; requests: number; non2xx: number }> {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `${url}${r.path}`,
        connections,
        duration: seconds,
        headers: { ...BROWSER_HEADERS, authorization: `Bearer ${token}`, ...r.headers },
        requests: [{ method: r.method, path: r.path, ...(r.body ? { body: r.body } : {}) }],
        tlsOptions: { rejectUnauthorized: false },
      },
      (err, res) => (err ? reject(err) : resolve({ rps: res.requests.average, requests: res.requests.total, non2xx: res.non2xx + res.errors })),
    );
  });
}

/** Inspection alone, in this process: µs per request for the two scenarios' requests. */
function inspectionMicros(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of SCENARIOS) {
    const r = s.request('0b7a0d7e-1c2b-4f0e-9a55-2f4d3b8c9e11');
    const body = r.body ? Buffer.from(r.body) : undefined;
    const request = {
      method: r.method,
      url: r.path,
      httpVersion: '1.1',
      headers: [['host', 'localhost:8443'], ...Object.entries(BROWSER_HEADERS), ['authorization', 'Bearer abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG'], ...(body ? [['content-type', 'application/fhir+json'], ['content-length', String(body.length)]] : [])] as [string, string][],
      body,
      route: { url: r.method === 'GET' ? '/fhir/R4/:type/:id' : '/fhir/R4/:type', fhirSearch: false },
      publicHost: 'localhost',
    };
    for (let i = 0; i < 2000; i++) inspectRequest(request);
    const n = 20000;
    const t = performance.now();
    for (let i = 0; i < n; i++) inspectRequest(request);
    out[s.name] = ((performance.now() - t) * 1000) / n;
  }
  return out;
}

export async function benchShield(options: ShieldBenchOptions): Promise<ShieldFigures> {
  const totals = new Map<string, { on: number[]; off: number[]; cpu: { on: number[]; off: number[] }; non2xx: number }>(SCENARIOS.map((s) => [s.name, { on: [], off: [], cpu: { on: [], off: [] }, non2xx: 0 }]));
  for (let round = 0; round < options.rounds; round++) {
    // on/off, then off/on: neither side always runs on a warmer (or busier) machine.
    for (const shield of round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
      const node = await startNode(shield);
      try {
        for (const s of SCENARIOS) {
          const before = sampleCpu(node.server.pid).server;
          const r = await load(node.server.url, node.token, options.seconds, options.connections, s.request(node.patientId));
          const after = sampleCpu(node.server.pid).server;
          const t = totals.get(s.name)!;
          t[shield].push(r.rps);
          if (before !== undefined && after !== undefined && r.requests > 0) t.cpu[shield].push(((after - before) * 1e6) / r.requests);
          t.non2xx += r.non2xx;
        }
      } finally {
        await node.stop();
      }
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    scenarios: [...totals].map(([name, t]) => ({ name, on: mean(t.on), off: mean(t.off), ratio: mean(t.on) / mean(t.off), cpuOn: mean(t.cpu.on), cpuOff: mean(t.cpu.off), non2xx: t.non2xx })),
    inspectionMicros: inspectionMicros(),
  };
}

export function printShieldFigures(f: ShieldFigures, options: ShieldBenchOptions): void {
  console.log(`\nShield cost (PGlite node in a child process, HTTPS keep-alive, ${options.connections} connections, ${options.seconds} s per run, ${options.rounds} rounds alternating on/off)`);
  for (const s of f.scenarios) {
    console.log(
      `  ${s.name.padEnd(11)} shield on ${s.on.toFixed(0).padStart(6)} req/s   off ${s.off.toFixed(0).padStart(6)} req/s   on/off ${s.ratio.toFixed(3)} (target ≥ 0.90: ${s.ratio >= 0.9 ? 'met' : 'NOT met'})` +
        (Number.isFinite(s.cpuOn) ? `   server CPU/request on ${s.cpuOn.toFixed(0)} µs, off ${s.cpuOff.toFixed(0)} µs (off/on ${(s.cpuOff / s.cpuOn).toFixed(3)})` : '') +
        (s.non2xx ? `   ⚠ non-2xx or errors: ${s.non2xx}` : ''),
    );
  }
  console.log(`  inspection alone: ${Object.entries(f.inspectionMicros).map(([n, us]) => `${n} ${us.toFixed(1)} µs/request`).join(', ')}`);
}

const envInt = (name: string, fallback: number) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a whole number ≥ 1`);
  return v;
};

/** Settings from the environment, for both ways of running it. */
export function shieldBenchOptions(): ShieldBenchOptions {
  return { seconds: envInt('BENCH_SHIELD_SECONDS', 8), connections: envInt('BENCH_CONNECTIONS', 8), rounds: envInt('BENCH_SHIELD_ROUNDS', 3) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const options = shieldBenchOptions();
  printShieldFigures(await benchShield(options), options);
}
