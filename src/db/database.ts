import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Kysely, PostgresDialect, sql, type CompiledQuery, type Transaction, type TransactionBuilder } from 'kysely';
import pg from 'pg';
import type { Config } from '../config/config.js';
import type { Database } from './schema.js';

/**
 * The one typed query layer: Kysely over either a real PostgreSQL (farm mode, tests, bench)
 * or PGlite in the data dir (the embedded default). Both speak the same SQL.
 */
export interface Store {
  db: Kysely<Database>;
  kind: 'postgres' | 'pglite';
  close(): Promise<void>;
  /** PostgreSQL only: the connection pool right now, for /metrics (PGlite has one connection and no pool). */
  poolStats?(): { total: number; idle: number; waiting: number; max: number };
}

// int8 (counts) as JS numbers: our counts stay far below 2^53.
pg.types.setTypeParser(20, (value) => Number(value));

export async function openStore(config: Pick<Config, 'databaseUrl' | 'dataDir' | 'databasePoolSize'>): Promise<Store> {
  if (config.databaseUrl) return openPostgres(config.databaseUrl, config.databasePoolSize);
  return openPglite(path.join(config.dataDir, 'pg'));
}

/**
 * Pool limits: TELESALUD_DB_POOL_SIZE connections per node (default 10; nodes × pool must stay
 * under the server's max_connections, 100 by default, with room for admin and replication).
 * Connections are recycled after a while, so after a failover (Patroni, a managed service's
 * DNS switch) every connection soon reaches the new primary; a query on a dead connection
 * fails that request only.
 */
export function openPostgres(url: string, poolSize = 10): Store {
  const pool = new pg.Pool({
    Client: PreparingClient,
    connectionString: url,
    max: poolSize,
    idleTimeoutMillis: 30_000,
    maxLifetimeSeconds: 600,
    // A runaway query must not hold a connection forever.
    statement_timeout: 30_000,
    idle_in_transaction_session_timeout: 60_000,
    connectionTimeoutMillis: 10_000,
    application_name: 'telesalud',
  });
  // A dropped server connection (restart, failover) must fail the requests using it, never crash
  // the node: idle clients report through the pool, checked-out ones through their own 'error'.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  const db = retryingTransactions(new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }));
  return { db, kind: 'postgres', close: () => db.destroy(), poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max: poolSize }) };
}

/**
 * A statement whose text starts with this comment is prepared once per connection and then only
 * bound and executed: PostgreSQL skips parsing and planning it again (measured on the audit
 * append: 180 → 105 µs of backend CPU per call). For the hottest statements only, whose text
 * is fixed and whose plan does not depend much on the values (a primary-key lookup, a function
 * call, a string search's page, whose prefix is an index range): a prepared statement may get a
 * generic plan, which would be wrong for, say, a LIKE prefix (its index bounds come from the
 * value) or a literal array the planner should see. PGlite runs such a statement as any other.
 * (A PgBouncer in front of PostgreSQL must pool by session, or be 1.21+ with max_prepared_statements set.)
 */
export const PREPARED = '/* prepared */ ';

/** A compiled query marked PREPARED: for query shapes whose plan holds for any value of their parameters. */
export function prepared<R>(query: CompiledQuery<R>): CompiledQuery<R> {
  return { ...query, sql: `${PREPARED}${query.sql}` };
}

/**
 * Distinct statement texts prepared, at most: each is a prepared statement on every pooled
 * connection, so shapes built from a request's filters must not grow without bound. Past it, a
 * new text runs unprepared (parsed and planned each time, as any other).
 */
const MAX_PREPARED_TEXTS = 200;

const preparedNames = new Map<string, string>();
function preparedName(text: string): string | undefined {
  let name = preparedNames.get(text);
  if (!name) {
    if (preparedNames.size >= MAX_PREPARED_TEXTS) return undefined;
    name = `telesalud_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    preparedNames.set(text, name);
  }
  return name;
}

/** pg's client, naming PREPARED statements (pg then parses each once per connection and reuses it). */
class PreparingClient extends pg.Client {}
const plainQuery = pg.Client.prototype.query as (...args: unknown[]) => unknown;
(PreparingClient.prototype as unknown as { query: (...args: unknown[]) => unknown }).query = function (this: pg.Client, ...args: unknown[]) {
  const [text, values] = args;
  const name = typeof text === 'string' && text.startsWith(PREPARED) && args.length <= 2 && (values === undefined || Array.isArray(values)) ? preparedName(text) : undefined;
  if (name) return plainQuery.call(this, { name, text, values });
  return plainQuery.apply(this, args);
};

/** PostgreSQL aborted the transaction to let another through: running it again is the documented answer. */
const RETRYABLE = new Set(['40001', '40P01']); // serialization_failure, deadlock_detected
export const TRANSACTION_ATTEMPTS = 4;

export function isRetryableTransactionError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && RETRYABLE.has((err as { code?: unknown }).code as string);
}

/**
 * Every `db.transaction().execute(work)` of this store runs `work` again (up to
 * TRANSACTION_ATTEMPTS times, after a short random pause) when PostgreSQL aborts it with a
 * serialization failure or a deadlock: two nodes writing the same rows (a slot booked twice,
 * the audit chain's head) no longer fail a request for it. Work inside a transaction touches
 * only the database (the audit entry of a write is recorded after commit), so a rerun is safe.
 */
export function retryingTransactions<DB>(db: Kysely<DB>): Kysely<DB> {
  const begin = db.transaction.bind(db);
  const wrap = (builder: TransactionBuilder<DB>): TransactionBuilder<DB> =>
    new Proxy(builder, {
      get(target, property, receiver) {
        if (property === 'setIsolationLevel' || property === 'setAccessMode') return (value: never) => wrap(target[property](value));
        if (property === 'execute') return <T>(work: (tx: Transaction<DB>) => Promise<T>) => withRetry(() => target.execute(work));
        return Reflect.get(target, property, receiver);
      },
    });
  db.transaction = () => wrap(begin());
  return db;
}

async function withRetry<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (attempt >= TRANSACTION_ATTEMPTS || !isRetryableTransactionError(err)) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
    }
  }
}

export async function openPglite(dir: string): Promise<Store> {
  await mkdir(dir, { recursive: true });
  // Loaded lazily: farm nodes never need the WASM build.
  const [{ PGlite }, { btree_gist }, { PGliteDialect }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('@electric-sql/pglite/contrib/btree_gist'),
    import('kysely-pglite-dialect'),
  ]);
  const client = await PGlite.create(dir, { extensions: { btree_gist } });
  const db = new Kysely<Database>({ dialect: new PGliteDialect(client) });
  return { db, kind: 'pglite', close: () => db.destroy() };
}

export async function ping(db: Kysely<Database>): Promise<void> {
  await sql`select 1`.execute(db);
}
