import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, it } from 'vitest';

export type TestDatabase =
  | { kind: 'pglite'; dataDir: string; cleanup(): Promise<void> }
  | { kind: 'postgres'; databaseUrl: string; cleanup(): Promise<void> };

export const POSTGRES_URL = process.env.CRATE_TEST_DATABASE_URL;
const IN_CI = process.env.CI === 'true';

/** A fresh directory under the OS temp dir; removed by the returned cleanup. */
export async function tempDir(label: string): Promise<{ path: string; cleanup(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `crate-${label}-`));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

export async function freshPglite(): Promise<TestDatabase> {
  const dir = await tempDir('data');
  return { kind: 'pglite', dataDir: dir.path, cleanup: dir.cleanup };
}

/** A new, empty database on the test Postgres server, dropped (with its connections) by cleanup. */
export async function freshPostgres(): Promise<TestDatabase> {
  if (!POSTGRES_URL) throw new Error('CRATE_TEST_DATABASE_URL is not set');
  const name = `crate_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(`create database ${name}`);
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    kind: 'postgres',
    databaseUrl: url.toString(),
    cleanup: async () => {
      await adminQuery(`drop database if exists ${name} with (force)`);
    },
  };
}

export async function adminQuery(text: string, params: unknown[] = [], databaseUrl = POSTGRES_URL) {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return await client.query(text, params);
  } finally {
    await client.end();
  }
}

async function postgresReachable(): Promise<string | undefined> {
  if (!POSTGRES_URL) return 'CRATE_TEST_DATABASE_URL is not set';
  try {
    await adminQuery('select 1');
    return undefined;
  } catch (error) {
    return `Postgres at CRATE_TEST_DATABASE_URL is unreachable: ${(error as Error).message}`;
  }
}

const postgresProblem = await postgresReachable();

/**
 * Declares a suite that needs the real Postgres. Without CRATE_TEST_DATABASE_URL it is
 * reported skipped, with the reason in its title; in CI (CI=true) a missing or unreachable
 * Postgres fails instead, so the Postgres coverage can never silently disappear.
 */
export function describePostgres(name: string, fn: () => void): void {
  if (postgresProblem === undefined) {
    describe(`${name} [postgres]`, fn);
  } else if (IN_CI) {
    describe(`${name} [postgres]`, () => {
      it('has a reachable Postgres, which CI requires', () => {
        throw new Error(`${postgresProblem}; CI must run the Postgres suite`);
      });
    });
  } else {
    describe.skip(`${name} [postgres] (skipped: ${postgresProblem})`, fn);
  }
}

/** Runs `fn` once against PGlite and once against Postgres (skipped or failing as above). */
export function describeEachDatabase(
  name: string,
  fn: (fresh: () => Promise<TestDatabase>) => void,
): void {
  describe(`${name} [pglite]`, () => fn(freshPglite));
  describePostgres(name, () => fn(freshPostgres));
}
