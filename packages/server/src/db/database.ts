import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CrateError } from '@crate/crypto-core';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { PGliteDialect } from './pglite-dialect.js';
import { statementNames, usePreparedStatements } from './prepared-statements.js';
import type { Database } from './schema.js';

export type DatabaseOptions =
  | { databaseUrl: string; maxConnections?: number }
  | { dataDir: string };

export type DatabaseEngine = 'postgres' | 'pglite';

export interface OpenDatabase {
  readonly db: Kysely<Database>;
  readonly engine: DatabaseEngine;
  close(): Promise<void>;
}

/** PGlite keeps its files in a subdirectory so the data dir can also hold the lock file and backups. */
export function pgliteDirectory(dataDir: string): string {
  return join(dataDir, 'pgdata');
}

export async function createDatabase(options: DatabaseOptions): Promise<OpenDatabase> {
  if ('databaseUrl' in options) {
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: options.maxConnections ?? 10,
    });
    // An idle client that loses its connection emits 'error' on the pool; without a listener
    // that would crash the process. The next query reports ERR_DATABASE_UNAVAILABLE instead.
    pool.on('error', () => {});
    // Frequent statements run prepared: parsed and planned once per connection (see the module).
    const names = statementNames();
    pool.on('connect', (client) => usePreparedStatements(client, names));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return { db, engine: 'postgres', close: () => db.destroy() };
  }
  const directory = pgliteDirectory(options.dataDir);
  await mkdir(directory, { recursive: true, mode: 0o700 });
  let pglite: PGlite;
  try {
    pglite = await PGlite.create(directory);
  } catch (cause) {
    throw new CrateError(
      'ERR_DATABASE_UNAVAILABLE',
      `cannot open the embedded database in ${directory}: is it a PGlite data directory of a compatible version?`,
      { cause },
    );
  }
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  return { db, engine: 'pglite', close: () => db.destroy() };
}
