/**
 * How fast can the audit log take entries, next to the other database work of a request?
 *   node packages/server/bench/audit-append.ts            (PGlite in a temp dir)
 *   DATABASE_URL=postgres://…/scratch node packages/server/bench/audit-append.ts
 * (the Postgres variant creates the schema in that database: point it at a scratch one).
 * Needs the server built (`pnpm exec tsc -b packages/server`).
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { type Measurement, machineLine, measure, printTable } from '../../../bench/lib/measure.ts';
import { AuditWriter } from '../dist/audit/audit.writer.js';
import { createDatabase } from '../dist/db/database.js';
import { migrateToLatest } from '../dist/db/migrate.js';

const CONCURRENCY = 32;

async function main(): Promise<void> {
  const url = process.env.DATABASE_URL;
  const dir = url ? undefined : await mkdtemp(join(tmpdir(), 'crate-bench-'));
  const opened = await createDatabase(
    url ? { databaseUrl: url, maxConnections: 20 } : { dataDir: dir! },
  );
  const db = opened.db;
  await migrateToLatest(db);
  const { privateKey } = generateKeyPairSync('ed25519');
  const writer = new AuditWriter(db, async () => ({ keyId: 'key_bench', privateKey }));
  const chain = `bench_${randomBytes(4).toString('hex')}`;
  let n = 0;
  const entry = () => ({
    chain,
    requestId: `req_${n++}`,
    actor: 'user:usr_bench',
    orgId: chain,
    project: 'web',
    environment: 'prod',
    action: 'secrets.retrieve',
    target: 'DATABASE_URL',
    outcome: 'success' as const,
    clientAddress: '127.0.0.1',
    code: null,
  });
  // Stand-in for the rest of a request: one authenticated read and one small write, in a transaction.
  const requestWork = () =>
    db.transaction().execute(async (trx) => {
      await sql`select id from orgs limit 1`.execute(trx);
      await sql`select ${randomBytes(32)}::bytea`.execute(trx);
    });
  const batch = async (op: () => Promise<unknown>) => {
    await Promise.all(Array.from({ length: CONCURRENCY }, op));
  };
  const perEntry = (m: Measurement, k: number): Measurement => ({
    ...m,
    opsPerSecond: m.opsPerSecond * k,
    meanMs: m.meanMs / k,
    iterations: m.iterations * k,
  });
  const rows = [
    await measure('request work, sequential', requestWork),
    await measure('audit append, sequential', () => writer.append(entry())),
    perEntry(
      await measure(`request work, ${CONCURRENCY} in flight (per op)`, () => batch(requestWork)),
      CONCURRENCY,
    ),
    perEntry(
      await measure(`audit append, ${CONCURRENCY} in flight, group commit (per entry)`, () =>
        batch(() => writer.append(entry())),
      ),
      CONCURRENCY,
    ),
  ];
  printTable(`audit append vs request work (${opened.engine}; ${machineLine()})`, rows);
  await writer.close();
  await opened.close();
  if (dir) await rm(dir, { recursive: true, force: true });
}

await main();
