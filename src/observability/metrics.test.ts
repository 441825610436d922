import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount } from '../auth/accounts/account-service.js';
import { currentTotpCode } from '../auth/mfa/totp.js';
import { SESSION_COOKIE } from '../auth/sessions/session-store.js';
import { Repository } from '../records/repository.js';
import { create, patient } from '../test-support/fixtures.js';
import { HEALTH_DATA_MARKERS } from '../test-support/health-data-markers.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import { startThrowawayRedis, type ThrowawayRedis } from '../cluster/throwaway-redis.js';

const PASSWORD = 'nubes-altas-sobre-el-puerto-de-Vigo-7';

describe('GET /metrics', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startTestNode('pglite');
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('counts requests by route pattern and status, times them, and reports consultations and readiness', async () => {
    const p = await create(node, patient('Métrica', ['Sin', 'Nombre']));
    await node.request({ method: 'GET', url: `/fhir/R4/Patient/${p.id}` });
    await node.request({ method: 'GET', url: '/fhir/R4/Patient?name=M%C3%A9trica' });
    const res = await node.request({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = res.body;
    expect(text).toMatch(/telesalud_http_requests_total\{method="GET",route="\/fhir\/R4\/:type\/:id",status="200"\} 1/);
    expect(text).toMatch(/telesalud_http_request_duration_seconds_count\{method="GET",route="\/fhir\/R4\/:type"\} 1/);
    expect(text).toMatch(/telesalud_ready 1/);
    expect(text).toMatch(/telesalud_consult_rooms 0/);
    expect(text).toMatch(/telesalud_process_resident_memory_bytes \d+/);
    expect(text).toMatch(/telesalud_sessions_active 0/);
    expect(text).toMatch(/telesalud_accounts_locked 0/);
    // Route patterns only: no id, no query, no name.
    expect(text).not.toContain(p.id);
    for (const marker of [...HEALTH_DATA_MARKERS, 'Métrica', 'M%C3%A9trica']) expect(text).not.toContain(marker);
  });

  it('exports every metric the shipped alert rules and Grafana dashboard use', async () => {
    const deploy = path.resolve(import.meta.dirname, '../../deploy');
    const files = [path.join(deploy, 'prometheus/telesalud-alerts.yml'), ...(await readdir(path.join(deploy, 'grafana'))).filter((f) => f.endsWith('.json')).map((f) => path.join(deploy, 'grafana', f))];
    const used = new Set<string>();
    for (const file of files) for (const m of (await readFile(file, 'utf8')).matchAll(/\btelesalud_[a-z0-9_]+/g)) used.add(m[0].replace(/_(bucket|count|sum)$/, ''));
    const text = (await node.request({ method: 'GET', url: '/metrics' })).body;
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    // `telesalud audit verify --prometheus-file` writes these for the node exporter's textfile collector.
    for (const name of ['telesalud_audit_chain_ok', 'telesalud_audit_chain_verified_timestamp_seconds']) exported.add(name);
    // Exported only where they mean something, and checked there: the pool on PostgreSQL (below), OCSP with a CA-issued certificate (src/server/ocsp-stapling.test.ts).
    for (const name of ['telesalud_db_pool_connections', 'telesalud_db_pool_waiting', 'telesalud_db_pool_max', 'telesalud_ocsp_stapling', 'telesalud_ocsp_fetches_total']) exported.add(name);
    expect(used.size).toBeGreaterThan(15);
    expect([...used].filter((name) => !exported.has(name))).toEqual([]);
  });

  it('is for administrators only', async () => {
    expect((await node.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const clinician = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'metricas@clinica.example.org', role: 'clinician', name: 'Ana Métricas', password: PASSWORD });
    const signIn = await node.app.inject({ method: 'POST', url: '/api/auth/sign-in', payload: { email: clinician.email, password: PASSWORD, code: currentTotpCode(clinician.totpSecret!) } });
    const cookie = signIn.cookies.find((c) => c.name === SESSION_COOKIE)!.value;
    expect((await node.app.inject({ method: 'GET', url: '/metrics', cookies: { [SESSION_COOKIE]: cookie } })).statusCode).toBe(403);
    await node.app.inject({ method: 'POST', url: '/api/auth/sign-in', payload: { email: clinician.email, password: 'not-the-password-at-all' } });
    await node.ctx.audit.drain();
    const text = (await node.request({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(/telesalud_sessions_active 1/);
    expect(text).toMatch(/telesalud_sign_in_failures_last_hour 1/);
  });
});

/** The value of one sample line, or undefined when the metric is absent. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/** Polls /metrics until `ready` holds (state changes such as a Redis reconnect take a moment). */
async function metricsWhen(node: TestNode, ready: (text: string) => boolean): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = (await node.request({ method: 'GET', url: '/metrics' })).body;
    if (ready(text) || Date.now() > deadline) return text;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('GET /metrics: audit write latency, database pool, Redis (pglite, single node)', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startTestNode('pglite');
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('times audit writes by path, and reports a single node without a pool or Redis', async () => {
    const before = await metricsWhen(node, () => true);
    const reads = sample(before, 'telesalud_audit_write_duration_seconds_count{path="group-commit"}') ?? 0;
    const p = await create(node, patient('Latencia', ['Ana']));
    await node.request({ method: 'GET', url: `/fhir/R4/Patient/${p.id}` });
    await node.request({ method: 'GET', url: `/fhir/R4/Patient/${p.id}` });
    const text = await metricsWhen(node, () => true);
    // Two audited reads more (the scrapes themselves are not audited reads of health data).
    expect(sample(text, 'telesalud_audit_write_duration_seconds_count{path="group-commit"}')).toBeGreaterThanOrEqual(reads + 2);
    expect(sample(text, 'telesalud_audit_write_duration_seconds_count{path="in-transaction"}')).toBeGreaterThanOrEqual(1); // the create
    expect(sample(text, 'telesalud_audit_write_duration_seconds_sum{path="group-commit"}')).toBeGreaterThan(0);
    expect(text).toMatch(/telesalud_audit_write_duration_seconds_bucket\{le="\+Inf",path="group-commit"\} \d+/);
    expect(sample(text, 'telesalud_audit_write_failures_total{path="group-commit"}')).toBe(0);
    expect(sample(text, 'telesalud_redis_configured')).toBe(0);
    expect(sample(text, 'telesalud_redis_up')).toBe(0);
    expect(text).not.toMatch(/^telesalud_db_pool_connections\{/m);
    expect(sample(text, 'telesalud_db_pool_waiting')).toBeUndefined();
  });

  it('counts a failed audit write (the access it guarded was refused)', async () => {
    const failuresBefore = sample(await metricsWhen(node, () => true), 'telesalud_audit_write_failures_total{path="group-commit"}') ?? 0;
    // An entry the database refuses (actor is NOT NULL): the write fails, and is counted.
    await expect(node.ctx.audit.record({ actor: null as unknown as string, action: 'read', outcome: 'success' })).rejects.toThrow();
    const text = await metricsWhen(node, (t) => (sample(t, 'telesalud_audit_write_failures_total{path="group-commit"}') ?? 0) > failuresBefore);
    expect(sample(text, 'telesalud_audit_write_failures_total{path="group-commit"}')).toBe(failuresBefore + 1);
  });
});

describe.runIf(STORE_KINDS.includes('postgres'))('GET /metrics: database pool and Redis state (postgres, farm)', () => {
  let node: TestNode;
  let redis: ThrowawayRedis;
  beforeAll(async () => {
    redis = await startThrowawayRedis();
    await redis.start();
    node = await startTestNode('postgres', { TELESALUD_REDIS_URL: redis.url, TELESALUD_DB_POOL_SIZE: '7' });
  });
  afterAll(async () => {
    await node?.stop();
    await redis?.stop();
  });

  it('reports the pool (in use, idle, waiting, max) and Redis up, then down since when it went, then up again', async () => {
    let text = await metricsWhen(node, (t) => sample(t, 'telesalud_redis_up') === 1);
    expect(sample(text, 'telesalud_db_pool_max')).toBe(7);
    expect(sample(text, 'telesalud_db_pool_connections{state="in_use"}')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'telesalud_db_pool_connections{state="idle"}')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'telesalud_db_pool_waiting')).toBe(0);
    expect(sample(text, 'telesalud_redis_configured')).toBe(1);
    expect(sample(text, 'telesalud_redis_up')).toBe(1);

    // Saturate the pool: 7 connections held, more queries queue for one. Once the pool is there, one scrape reads it.
    const held = Array.from({ length: 10 }, () => node.ctx.store.db.selectNoFrom((eb) => eb.fn<number>('pg_sleep', [eb.val(3)]).as('slept')).execute());
    const deadline = Date.now() + 30_000;
    for (let p = node.ctx.store.poolStats!(); !(p.total === 7 && p.idle === 0 && p.waiting > 0) && Date.now() < deadline; p = node.ctx.store.poolStats!()) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    text = (await node.request({ method: 'GET', url: '/metrics' })).body;
    expect(sample(text, 'telesalud_db_pool_connections{state="in_use"}')).toBe(7);
    expect(sample(text, 'telesalud_db_pool_connections{state="idle"}')).toBe(0);
    expect(sample(text, 'telesalud_db_pool_waiting')).toBeGreaterThanOrEqual(3);
    await Promise.all(held);

    const wentDown = Math.floor(Date.now() / 1000);
    await redis.stop();
    text = await metricsWhen(node, (t) => sample(t, 'telesalud_redis_up') === 0);
    expect(sample(text, 'telesalud_redis_up')).toBe(0);
    expect(sample(text, 'telesalud_redis_state_since_timestamp_seconds')).toBeGreaterThanOrEqual(wentDown - 1);
    await redis.start();
    text = await metricsWhen(node, (t) => sample(t, 'telesalud_redis_up') === 1);
    expect(sample(text, 'telesalud_redis_up')).toBe(1);
  });
});
