import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, it } from 'vitest';

export type TestDatabase =
  | { kind: 'pglite'; dataDir: string; cleanup(): Promise<void> }
  | { kind: 'postgres'; databaseUrl: string; cleanup(): Promise<void> };

/**
 * The Postgres the suites use: CRATE_TEST_DATABASE_URL, else the local default a developer
 * machine (and CI) usually has. `CRATE_TEST_DATABASE_URL=off` opts out. Each suite creates its
 * own database there (`crate_test_<random>`) and drops it afterwards.
 */
export const DEFAULT_TEST_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';
const configuredUrl = process.env.CRATE_TEST_DATABASE_URL ?? DEFAULT_TEST_DATABASE_URL;
export const POSTGRES_URL = configuredUrl === 'off' ? undefined : configuredUrl;
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
  if (!POSTGRES_URL) throw new Error('the Postgres suites are off (CRATE_TEST_DATABASE_URL=off)');
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
  // A short connect timeout: on a machine without Postgres the probe must not hold up the run.
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return await client.query(text, params);
  } finally {
    await client.end();
  }
}

async function postgresReachable(): Promise<string | undefined> {
  if (!POSTGRES_URL) return 'CRATE_TEST_DATABASE_URL=off';
  try {
    await adminQuery('select 1');
    return undefined;
  } catch (error) {
    const where = new URL(POSTGRES_URL);
    return `no Postgres reachable at ${where.host}${where.pathname} (${(error as Error).message}); set CRATE_TEST_DATABASE_URL to use another`;
  }
}

const postgresProblem = await postgresReachable();

/**
 * Declares a suite that needs the real Postgres. When none is reachable it is reported
 * skipped, with the reason in its title; in CI (CI=true) a missing or unreachable Postgres
 * fails instead, so the Postgres coverage can never silently disappear.
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
