import { sql } from 'kysely';
import { build } from './build.js';
import { syntheticObservation } from './synthetic-observations.js';

export interface SeedOptions {
  dataDir: string;
  /** Real PostgreSQL; undefined seeds the PGlite data dir. */
  databaseUrl: string | undefined;
  adminToken: string;
  patients: number;
  observationsPerPatient: number;
  /** Patients written at once (each with its observations, one after the other). */
  concurrency: number;
  onProgress?: (done: number, total: number, elapsedSeconds: number) => void;
}

export interface SeedResult {
  patientIds: string[];
  resources: number;
  /** Writing the resources through Repository.create. */
  seconds: number;
  /** VACUUM ANALYZE afterwards, so the planner knows the tables and indexes are settled. */
  analyzeSeconds: number;
}

const SEED = 20_240_601;
/** Observation times count back from here: the same dataset whenever it is made. */
const startedAt = Date.parse('2026-01-01T00:00:00Z');

/**
 * Fills a store through the same path as the FHIR API's create, minus HTTP: Repository.create
 * validates each resource, writes it with its history row, search strings and audit event in
 * one transaction. The node is stopped afterwards so a server process can open the same store.
 */
export async function seedStore(options: SeedOptions): Promise<SeedResult> {
  const { loadConfig, startNode, createLogger, Repository, prng, pick, syntheticPatient } = await build();
  const config = loadConfig({
    TELESALUD_DATA_DIR: options.dataDir,
    TELESALUD_ADMIN_TOKEN: options.adminToken,
    TELESALUD_LOG_LEVEL: 'warn',
    TELESALUD_DB_POOL_SIZE: String(Math.max(1, options.concurrency)),
    ...(options.databaseUrl ? { TELESALUD_DATABASE_URL: options.databaseUrl } : {}),
  });
  const ctx = await startNode(config, createLogger('error'));
  try {
    const repo = new Repository(ctx.store.db, ctx.audit, { ref: 'system:bench', scope: { kind: 'full' } }, { requestId: 'bench-seed', source: 'bench' });
    const total = options.patients * (1 + options.observationsPerPatient);
    const patientIds: string[] = new Array(options.patients);
    let next = 0;
    let done = 0;
    const started = performance.now();
    let lastReport = started;

    const worker = async () => {
      for (let index = next++; index < options.patients; index = next++) {
        // One generator per patient: the dataset is the same whatever the concurrency.
        const random = prng(SEED + index);
        const patient = await repo.create(syntheticPatient(index, random));
        patientIds[index] = patient.id;
        done++;
        for (let n = 0; n < options.observationsPerPatient; n++) {
          await repo.create(syntheticObservation(patient.id, n, random, pick, startedAt));
          done++;
        }
        const now = performance.now();
        if (options.onProgress && now - lastReport > 2000) {
          lastReport = now;
          options.onProgress(done, total, (now - started) / 1000);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));
    const seconds = (performance.now() - started) / 1000;
    options.onProgress?.(done, total, seconds);

    const analyzeStarted = performance.now();
    // Vacuum too: it flushes the GIN pending lists the inserts left, as autovacuum would in production.
    await sql`vacuum analyze`.execute(ctx.store.db);
    const analyzeSeconds = (performance.now() - analyzeStarted) / 1000;
    return { patientIds, resources: done, seconds, analyzeSeconds };
  } finally {
    await ctx.stop();
  }
}
