import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type OpenDatabase } from '../src/db/database.js';
import { statementNames, usePreparedStatements } from '../src/db/prepared-statements.js';
import {
  adminQuery,
  describePostgres,
  freshPostgres,
  type TestDatabase,
} from './harness/database.js';

describe('statement names', () => {
  it('names a text once it has run a few times, up to a bound, and never again once forgotten', () => {
    const names = statementNames({ usesBeforeNaming: 3, maxNamed: 2 });
    expect(names.nameFor('a')).toBeUndefined();
    expect(names.nameFor('a')).toBeUndefined();
    const a = names.nameFor('a');
    expect(a).toBeDefined();
    expect(names.nameFor('a')).toBe(a);
    for (let i = 0; i < 3; i++) names.nameFor('b');
    expect(names.size).toBe(2);
    for (let i = 0; i < 5; i++) expect(names.nameFor('c')).toBeUndefined(); // the bound
    names.forget('a');
    for (let i = 0; i < 5; i++) expect(names.nameFor('a')).toBeUndefined();
    expect(names.nameFor('b')).not.toBe(a); // a name is never reused for another text
  });
});

describe('the query wrapper', () => {
  it('names only queries with values, and not those with very many', async () => {
    const calls: unknown[][] = [];
    const client = {
      query: async (...args: unknown[]) => {
        calls.push(args);
        return { rows: [] };
      },
    };
    usePreparedStatements(client as never, statementNames({ usesBeforeNaming: 1 }));
    const query = client.query as (...args: unknown[]) => Promise<unknown>;
    await query('select $1', [1]);
    await query('begin', []);
    await query('select 1');
    const many = Array.from({ length: 65 }, (_, i) => i);
    await query('select many', many);
    expect(calls[0]).toEqual([{ name: 'crate_s0', text: 'select $1', values: [1] }]);
    expect(calls.slice(1)).toEqual([['begin', []], ['select 1'], ['select many', many]]);
  });
});

describePostgres('prepared statements on the pg pool', () => {
  let database: TestDatabase;
  let opened: OpenDatabase;
  let url: string;

  beforeAll(async () => {
    database = await freshPostgres();
    if (database.kind !== 'postgres') throw new Error('unreachable');
    url = database.databaseUrl;
    opened = await createDatabase({ databaseUrl: url, maxConnections: 1 });
    await sql`create table gadgets (id text primary key, name text not null)`.execute(opened.db);
    await sql`insert into gadgets values ('g1', 'one'), ('g2', 'two')`.execute(opened.db);
  });

  afterAll(async () => {
    await opened?.db.destroy();
    await database?.cleanup();
  });

  // biome-ignore lint/suspicious/noExplicitAny: a table outside the schema, for this test only.
  const find = (id: string, db: any = opened.db) =>
    db.selectFrom('gadgets').selectAll().where('id', '=', id).executeTakeFirst();

  it('runs frequent statements prepared, with the same answers', async () => {
    for (let i = 0; i < 5; i++) expect(await find('g1')).toEqual({ id: 'g1', name: 'one' });
    const prepared = await adminQuery(
      `select count(*)::int as n from pg_prepared_statements`,
      [],
      url,
    );
    // pg_prepared_statements is per session: ask through the pool's own (only) connection.
    const mine = await sql<{ n: number }>`
      select count(*)::int as n from pg_prepared_statements where name like 'crate_s%'`.execute(
      opened.db,
    );
    expect(prepared.rows[0].n).toBe(0);
    expect(mine.rows[0]!.n).toBeGreaterThan(0);
  });

  it('survives a column added under it: the statement is run again unnamed', async () => {
    for (let i = 0; i < 5; i++) await find('g2');
    await adminQuery('alter table gadgets add column colour text', [], url);
    expect(await find('g2')).toEqual({ id: 'g2', name: 'two', colour: null });
    expect(await find('g1')).toEqual({ id: 'g1', name: 'one', colour: null });
  });

  it('inside a transaction the stale statement fails that transaction only', async () => {
    // Another text than above (that one is no longer named after its stale plan).
    // biome-ignore lint/suspicious/noExplicitAny: a table outside the schema, for this test only.
    const named = (db: any) =>
      db
        .selectFrom('gadgets')
        .selectAll()
        .where('id', '=', 'g1')
        .where('name', 'is not', null)
        .executeTakeFirst();
    for (let i = 0; i < 5; i++) await named(opened.db);
    await adminQuery('alter table gadgets add column size integer', [], url);
    await expect(opened.db.transaction().execute((trx) => named(trx))).rejects.toMatchObject({
      code: '0A000',
    });
    expect(await opened.db.transaction().execute((trx) => named(trx))).toEqual({
      id: 'g1',
      name: 'one',
      colour: null,
      size: null,
    });
  });
});
