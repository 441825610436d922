import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres, PREPARED, TRANSACTION_ATTEMPTS, type Store } from './database.js';

const base = process.env.TELESALUD_TEST_DATABASE_URL;

describe.skipIf(!base)('PostgreSQL store', () => {
  let store: Store;
  const table = `deadlock_${randomBytes(4).toString('hex')}`;
  beforeAll(async () => {
    store = openPostgres(base!, 4);
    await sql`create table ${sql.table(table)} (id int primary key, n int not null)`.execute(store.db);
    await sql`insert into ${sql.table(table)} values (1, 0), (2, 0)`.execute(store.db);
  });
  afterAll(async () => {
    await sql`drop table if exists ${sql.table(table)}`.execute(store.db);
    await store.close();
  });

  it('runs a transaction again when PostgreSQL picks it as a deadlock victim, so both writers succeed', async () => {
    let attempts = 0;
    let arrived = 0;
    let release!: () => void;
    const bothHoldOneRow = new Promise<void>((r) => (release = r));
    // Two transactions lock the two rows in opposite order: a deadlock on the first attempt.
    const writer = (first: number, second: number) =>
      store.db.transaction().execute(async (tx) => {
        attempts++;
        await sql`update ${sql.table(table)} set n = n + 1 where id = ${first}`.execute(tx);
        if (++arrived === 2) release();
        await bothHoldOneRow;
        await sql`update ${sql.table(table)} set n = n + 1 where id = ${second}`.execute(tx);
      });
    await Promise.all([writer(1, 2), writer(2, 1)]);
    expect(attempts).toBe(3);
    const rows = await sql<{ id: number; n: number }>`select id, n from ${sql.table(table)} order by id`.execute(store.db);
    // Each writer's effect counted once: the aborted attempt left nothing behind.
    expect(rows.rows).toEqual([
      { id: 1, n: 2 },
      { id: 2, n: 2 },
    ]);
  });

  it('gives up after a bounded number of attempts and never retries other errors', async () => {
    let attempts = 0;
    const failing = store.db.transaction().execute(async () => {
      attempts++;
      throw Object.assign(new Error('could not serialize access'), { code: '40001' });
    });
    await expect(failing).rejects.toThrow(/serialize/);
    expect(attempts).toBe(TRANSACTION_ATTEMPTS);
    attempts = 0;
    await expect(
      store.db.transaction().execute(async (tx) => {
        attempts++;
        await sql`insert into ${sql.table(table)} values (1, 0)`.execute(tx);
      }),
    ).rejects.toThrow(/duplicate key/);
    expect(attempts).toBe(1);
  });

  it('prepares a statement marked PREPARED once per connection and answers each call with its own values; others stay unnamed', async () => {
    const seen = await store.db.connection().execute(async (conn) => {
      const answers: number[] = [];
      for (const id of [1, 2, 1]) answers.push((await sql<{ id: number }>`${sql.raw(PREPARED)}select id from ${sql.table(table)} where id = ${id}`.execute(conn)).rows[0]!.id);
      await sql`select id from ${sql.table(table)} where id = ${2}`.execute(conn);
      const prepared = await sql<{ statement: string }>`select statement from pg_prepared_statements where statement like ${`%from "${table}"%`}`.execute(conn);
      return { answers, statements: prepared.rows.map((r) => r.statement) };
    });
    expect(seen.answers).toEqual([1, 2, 1]);
    // One prepared statement for the marked text, however often it ran; the unmarked one is not kept.
    expect(seen.statements).toEqual([`${PREPARED}select id from "${table}" where id = $1`]);
  });
});
