import { resolve } from 'node:path';
import { CrateError } from '@crate/crypto-core';
import type { DatabaseOptions } from '../db/database.js';

/** --database-url, then DATABASE_URL, then --data-dir (embedded PGlite). */
export function databaseFromFlags(flags: {
  databaseUrl?: string;
  dataDir?: string;
}): DatabaseOptions {
  const url = flags.databaseUrl ?? process.env.DATABASE_URL;
  if (url) return { databaseUrl: url };
  if (flags.dataDir) return { dataDir: resolve(flags.dataDir) };
  throw new CrateError(
    'ERR_USAGE',
    'name a database: --data-dir DIR for the embedded database, or --database-url / DATABASE_URL for Postgres',
  );
}
