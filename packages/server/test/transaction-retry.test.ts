import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { OpenDatabase } from '../src/db/database.js';
import { inTransaction } from '../src/db/transaction.js';
import { toHttpError } from '../src/http/errors.js';
import { describeEachDatabase } from './harness/database.js';
import { openMigrated } from './harness/in-process.js';

describeEachDatabase('the transaction helper', (fresh) => {
  let opened: OpenDatabase;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const database = await fresh();
    cleanup = database.cleanup;
    opened = await openMigrated(database);
    await sql`create table retry_probe (id int primary key, v int not null)`.execute(opened.db);
    await sql`insert into retry_probe values (1, 0), (2, 0)`.execute(opened.db);
  });

  afterAll(async () => {
    await opened?.close();
    await cleanup?.();
  });

  it('runs a transaction once when nothing conflicts, and does not retry other errors', async () => {
    let attempts = 0;
    await expect(
      inTransaction(opened.db, async (trx) => {
        attempts++;
        await sql`insert into retry_probe values (1, 0)`.execute(trx);
      }),
    ).rejects.toMatchObject({ code: '23505' });
    expect(attempts).toBe(1);
  });

  it('retries the loser of a deadlock between two transactions locking rows in opposite orders', async (context) => {
    // PGlite has one connection: its transactions never interleave, so they cannot deadlock.
    if (opened.engine === 'pglite') context.skip();
    let attempts = 0;
    let firstLocks = 0;
    let bothLocked!: () => void;
    const barrier = new Promise<void>((resolve) => {
      bothLocked = resolve;
    });
    const worker = (first: number, second: number) =>
      inTransaction(opened.db, async (trx) => {
        attempts++;
        await sql`update retry_probe set v = v + 1 where id = ${first}`.execute(trx);
        if (++firstLocks === 2) bothLocked();
        // Only the first attempts wait for each other: each then holds the row the other wants.
        await barrier;
        await sql`update retry_probe set v = v + 1 where id = ${second}`.execute(trx);
      });
    await Promise.all([worker(1, 2), worker(2, 1)]);
    // Postgres aborted one of them with 40P01; the helper ran it again, and it then committed.
    expect(attempts).toBe(3);
    const { rows } = await sql<{ v: number }>`select v from retry_probe order by id`.execute(
      opened.db,
    );
    expect(rows.map((row) => row.v)).toEqual([2, 2]);
  });

  it('gives up after the bounded attempts, and the error is answered 503, never 500', async (context) => {
    if (opened.engine === 'pglite') context.skip();
    let attempts = 0;
    const error = await inTransaction(
      opened.db,
      async (trx) => {
        attempts++;
        // What Postgres raises on a deadlock, raised on purpose on every attempt.
        await sql`do $$ begin raise exception using errcode = '40P01', message = 'deadlock detected'; end $$`.execute(
          trx,
        );
      },
      { attempts: 3, baseDelayMs: 1 },
    ).catch((caught: unknown) => caught);
    expect(attempts).toBe(3);
    expect(error).toMatchObject({ code: '40P01' });
    expect(toHttpError(error)).toMatchObject({
      status: 503,
      body: { error: { code: 'ERR_DATABASE_UNAVAILABLE' } },
    });
  });
});
