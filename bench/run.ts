/**
 * `npm run bench`: FHIR read and search throughput and latency of one telesalud node, on real
 * PostgreSQL and on the embedded PGlite, with a dataset of synthetic patients and vital signs.
 *
 * It measures the build in dist/ (`npm run build` first). For each store: seed through
 * Repository.create (in this process, from dist/ too), start `telesalud serve`
 * as a child process on that store, check a few answers, then drive each scenario with
 * autocannon (keep-alive HTTPS, closed loop) and print requests/s, latency percentiles,
 * errors, where the CPU went, and the ratio to the targets. Targets are printed, not
 * asserted: the exit code is 0 unless the benchmark could not run.
 *
 * Environment (all optional):
 *   BENCH_PATIENTS (10000), BENCH_OBS_PER_PATIENT (10), BENCH_SECONDS (10) per scenario,
 *   BENCH_WARMUP_SECONDS (2), BENCH_CONNECTIONS (8), BENCH_STORES ("postgres,pglite"),
 *   BENCH_SEED_CONCURRENCY (16, PostgreSQL; PGlite has one connection),
 *   BENCH_PGLITE_SEED ("copy": PGlite gets the PostgreSQL dataset by SQL, and its import rate
 *   is measured on BENCH_PGLITE_RATE_PATIENTS (300) patients in a fresh data dir; "api": all
 *   of it through Repository.create, which takes PGlite about 10 minutes for the default size),
 *   TELESALUD_BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/test: the server on
 *   which each run creates, and drops at the end, its own database telesalud_bench_<pid>),
 *   BENCH_CPU_PROFILE_DIR (write a V8 CPU profile of each server there; summarize it with
 *   `npx tsx bench/profile-summary.ts FILE`), BENCH_SERVER_ENTRY (for experiments: a script
 *   started instead of bin/telesalud.js, given the argument `serve`),
 *   BENCH_KEEP=1 (keep the data dirs and the database after the run; the next run removes them),
 *   BENCH_SCENARIOS ("healthz,read,name,obs,audit"; audit: reads by id on this store by the real
 *   server, by bench/audit-off-server.ts, whose audit trail is off, and their ratio, and by a
 *   server with TELESALUD_AUDIT_COMMIT=before-answer for comparison),
 *   BENCH_AUDIT_ROUNDS (2: audit off/on/before-answer rounds, in alternating order; each variant's best is kept),
 *   BENCH_PG_SETTINGS (e.g. "synchronous_commit=off": ALTER DATABASE … SET, for experiments;
 *   by default the server's own configuration),
 *   BENCH_QUIET_WAIT_SECONDS (60: before each scenario, wait up to this long for other work on
 *   the machine to stop; a scenario that ran beside other work is flagged as disturbed),
 *   BENCH_SECTIONS ("fhir,signaling,shield,media,farm,web": which parts run; each further part has its own knobs,
 *   listed at the top of its file: bench/consult-signaling.ts, bench/shield.ts, bench/consult-media.ts, bench/farm.ts,
 *   bench/web-first-load.ts).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { build, REPO_DIR, sourceNewerThanBuild } from './build.js';
import { waitForQuiet } from './cpu-meter.js';
import { hostSpeedLine } from './host-speed.js';
import { runLoad, type LoadResult } from './load.js';
import { DISTURBED_CORES, int, isDisturbed, ms, ratio, scenarioTable, table, targetLines, targetsMet, hadErrors, type ScenarioOutcome, type Targets } from './report.js';
import { copyPostgresIntoPglite } from './copy-store.js';
import { seedStore } from './seed.js';
import { get, startServer, type RunningServer } from './server-process.js';
import { isProcessAlive } from '../src/server/data-dir-lock.js';
import { benchSignaling, printSignalingFigures } from './consult-signaling.js';
import { benchShield, printShieldFigures, shieldBenchOptions } from './shield.js';
import { benchConsultMedia, printConsultMediaFigures } from './consult-media.js';
import { benchFarm, farmBenchOptions, printFarmFigures } from './farm.js';
import { benchWebFirstLoad, printWebFigures } from './web-first-load.js';

/** One database per run (its pid in the name): runs side by side never drop each other's data. */
const BENCH_DATABASE_PREFIX = 'telesalud_bench_';
const BENCH_DATABASE = `${BENCH_DATABASE_PREFIX}${process.pid}`;

type StoreKind = 'postgres' | 'pglite';
const STORE_NAMES: Record<StoreKind, string> = { postgres: 'PostgreSQL', pglite: 'PGlite' };

function envInt(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be a whole number ≥ ${min}, got "${raw}"`);
  return value;
}

const settings = {
  patients: envInt('BENCH_PATIENTS', 10_000, 1),
  observationsPerPatient: envInt('BENCH_OBS_PER_PATIENT', 10, 0),
  seconds: envInt('BENCH_SECONDS', 10, 1),
  warmupSeconds: envInt('BENCH_WARMUP_SECONDS', 2, 0),
  connections: envInt('BENCH_CONNECTIONS', 8, 1),
  seedConcurrency: envInt('BENCH_SEED_CONCURRENCY', 16, 1),
  pgliteSeed: (process.env.BENCH_PGLITE_SEED || 'copy') as 'copy' | 'api',
  pgliteRatePatients: envInt('BENCH_PGLITE_RATE_PATIENTS', 300, 1),
  stores: (process.env.BENCH_STORES || 'postgres,pglite').split(',').map((s) => s.trim()).filter(Boolean) as StoreKind[],
  adminUrl: process.env.TELESALUD_BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
  serverEntry: process.env.BENCH_SERVER_ENTRY || undefined,
  cpuProfileDir: process.env.BENCH_CPU_PROFILE_DIR ? path.resolve(process.env.BENCH_CPU_PROFILE_DIR) : undefined,
  keep: process.env.BENCH_KEEP === '1',
  pgSettings: (process.env.BENCH_PG_SETTINGS || '').split(',').map((x) => x.trim()).filter(Boolean),
  scenarios: (process.env.BENCH_SCENARIOS || 'healthz,read,name,obs,audit').split(',').map((x) => x.trim()),
  auditRounds: envInt('BENCH_AUDIT_ROUNDS', 2, 1),
  quietWaitSeconds: envInt('BENCH_QUIET_WAIT_SECONDS', 60, 0),
  sections: (process.env.BENCH_SECTIONS || 'fhir,signaling,shield,media,farm,web').split(',').map((x) => x.trim()),
};
/** The parts of the benchmark after the FHIR one, each printing its own figures and ratios. */
const FURTHER_SECTIONS: Record<string, { title: string; run: () => Promise<void> }> = {
  signaling: {
    title: 'consultation signaling capacity',
    run: async () => printSignalingFigures(await benchSignaling({ maxConsultations: envInt('BENCH_SIGNALING_MAX', 2000, 1), step: envInt('BENCH_SIGNALING_STEP', 250, 1), seconds: envInt('BENCH_SIGNALING_SECONDS', 100, 1) })),
  },
  shield: {
    title: 'shield cost (FHIR read and note write, shield on / off)',
    run: async () => {
      const options = shieldBenchOptions();
      printShieldFigures(await benchShield(options), options);
    },
  },
  farm: {
    title: 'farm (mixed workload on one node and on three nodes behind HAProxy, overhead per request)',
    run: async () => printFarmFigures(await benchFarm(farmBenchOptions())),
  },
  web: {
    title: 'patient portal first load in Chromium (cold sign-in page to interactive, signed-in /portal to the appointments list, JS size)',
    run: async () => printWebFigures(await benchWebFirstLoad({ runs: Math.min(50, envInt('BENCH_WEB_RUNS', 10, 3)), budgetSeconds: envInt('BENCH_WEB_BUDGET_SECONDS', 120, 10) })),
  },
  media: {
    title: 'consultation media (admit → first frame and video bitrate, encryption on / off)',
    run: async () =>
      printConsultMediaFigures(
        await benchConsultMedia({ runs: envInt('BENCH_MEDIA_RUNS', 7, 7), bitrateRuns: envInt('BENCH_MEDIA_BITRATE_RUNS', 3, 0), windowSeconds: envInt('BENCH_MEDIA_WINDOW_SECONDS', 10, 1), budgetSeconds: envInt('BENCH_MEDIA_BUDGET_SECONDS', 160, 10), shield: process.env.BENCH_MEDIA_SHIELD !== 'off' }),
      ),
  },
};
for (const section of settings.sections) if (section !== 'fhir' && !(section in FURTHER_SECTIONS)) throw new Error(`BENCH_SECTIONS: unknown part "${section}" (fhir, ${Object.keys(FURTHER_SECTIONS).join(', ')})`);
for (const store of settings.stores) if (!(store in STORE_NAMES)) throw new Error(`BENCH_STORES: unknown store "${store}" (postgres, pglite)`);
if (!['copy', 'api'].includes(settings.pgliteSeed)) throw new Error(`BENCH_PGLITE_SEED must be copy or api, got "${settings.pgliteSeed}"`);

// What the issue asks of one 2-core machine.
const READ_TARGETS: Targets = { minRps: 3000, maxP99Ms: 10 };
const NAME_SEARCH_TARGETS: Targets = { maxP99Ms: 25 };
/** Audit must not make the service slow: reads with it keep ≥ 90% of the reads without it. */
const AUDIT_TARGETS: Targets = { minShareOf: { key: 'read-audit-off', label: 'audit off', min: 0.9 } };
/** The same node with its AuditLog made a no-op: never reachable from the product CLI. */
const AUDIT_OFF_ENTRY = path.join(REPO_DIR, 'bench', 'audit-off-server.ts');
/** Other work above this many cores disturbs a run on a 2-core machine. */
const QUIET_CORES = DISTURBED_CORES;

/** What a receptionist types: 2–4 letters, any case, with or without the accent. */
const NAME_PREFIXES = ['gar', 'nuñ', "o'b", 'mart', 'thom', 'Lóp', 'san', 'fitz', 'ibá', 'jos', 'hug', 'PEÑ', "d'a", 'oka', 'rom', 'whit', 'lu', 'ben', 'muñ', 'cast', 'nu', 'mar'];

// ---- cleanup: no orphan servers, no leftover data ----

const cleanups: (() => Promise<void>)[] = [];
async function cleanUp(): Promise<void> {
  while (cleanups.length) await cleanups.pop()!().catch((err) => console.error(`cleanup: ${(err as Error).message}`));
}
/** Temp dirs carry the run's pid, so a later run can remove those of a run that was killed. */
const TEMP_PREFIX = 'telesalud-bench-';
async function tempDir(label: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `${TEMP_PREFIX}${process.pid}-${label}-`));
  cleanups.push(async () => {
    if (settings.keep && !label.endsWith('-rate')) console.log(`  kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping`);
    void cleanUp().finally(() => process.exit(130));
  });
}

// ---- PostgreSQL administration ----

async function adminQuery(url: string, statement: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await client.query(statement);
  } finally {
    await client.end();
  }
}

function benchDatabaseUrl(adminUrl: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${BENCH_DATABASE}`;
  return url.toString();
}

async function removeAbandonedTempDirs(): Promise<void> {
  for (const entry of await readdir(os.tmpdir()).catch(() => [] as string[])) {
    const m = new RegExp(`^${TEMP_PREFIX}(\\d+)-`).exec(entry);
    if (m && !isProcessAlive(Number(m[1]))) await rm(path.join(os.tmpdir(), entry), { recursive: true, force: true });
  }
}

/** Databases of earlier runs on this machine that were killed before they could drop them. */
async function dropAbandonedDatabases(adminUrl: string): Promise<void> {
  const host = new URL(adminUrl).hostname;
  if (!['127.0.0.1', 'localhost', '::1', '[::1]', ''].includes(host)) return;
  const { rows } = await adminQuery(adminUrl, `select datname from pg_database where datname like '${BENCH_DATABASE_PREFIX}%'`);
  for (const { datname } of rows as { datname: string }[]) {
    const pid = Number(datname.slice(BENCH_DATABASE_PREFIX.length));
    if (!Number.isInteger(pid) || pid <= 0 || isProcessAlive(pid)) continue;
    await adminQuery(adminUrl, `drop database if exists ${pg.escapeIdentifier(datname)} with (force)`);
  }
}

async function postgresSettings(url: string): Promise<string> {
  const names = ['server_version', 'shared_buffers', 'synchronous_commit', 'fsync', 'max_connections'];
  const values: string[] = [];
  for (const name of names) values.push(`${name}=${(await adminQuery(url, `show ${name}`)).rows[0]?.[name]}`);
  return values.join(', ');
}

// ---- one store ----

interface StoreReport {
  kind: StoreKind;
  seedLine: string;
  outcomes: ScenarioOutcome[];
  smokeFailures: string[];
}

function progress(label: string) {
  let last = 0;
  return (done: number, total: number, elapsed: number) => {
    const line = `  ${label}: ${int(done)} / ${int(total)} resources, ${elapsed.toFixed(0)} s, ${int(done / Math.max(elapsed, 0.001))}/s`;
    if (process.stdout.isTTY) {
      process.stdout.write(`\r${line}   ${done === total ? '\n' : ''}`);
    } else if (done === total || elapsed - last >= 15) {
      last = elapsed;
      console.log(line);
    }
  };
}

/** The PostgreSQL dataset, kept until the end of the run so PGlite can be given the same rows. */
interface Dataset {
  patientIds: string[];
  databaseUrl: string;
}

/** `onDataset` hears of the PostgreSQL dataset as soon as it is seeded, even if the load then fails. */
async function benchStore(kind: StoreKind, postgresDataset: Dataset | undefined, onDataset: (dataset: Dataset) => void): Promise<StoreReport> {
  const name = STORE_NAMES[kind];
  const dataDir = await tempDir(kind);
  const token = randomBytes(32).toString('base64url');
  const resources = settings.patients * (1 + settings.observationsPerPatient);

  let databaseUrl: string | undefined;
  let ids: string[];
  let seedLine: string;
  if (kind === 'postgres') {
    await dropAbandonedDatabases(settings.adminUrl);
    await adminQuery(settings.adminUrl, `create database ${BENCH_DATABASE}`);
    cleanups.push(async () => {
      if (settings.keep) console.log(`  kept database ${BENCH_DATABASE} (the next run drops it)`);
      else await adminQuery(settings.adminUrl, `drop database if exists ${BENCH_DATABASE} with (force)`);
    });
    for (const setting of settings.pgSettings) {
      const [key, value] = setting.split('=') as [string, string | undefined];
      if (!/^[a-z_]+$/.test(key) || value === undefined || !/^[\w.]+$/.test(value)) throw new Error(`BENCH_PG_SETTINGS: "${setting}" is not name=value`);
      await adminQuery(settings.adminUrl, `alter database ${BENCH_DATABASE} set ${key} = '${value}'`);
    }
    databaseUrl = benchDatabaseUrl(settings.adminUrl);
    console.log(`  ${await postgresSettings(databaseUrl)}`);
    const seeded = await seedStore({
      dataDir,
      databaseUrl,
      adminToken: token,
      patients: settings.patients,
      observationsPerPatient: settings.observationsPerPatient,
      concurrency: settings.seedConcurrency,
      onProgress: progress(`seeding ${name}`),
    });
    ids = seeded.patientIds;
    onDataset({ patientIds: ids, databaseUrl });
    seedLine =
      `seeded ${int(settings.patients)} patients + ${int(settings.patients * settings.observationsPerPatient)} observations = ${int(seeded.resources)} resources ` +
      `in ${seeded.seconds.toFixed(1)} s = ${int(seeded.resources / seeded.seconds)} resources/s ` +
      `(Repository.create in process, ${settings.seedConcurrency} at once; each a transaction: validation, row, history, search strings, audit; then VACUUM ANALYZE ${seeded.analyzeSeconds.toFixed(1)} s)`;
  } else {
    const version = JSON.parse(readFileSync(path.join(REPO_DIR, 'node_modules', '@electric-sql', 'pglite', 'package.json'), 'utf8')).version;
    console.log(`  @electric-sql/pglite ${version}, data dir ${dataDir}`);
    if (postgresDataset && settings.pgliteSeed === 'copy') {
      // The bulk-import figure, from a sample: all of it one transaction at a time takes PGlite ~10 minutes.
      const sampleDir = await tempDir('pglite-rate');
      const sample = await seedStore({
        dataDir: sampleDir,
        databaseUrl: undefined,
        adminToken: token,
        patients: Math.min(settings.pgliteRatePatients, settings.patients),
        observationsPerPatient: settings.observationsPerPatient,
        concurrency: 1,
        onProgress: progress(`import rate sample on ${name}`),
      });
      await rm(sampleDir, { recursive: true, force: true });
      const rate = sample.resources / sample.seconds;
      const copied = await copyPostgresIntoPglite({ sourceUrl: postgresDataset.databaseUrl, dataDir, adminToken: token });
      ids = postgresDataset.patientIds;
      seedLine =
        `import through Repository.create (one at a time, fresh data dir, ${int(sample.resources)} resources): ${int(rate)} resources/s ` +
        `→ ~${(resources / rate / 60).toFixed(1)} min for this dataset; ` +
        `the benchmark dataset is the PostgreSQL one (same ids and content), copied by SQL: ${int(copied.rows)} rows in ${copied.seconds.toFixed(1)} s, VACUUM ANALYZE ${copied.analyzeSeconds.toFixed(1)} s`;
    } else {
      const seeded = await seedStore({
        dataDir,
        databaseUrl: undefined,
        adminToken: token,
        patients: settings.patients,
        observationsPerPatient: settings.observationsPerPatient,
        concurrency: 1,
        onProgress: progress(`seeding ${name}`),
      });
      ids = seeded.patientIds;
      seedLine =
        `seeded ${int(seeded.resources)} resources in ${seeded.seconds.toFixed(1)} s = ${int(seeded.resources / seeded.seconds)} resources/s ` +
        `(Repository.create in process, one at a time; then VACUUM ANALYZE ${seeded.analyzeSeconds.toFixed(1)} s)`;
    }
  }
  console.log(`  ${seedLine}`);

  const profileDir = settings.cpuProfileDir ? path.join(settings.cpuProfileDir, kind) : undefined;
  if (profileDir) await mkdir(profileDir, { recursive: true });
  const serverOptions = { repoDir: REPO_DIR, dataDir, databaseUrl, adminToken: token, ...(settings.serverEntry ? { entry: settings.serverEntry } : {}) };
  const server = await startServer({ ...serverOptions, ...(profileDir ? { cpuProfileDir: profileDir } : {}) });
  let stopped = false;
  const stopServer = async () => {
    if (stopped) return;
    stopped = true;
    await server.stop();
  };
  cleanups.push(stopServer);
  console.log(`  server pid ${server.pid} at ${server.url}`);
  const measure = async (on: RunningServer, scenario: { label: string; nextPath: () => string }) => {
    if (settings.quietWaitSeconds > 0) {
      const busy = await waitForQuiet(QUIET_CORES, settings.quietWaitSeconds);
      if (busy !== undefined && busy >= QUIET_CORES) console.log(`  (the machine stayed busy: ${busy.toFixed(2)} cores in use by other work before "${scenario.label}")`);
    }
    const load = { url: on.url, token, connections: settings.connections, nextPath: scenario.nextPath, serverPid: on.pid, ...(kind === 'postgres' ? { database: BENCH_DATABASE } : {}) };
    if (settings.warmupSeconds > 0) await runLoad({ ...load, seconds: settings.warmupSeconds });
    const result = await runLoad({ ...load, seconds: settings.seconds });
    const died = on.exited();
    if (died) throw new Error(`during "${scenario.label}": ${died}`);
    console.log(`  ${scenario.label}: ${int(result.requestsPerSecond)} req/s, p50 ${ms(result.p50)} ms, p99 ${ms(result.p99)} ms${hadErrors(result) ? ' ⚠ errors' : ''}${isDisturbed(result) ? ' ⚠ disturbed' : ''}`);
    return result;
  };

  try {
    const smokeFailures = await smokeChecks(server, token, ids);
    for (const failure of smokeFailures) console.log(`  ✗ smoke check: ${failure}`);

    const random = (await build()).prng(7);
    const anyPatient = () => ids[Math.floor(random() * ids.length)]!;
    const scenarios: { key: string; label: string; targets: Targets; nextPath: () => string }[] = [
      // The floor: TLS, HTTP and Fastify with no authentication, database or audit.
      { key: 'healthz', label: 'GET /healthz (floor)', targets: {}, nextPath: () => '/healthz' },
      { key: 'read', label: 'read Patient by id', targets: READ_TARGETS, nextPath: () => `/fhir/R4/Patient/${anyPatient()}` },
      {
        key: 'name',
        label: 'Patient?name=<prefix>',
        targets: NAME_SEARCH_TARGETS,
        nextPath: () => `/fhir/R4/Patient?name=${encodeURIComponent(NAME_PREFIXES[Math.floor(random() * NAME_PREFIXES.length)]!)}`,
      },
      { key: 'obs', label: 'Observation?patient=<id>', targets: {}, nextPath: () => `/fhir/R4/Observation?patient=${anyPatient()}` },
    ];

    const outcomes: ScenarioOutcome[] = [];
    for (const scenario of scenarios.filter((s) => settings.scenarios.includes(s.key))) {
      const result = await measure(server, scenario);
      outcomes.push({ key: scenario.key, label: scenario.label, targets: scenario.targets, result });
    }
    await stopServer();
    if (settings.scenarios.includes('audit')) {
      outcomes.push(...(await auditPair(serverOptions, measure, () => `/fhir/R4/Patient/${anyPatient()}`, (variant, problem) => smokeFailures.push(`${variant}: ${problem}`))));
    }
    return { kind, seedLine, outcomes, smokeFailures };
  } finally {
    await stopServer();
    if (profileDir) console.log(`  CPU profile of the server written to ${profileDir}`);
  }
}

/**
 * What the audit trail costs: reads by id on the same store, by the real server and by one whose
 * AuditLog is a no-op (bench/audit-off-server.ts), and by one that commits each entry before
 * answering, each a fresh process with the same warm-up, in alternating order (off, on, before
 * answer, then the reverse…) so a drift of the machine's load weighs on all.
 * The machine is shared: each side keeps its best round (other work only ever slows a round).
 */
async function auditPair(
  options: Parameters<typeof startServer>[0],
  measure: (server: RunningServer, scenario: { label: string; nextPath: () => string }) => Promise<LoadResult>,
  nextPath: () => string,
  onSmokeFailure: (variant: string, problem: string) => void,
): Promise<ScenarioOutcome[]> {
  // `audit on` is a node as it ships (TELESALUD_AUDIT_COMMIT=behind); `before-answer` shows what waiting for each commit costs.
  const variants: Record<'read-audit-off' | 'read-audit-on' | 'read-audit-before-answer', { label: string; targets: Targets; entry: string | undefined; env?: Record<string, string> }> = {
    'read-audit-off': { label: 'read Patient by id, audit off', targets: {}, entry: AUDIT_OFF_ENTRY },
    'read-audit-on': { label: 'read Patient by id, audit on', targets: AUDIT_TARGETS, entry: options.entry },
    'read-audit-before-answer': { label: 'read Patient by id, audit committed before answer', targets: {}, entry: options.entry, env: { TELESALUD_AUDIT_COMMIT: 'before-answer' } },
  };
  const best = new Map<keyof typeof variants, LoadResult>();
  const rounds: string[] = [];
  for (let round = 0; round < settings.auditRounds; round++) {
    const order = (round % 2 === 0 ? ['read-audit-off', 'read-audit-on', 'read-audit-before-answer'] : ['read-audit-before-answer', 'read-audit-on', 'read-audit-off']) as (keyof typeof variants)[];
    const figures: Partial<Record<keyof typeof variants, number>> = {};
    for (const key of order) {
      const variant = variants[key];
      const server = await startServer({ ...options, ...(variant.entry ? { entry: variant.entry } : {}), ...(variant.env ? { env: variant.env } : {}) });
      cleanups.push(() => server.stop());
      try {
        // A fast wrong answer is no result: the variant must serve the record.
        const probe = nextPath();
        const res = await get(server.url, probe, { ca: server.ca, token: options.adminToken });
        if (res.status !== 200 || (JSON.parse(res.body) as { resourceType?: string }).resourceType !== 'Patient') onSmokeFailure(variant.label, `GET ${probe} answered ${res.status}`);
        const result = await measure(server, { label: `${variant.label} (round ${round + 1})`, nextPath });
        figures[key] = result.requestsPerSecond;
        const kept = best.get(key);
        if (!kept || result.requestsPerSecond > kept.requestsPerSecond) best.set(key, result);
      } finally {
        await server.stop();
      }
    }
    rounds.push(
      `${int(figures['read-audit-on']!)} / ${int(figures['read-audit-off']!)} = ${ratio(figures['read-audit-on']! / figures['read-audit-off']!)} ` +
        `(before answer: ${ratio(figures['read-audit-before-answer']! / figures['read-audit-off']!)})`,
    );
  }
  console.log(`  audit on / off, req/s by round: ${rounds.join('; ')}`);
  return (Object.keys(variants) as (keyof typeof variants)[]).map((key) => ({ key, label: variants[key].label, targets: variants[key].targets, result: best.get(key)! }));
}

/** A few answers checked for content before the load: a fast wrong answer is no result. */
async function smokeChecks(server: RunningServer, token: string, ids: string[]): Promise<string[]> {
  const failures: string[] = [];
  const fetchJson = async (p: string) => {
    const res = await get(server.url, p, { ca: server.ca, token });
    if (res.status !== 200) throw new Error(`GET ${p} answered ${res.status}: ${res.body.slice(0, 200)}`);
    return JSON.parse(res.body) as any;
  };
  const check = async (what: string, fn: () => Promise<string | undefined>) => {
    try {
      const problem = await fn();
      if (problem) failures.push(`${what}: ${problem}`);
    } catch (err) {
      failures.push(`${what}: ${(err as Error).message}`);
    }
  };
  const id = ids[Math.floor(ids.length / 2)]!;
  await check('read', async () => {
    const patient = await fetchJson(`/fhir/R4/Patient/${id}`);
    return patient.id === id && patient.resourceType === 'Patient' ? undefined : 'wrong resource';
  });
  const matches: string[] = [];
  await check('name search', async () => {
    const empty: string[] = [];
    for (const prefix of NAME_PREFIXES) {
      const bundle = await fetchJson(`/fhir/R4/Patient?name=${encodeURIComponent(prefix)}&_summary=count`);
      matches.push(`${prefix} ${int(bundle.total)}`);
      if (!(bundle.total > 0)) empty.push(prefix);
    }
    // Every prefix finds someone in a dataset of realistic size; a tiny one may miss a few.
    const tooFew = ids.length >= 1000 ? empty.length > 0 : empty.length === NAME_PREFIXES.length;
    return tooFew ? `no match for ${empty.join(', ')}` : undefined;
  });
  console.log(`  name prefixes (matching patients): ${matches.join(', ')}`);
  await check('observation search', async () => {
    const bundle = await fetchJson(`/fhir/R4/Observation?patient=${id}`);
    const expected = Math.min(settings.observationsPerPatient, 20);
    const entries = (bundle.entry ?? []) as { resource: { subject?: { reference?: string } } }[];
    if (entries.length !== expected) return `${entries.length} observations, expected ${expected}`;
    return entries.every((e) => e.resource.subject?.reference === `Patient/${id}`) ? undefined : 'an observation of another patient';
  });
  return failures;
}

// ---- main ----

function machineLine(): string {
  const cpus = os.cpus();
  return `machine: ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; node ${process.version}`;
}

async function main(): Promise<number> {
  const started = performance.now();
  console.log(`telesalud benchmark: ${settings.sections.join(', ')}`);
  console.log(machineLine());
  console.log(hostSpeedLine('at the start'));
  console.log(
    `dataset: ${int(settings.patients)} patients × ${settings.observationsPerPatient} observations; load: ${settings.connections} keep-alive HTTPS connections (closed loop), ` +
      `${settings.seconds} s per scenario after ${settings.warmupSeconds} s warm-up; load generator, server and database share this machine`,
  );

  await build();
  await removeAbandonedTempDirs();
  const stale = sourceNewerThanBuild();
  if (stale) console.log(`⚠ ${stale} changed after the last build: this run measures dist/ as built (run \`npm run build\` to measure the current source)`);

  const reports: StoreReport[] = [];
  const failures: string[] = [];
  let dataset: Dataset | undefined;
  try {
    for (const kind of settings.sections.includes('fhir') ? settings.stores : []) {
      console.log(`\n${STORE_NAMES[kind]}`);
      try {
        reports.push(await benchStore(kind, dataset, (seeded) => (dataset = seeded)));
      } catch (err) {
        failures.push(`${STORE_NAMES[kind]}: ${(err as Error).message}`);
        console.log(`  ✗ could not run: ${(err as Error).message}`);
      }
    }
  } finally {
    await cleanUp();
  }

  const cores = os.cpus().length;
  console.log('\n══ results ══');
  console.log(machineLine());
  for (const report of reports) {
    console.log(`\n${STORE_NAMES[report.kind]}: ${report.seedLine}`);
    console.log(scenarioTable(report.outcomes, cores));
    console.log('  targets:');
    for (const line of targetLines(report.outcomes)) console.log(line);
    if (report.smokeFailures.length) console.log(`  ⚠ smoke checks failed: ${report.smokeFailures.join('; ')}`);
    console.log(`  → ${targetsMet(report.outcomes) && report.smokeFailures.length === 0 ? 'all targets met' : 'targets NOT all met'}`);
  }

  const pgReport = reports.find((r) => r.kind === 'postgres');
  const liteReport = reports.find((r) => r.kind === 'pglite');
  if (pgReport && liteReport) {
    console.log('\nPostgreSQL / PGlite');
    const rows = pgReport.outcomes.flatMap((o) => {
      const l = liteReport.outcomes.find((x) => x.key === o.key)?.result;
      const p = o.result;
      if (!l) return [];
      return [[o.label, int(p.requestsPerSecond), int(l.requestsPerSecond), ratio(p.requestsPerSecond / l.requestsPerSecond), ms(p.p99), ms(l.p99), ratio(p.p99 / l.p99)]];
    });
    console.log(table(['scenario', 'req/s PG', 'req/s PGlite', 'PG/PGlite', 'p99 PG ms', 'p99 PGlite ms', 'PG/PGlite'], rows, [false, true, true, true, true, true, true]));
  }

  const disturbed = reports.flatMap((r) => r.outcomes.filter((o) => isDisturbed(o.result)).map((o) => `${STORE_NAMES[r.kind]} ${o.label}`));
  if (disturbed.length) {
    console.log(`\n⚠ other work on this machine took CPU during: ${disturbed.join('; ')}. Those figures understate what telesalud does on a quiet machine; rerun when it is quiet before quoting them.`);
  }
  const flagged = reports.some((r) => r.smokeFailures.length > 0 || r.outcomes.some((o) => hadErrors(o.result)));
  if (flagged) console.log('\n⚠ THIS RUN HAD ERRORS (non-2xx answers, connection errors or failed smoke checks): its figures are not valid.');
  for (const name of settings.sections.filter((x) => x !== 'fhir')) {
    const section = FURTHER_SECTIONS[name]!;
    try {
      await section.run();
    } catch (err) {
      failures.push(`${section.title}: ${(err as Error).message}`);
    }
  }
  for (const failure of failures) console.log(`\n✗ ${failure}`);
  console.log(hostSpeedLine('at the end'));
  console.log(`\nbench took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (err) => {
    console.error(`bench: ${(err as Error).stack ?? err}`);
    await cleanUp();
    process.exitCode = 1;
  },
);
