import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CrateError } from '@crate/crypto-core';
import type { DatabaseOptions } from '../db/database.js';

/**
 * --database-url, then DATABASE_URL, then the file DATABASE_URL_FILE names (a mounted secret:
 * the password stays out of the environment and the compose file), then --data-dir (embedded
 * PGlite).
 */
export function databaseFromFlags(flags: {
  databaseUrl?: string;
  dataDir?: string;
}): DatabaseOptions {
  const url = flags.databaseUrl ?? (process.env.DATABASE_URL || undefined) ?? databaseUrlFromFile();
  if (url) return { databaseUrl: url };
  if (flags.dataDir) return { dataDir: resolve(flags.dataDir) };
  throw new CrateError(
    'ERR_USAGE',
    'name a database: --data-dir DIR for the embedded database, or --database-url / DATABASE_URL / DATABASE_URL_FILE for Postgres',
  );
}

function databaseUrlFromFile(): string | undefined {
  const path = process.env.DATABASE_URL_FILE;
  if (!path) return undefined;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new CrateError(
      'ERR_USAGE',
      `DATABASE_URL_FILE names ${path}, which cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  const url = text.trim();
  if (!url) throw new CrateError('ERR_USAGE', `DATABASE_URL_FILE names ${path}, which is empty`);
  return url;
}
