/**
 * `npx tsx bench/clinician-search.ts`: what a clinician's search costs on PostgreSQL, with the
 * care relationships worked out inside each query (the condition used within write transactions)
 * and with the clinician's patients resolved once per request and passed as a literal array (what
 * reads use). Both variants run in the same process, interleaved, on the same data, so a busy
 * machine disturbs them alike. Prints the median EXPLAIN ANALYZE execution time of each query and
 * the plan's top node.
 *
 * Data, written by SQL (no validation, no audit: this measures the query plans only):
 * CLIN_PATIENTS patients (10,000) with CLIN_OBS_PER_PATIENT observations each (10), spread over
 * two years; CLIN_PRACTITIONERS practitioners (50) with one appointment per patient in their care;
 * the measured clinician is in care of CLIN_IN_CARE patients (200).
 * Knobs: CLIN_LAYOUT (spread | clustered, see below), CLIN_RUNS (15), TELESALUD_BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/test).
 */
import { randomUUID } from 'node:crypto';
import { CompiledQuery, sql, type Expression, type Kysely, type SqlBool } from 'kysely';
import pg from 'pg';
import { patientsInReach, visibleRows } from '../src/auth/access/access-policy.js';
import type { Actor } from '../src/auth/actor.js';
import { openPostgres } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { resourceTypeDef } from '../src/records/resource-types.js';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const PATIENTS = env('CLIN_PATIENTS', 10_000);
const OBS_PER_PATIENT = env('CLIN_OBS_PER_PATIENT', 10);
const PRACTITIONERS = env('CLIN_PRACTITIONERS', 50);
const IN_CARE = env('CLIN_IN_CARE', 200);
const RUNS = env('CLIN_RUNS', 15);
const ADMIN_URL = process.env.TELESALUD_BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
const DATABASE = `telesalud_clinbench_${process.pid}`;
/** "spread" (default): a patient's observations arrive over two years, scattered through the table; "clustered": written together, as a bulk load (or bench/seed.ts) leaves them. */
const CLUSTERED = process.env.CLIN_LAYOUT === 'clustered';

function urlFor(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

async function seed(db: Kysely<any>, clinician: string): Promise<void> {
  const started = Date.now();
  // Patients 1..PATIENTS; practitioner k (0-based) cares for the patients p with p % PRACTITIONERS = k,
  // except the measured clinician, who cares for the first IN_CARE patients of residue 0.
  await sql`create temporary table pids as select n, gen_random_uuid() as id from generate_series(1, ${PATIENTS}::int) n`.execute(db);
  await sql`insert into patient (id, version_id, last_updated, content, compartments, sp_gender)
    select id, 1, now(), jsonb_build_object('resourceType', 'Patient', 'id', id), array['Patient/' || id], array['female'] from pids`.execute(db);
  await sql`insert into observation (id, version_id, last_updated, content, compartments, sp_patient, sp_subject, sp_code, sp_category, sp_status, sp_date)
    select gen_random_uuid(), 1, ts, jsonb_build_object('resourceType', 'Observation', 'status', 'final', 'subject', jsonb_build_object('reference', 'Patient/' || p.id), 'valueQuantity', jsonb_build_object('value', 60 + (i % 40))),
           array['Patient/' || p.id], array['Patient/' || p.id], array['Patient/' || p.id],
           array['8867-4', 'http://loinc.org|8867-4'], array['vital-signs'], array['final'], ts
    from pids p, generate_series(1, ${OBS_PER_PATIENT}::int) i,
         lateral (select case when ${CLUSTERED} then timestamptz '2024-01-01' + (p.n * ${OBS_PER_PATIENT}::int + i) * interval '1 second'
                              else timestamptz '2026-01-01' - ((p.n * 7919 + i * 104729) % (730 * 24 * 60)) * interval '1 minute' end as ts) t
    order by ${CLUSTERED ? sql`p.n, i` : sql`random()`}`.execute(db);
  const practitioners = Array.from({ length: PRACTITIONERS }, (_, k) => (k === 0 ? clinician : `Practitioner/${randomUUID()}`));
  await sql`insert into appointment (id, version_id, last_updated, content, compartments, sp_patient, sp_practitioner, sp_status, sp_date)
    select gen_random_uuid(), 1, now(), '{"resourceType":"Appointment"}'::jsonb, array['Patient/' || p.id], array['Patient/' || p.id],
           array[(${sql.val(practitioners)}::text[])[(p.n % ${PRACTITIONERS}::int) + 1]], array['booked'], now()
    from pids p
    where p.n % ${PRACTITIONERS}::int <> 0 or p.n <= ${IN_CARE * PRACTITIONERS}::int`.execute(db);
  await sql`vacuum analyze`.execute(db);
  console.log(`seeded ${PATIENTS} patients, ${PATIENTS * OBS_PER_PATIENT} observations, ${PRACTITIONERS} practitioners in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

interface Measured {
  ms: number[];
  planning: number[];
  plan: string;
  rows: number;
}

async function explain(db: Kysely<any>, compiled: { sql: string; parameters: readonly unknown[] }, into: Measured): Promise<void> {
  const result = await db.executeQuery<any>(CompiledQuery.raw(`explain (analyze, format json) ${compiled.sql}`, [...compiled.parameters]));
  const plan = result.rows[0]['QUERY PLAN'][0];
  into.ms.push(plan['Execution Time'] + plan['Planning Time']);
  into.planning.push(plan['Planning Time']);
  into.plan = describe(plan.Plan);
  into.rows = plan.Plan['Actual Rows'];
}

/** The plan's main path (init plans left out), e.g. "Limit > Sort > Bitmap Heap Scan > Bitmap Index Scan observation_compartments". */
function describe(node: any): string {
  const parts: string[] = [];
  for (let n = node; n; n = (n.Plans ?? []).find((c: any) => c['Parent Relationship'] !== 'InitPlan' && c['Parent Relationship'] !== 'SubPlan')) {
    parts.push(`${n['Node Type']}${n['Index Name'] ? ` ${n['Index Name']}` : ''}${n['Rows Removed by Filter'] ? ` (${n['Rows Removed by Filter']} rows filtered out)` : ''}`);
  }
  return parts.join(' > ');
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  await admin(`create database ${DATABASE}`);
  const store = openPostgres(urlFor(DATABASE), 2);
  const db = store.db as unknown as Kysely<any>;
  try {
    await migrateToLatest(db);
    const clinician = `Practitioner/${randomUUID()}`;
    await seed(db, clinician);
    const actor: Actor = { ref: clinician, scope: { kind: 'clinician', practitioner: clinician, breakGlass: [] } };
    const def = resourceTypeDef('Observation')!;

    const reachTimes: number[] = [];
    const queries = {
      'first page (21, newest first)': (vis: Expression<SqlBool>) =>
        db.selectFrom('observation').select(['id', 'compartments']).where((eb: any) => eb.and([eb('deleted', '=', false), vis])).orderBy(sql`"last_updated" desc nulls last`).orderBy('id').limit(21).compile(),
      'count (_summary=count)': (vis: Expression<SqlBool>) =>
        db.selectFrom('observation').select((eb: any) => eb.fn.countAll().as('n')).where((eb: any) => eb.and([eb('deleted', '=', false), vis])).compile(),
      'code=8867-4, first page': (vis: Expression<SqlBool>) =>
        db
          .selectFrom('observation')
          .select(['id', 'compartments'])
          .where((eb: any) => eb.and([eb('deleted', '=', false), vis, sql<SqlBool>`sp_code && ${sql.val(['8867-4'])}::text[]`]))
          .orderBy(sql`"last_updated" desc nulls last`)
          .orderBy('id')
          .limit(21)
          .compile(),
    };
    type Variant = 'in-query' | 'literal' | 'unrestricted';
    const results: Record<string, Record<Variant, Measured>> = {};
    const fresh = (): Measured => ({ ms: [], planning: [], plan: '', rows: 0 });
    for (const name of Object.keys(queries)) results[name] = { 'in-query': fresh(), literal: fresh(), unrestricted: fresh() };

    for (let run = 0; run < RUNS + 2; run++) {
      const t0 = performance.now();
      const reach = await patientsInReach(store.db, actor);
      if (run >= 2) reachTimes.push(performance.now() - t0);
      for (const [name, build] of Object.entries(queries)) {
        // Alternate which variant goes first, so neither always runs on a warmer cache.
        const order: Variant[] = run % 2 ? ['in-query', 'literal', 'unrestricted'] : ['literal', 'in-query', 'unrestricted'];
        for (const variant of order) {
          const vis = variant === 'unrestricted' ? sql<SqlBool>`true` : visibleRows(actor, def, variant === 'literal' ? reach : undefined)!;
          const measured: Measured = run >= 2 ? results[name]![variant] : fresh();
          await explain(db, build(vis), measured);
        }
      }
    }

    if (process.env.CLIN_SHOW_PLANS === '1') {
      const reach = await patientsInReach(store.db, actor);
      for (const [name, build] of Object.entries(queries)) {
        for (const variant of ['in-query', 'literal'] as const) {
          const compiled = build(visibleRows(actor, def, variant === 'literal' ? reach : undefined)!);
          const text = await db.executeQuery<any>(CompiledQuery.raw(`explain (analyze, buffers) ${compiled.sql}`, [...compiled.parameters]));
          console.log(`\n--- ${name}, ${variant}\n${text.rows.map((r: any) => r['QUERY PLAN']).join('\n')}`);
        }
      }
    }

    console.log(`\nclinician in care of ${IN_CARE} of ${PATIENTS} patients; ${RUNS} runs each, median of planning + execution (EXPLAIN ANALYZE)`);
    console.log(`resolving the clinician's patients (patientsInReach, wall time): ${median(reachTimes).toFixed(2)} ms`);
    for (const [name, byVariant] of Object.entries(results)) {
      const a = byVariant['in-query'];
      const b = byVariant.literal;
      console.log(`\n${name}`);
      console.log(`  care relationships in the query: ${median(a.ms).toFixed(2)} ms, of which planning ${median(a.planning).toFixed(2)} ms; ${a.rows} rows  (${a.plan})`);
      console.log(`  patients as a literal array:     ${median(b.ms).toFixed(2)} ms, of which planning ${median(b.planning).toFixed(2)} ms; ${b.rows} rows  (${b.plan})`);
      const u = byVariant.unrestricted;
      console.log(`  (unrestricted, for reference:    ${median(u.ms).toFixed(2)} ms; ${u.rows} rows  (${u.plan}))`);
      console.log(`  ratio ${(median(a.ms) / median(b.ms)).toFixed(1)}×`);
    }
  } finally {
    await store.close();
    await admin(`drop database if exists ${DATABASE} with (force)`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
