import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CrateError } from '@crate/crypto-core';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient } from 'kysely';
import pg from 'pg';
import { unwritableDataDir } from './data-dir-lock.js';
import { databaseUnavailable, fromDatabase } from './database-errors.js';
import { PGliteDialect } from './pglite-dialect.js';
import { statementNames, usePreparedStatements } from './prepared-statements.js';
import type { Database } from './schema.js';

/**
 * How long the server waits on the database before it answers 503 ERR_DATABASE_UNAVAILABLE.
 * A database that stops answering without closing its connections (a network partition, a
 * frozen host) would otherwise hold every request, and the pool, for as long as TCP takes to
 * give up (minutes to hours). docs/operations.md, "Database time limits".
 */
export interface DatabaseTimeouts {
  /** Opening a connection (TCP and start-up), and waiting for a free pooled connection. */
  connectMs: number;
  /** One statement, from sending it to its last row. */
  statementMs: number;
  /** One transaction, from begin to commit; Postgres also ends a session idle in one this long. */
  transactionMs: number;
}

export const DEFAULT_DATABASE_TIMEOUTS: Readonly<DatabaseTimeouts> = Object.freeze({
  connectMs: 5_000,
  statementMs: 5_000,
  transactionMs: 15_000,
});

/** Pooled Postgres connections per server process (--db-max-connections). */
export const DEFAULT_MAX_CONNECTIONS = 10;

export type DatabaseOptions =
  | { databaseUrl: string; maxConnections?: number; timeouts?: DatabaseTimeouts }
  | { dataDir: string; timeouts?: DatabaseTimeouts };

export type DatabaseEngine = 'postgres' | 'pglite';

export interface OpenDatabase {
  readonly db: Kysely<Database>;
  readonly engine: DatabaseEngine;
  /**
   * Runs `work` with the time limits lifted: a migration may rewrite a large table for
   * longer than any request should wait. Start-up runs migrations before it listens.
   */
  withoutTimeouts<T>(work: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** PGlite keeps its files in a subdirectory so the data dir can also hold the lock file and backups. */
export function pgliteDirectory(dataDir: string): string {
  return join(dataDir, 'pgdata');
}

/** Time limits on or off, shared by every connection of one database. */
class Limits {
  readonly timeouts: DatabaseTimeouts | undefined;
  #lifted = 0;

  constructor(timeouts: DatabaseTimeouts | undefined) {
    this.timeouts = timeouts;
  }

  get active(): DatabaseTimeouts | undefined {
    return this.#lifted > 0 ? undefined : this.timeouts;
  }

  async lifted<T>(work: () => Promise<T>): Promise<T> {
    this.#lifted++;
    try {
      return await work();
    } finally {
      this.#lifted--;
    }
  }
}

export async function createDatabase(options: DatabaseOptions): Promise<OpenDatabase> {
  const limits = new Limits(options.timeouts);
  if ('databaseUrl' in options) {
    const timeouts = options.timeouts;
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      // pg-pool applies this to a new connection's start-up and to the wait for a free one.
      ...(timeouts && { connectionTimeoutMillis: timeouts.connectMs }),
      // A half-open connection (peer gone without a FIN) is found by TCP keepalive in the end;
      // the statement timer below is what bounds a request.
      keepAlive: true,
      // Server side: a session that went quiet inside a transaction (its client partitioned
      // away) loses it, so its row locks do not block the other processes.
      ...(timeouts && { idle_in_transaction_session_timeout: timeouts.transactionMs }),
    });
    // An idle client that loses its connection emits 'error' on the pool; without a listener
    // that would crash the process. The next query reports ERR_DATABASE_UNAVAILABLE instead.
    pool.on('error', () => {});
    // Frequent statements run prepared: parsed and planned once per connection (see the module).
    const names = statementNames();
    pool.on('connect', (client) => {
      usePreparedStatements(client, names);
      boundStatements(client, limits);
    });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: guarded(pool) }) });
    return {
      db,
      engine: 'postgres',
      withoutTimeouts: (work) => limits.lifted(work),
      close: () => db.destroy(),
    };
  }
  const directory = pgliteDirectory(options.dataDir);
  let pglite: PGlite;
  try {
    await mkdir(directory, { recursive: true, mode: 0o700 });
    pglite = await PGlite.create(directory);
  } catch (cause) {
    const unwritable = unwritableDataDir(options.dataDir, cause);
    if (unwritable) throw unwritable;
    throw new CrateError(
      'ERR_DATABASE_UNAVAILABLE',
      `cannot open the embedded database in ${directory}: is it a PGlite data directory of a compatible version?`,
      { cause },
    );
  }
  const db = new Kysely<Database>({
    dialect: new PGliteDialect(pglite, () => limits.active?.connectMs),
  });
  return {
    db,
    engine: 'pglite',
    withoutTimeouts: (work) => limits.lifted(work),
    close: () => db.destroy(),
  };
}

/** The pool as kysely sees it: a failure to get a connection is a database outage. */
function guarded(pool: pg.Pool): PostgresPool {
  return {
    connect: async () => {
      try {
        return (await pool.connect()) as unknown as PostgresPoolClient;
      } catch (error) {
        throw fromDatabase(error);
      }
    },
    end: () => pool.end(),
    options: pool.options as PostgresPool['options'],
  };
}

type Query = (...args: unknown[]) => Promise<unknown>;

/**
 * Bounds every statement of one pooled connection by the statement limit, and every statement
 * inside a transaction also by what is left of the transaction limit. A statement past its
 * limit fails with ERR_DATABASE_UNAVAILABLE and the connection is destroyed, not returned to
 * the pool: its answer may still arrive later and would be read as the answer to the next
 * statement (pg's own query_timeout leaves the connection in the pool). The pool opens a fresh
 * connection for the next request, which is how the server recovers, without a restart, once
 * the database answers again. Connection-level failures become ERR_DATABASE_UNAVAILABLE here,
 * at their origin (db/database-errors.ts).
 */
function boundStatements(client: pg.PoolClient, limits: Limits): void {
  const inner = client.query.bind(client) as Query;
  let transactionDeadline: number | undefined;
  let abandoned: CrateError | undefined;
  const bounded: Query = async (...args) => {
    const [text] = args;
    if (typeof text !== 'string' || typeof args.at(-1) === 'function') return inner(...args);
    if (abandoned) throw abandoned;
    const head = text.trimStart().slice(0, 17).toLowerCase();
    const timeouts = limits.active;
    const now = Date.now();
    if (head.startsWith('begin') || head.startsWith('start transaction')) {
      transactionDeadline = timeouts && now + timeouts.transactionMs;
    }
    const ending = head.startsWith('commit') || head.startsWith('rollback');
    try {
      if (!timeouts) return await inner(...args).catch(rethrowFromDatabase);
      const inTransaction = transactionDeadline !== undefined;
      const left = inTransaction
        ? Math.min(timeouts.statementMs, transactionDeadline! - now)
        : timeouts.statementMs;
      const limit = inTransaction && left < timeouts.statementMs ? 'transaction' : 'statement';
      const limitMs = limit === 'transaction' ? timeouts.transactionMs : timeouts.statementMs;
      return await new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => {
            abandoned = databaseUnavailable(
              `the database did not answer within the ${limit} time limit (${limitMs} ms)`,
            );
            reject(abandoned);
            // With a statement outstanding, end() destroys the socket at once.
            client.end().catch(() => {});
          },
          Math.max(0, left),
        );
        inner(...args).then(
          (result) => {
            clearTimeout(timer);
            resolve(result);
          },
          (error: unknown) => {
            clearTimeout(timer);
            reject(abandoned ?? fromDatabase(error));
          },
        );
      });
    } finally {
      if (ending) transactionDeadline = undefined;
    }
  };
  (client as unknown as { query: Query }).query = bounded;
}

function rethrowFromDatabase(error: unknown): never {
  throw fromDatabase(error);
}
