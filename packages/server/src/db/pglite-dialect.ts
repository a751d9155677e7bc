import type { PGlite } from '@electric-sql/pglite';
import {
  type CompiledQuery,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import { databaseUnavailable, fromDatabase } from './database-errors.js';

/**
 * A kysely dialect for an embedded PGlite database. PGlite is one Postgres backend in this
 * process: there is exactly one connection, so a mutex hands it to one kysely "connection"
 * (a query or a whole transaction) at a time. Without it, two concurrent transactions would
 * interleave their statements on the same backend.
 */
export class PGliteDialect implements Dialect {
  readonly #pglite: PGlite;
  readonly #acquireTimeoutMs: () => number | undefined;

  /**
   * `acquireTimeoutMs` bounds the wait for the connection (behind a long transaction): past
   * it, ERR_DATABASE_UNAVAILABLE; undefined waits as long as it takes (migrations).
   */
  constructor(pglite: PGlite, acquireTimeoutMs: () => number | undefined = () => undefined) {
    this.#pglite = pglite;
    this.#acquireTimeoutMs = acquireTimeoutMs;
  }

  createDriver(): Driver {
    return new PGliteDriver(this.#pglite, this.#acquireTimeoutMs);
  }

  createQueryCompiler(): QueryCompiler {
    return new PostgresQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return new PostgresAdapter();
  }

  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new PostgresIntrospector(db);
  }
}

class Mutex {
  #tail: Promise<void> = Promise.resolve();

  /**
   * Resolves with a release function once every earlier holder has released, or rejects after
   * `timeoutMs`; a waiter that gave up passes the lock on as soon as its turn comes.
   */
  lock(timeoutMs?: number): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((resolve) => {
      release = resolve;
    });
    const acquired = this.#tail.then(() => release);
    this.#tail = this.#tail.then(() => next);
    if (timeoutMs === undefined) return acquired;
    return new Promise((resolve, reject) => {
      let gaveUp = false;
      const timer = setTimeout(() => {
        gaveUp = true;
        reject(
          databaseUnavailable(
            `the embedded database stayed busy for longer than the connect time limit (${timeoutMs} ms)`,
          ),
        );
      }, timeoutMs);
      void acquired.then((unlock) => {
        clearTimeout(timer);
        if (gaveUp) unlock();
        else resolve(unlock);
      });
    });
  }
}

class PGliteDriver implements Driver {
  readonly #connection: PGliteConnection;
  readonly #mutex = new Mutex();
  readonly #releases = new WeakMap<DatabaseConnection, () => void>();
  readonly #pglite: PGlite;
  readonly #acquireTimeoutMs: () => number | undefined;

  constructor(pglite: PGlite, acquireTimeoutMs: () => number | undefined) {
    this.#pglite = pglite;
    this.#acquireTimeoutMs = acquireTimeoutMs;
    this.#connection = new PGliteConnection(pglite);
  }

  async init(): Promise<void> {
    await this.#pglite.waitReady;
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const release = await this.#mutex.lock(this.#acquireTimeoutMs());
    this.#releases.set(this.#connection, release);
    return this.#connection;
  }

  async beginTransaction(
    connection: DatabaseConnection,
    settings: TransactionSettings,
  ): Promise<void> {
    let statement = 'begin';
    if (settings.isolationLevel) statement += ` isolation level ${settings.isolationLevel}`;
    if (settings.accessMode) statement += ` ${settings.accessMode}`;
    await (connection as PGliteConnection).run(statement);
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as PGliteConnection).run('commit');
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as PGliteConnection).run('rollback');
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    const release = this.#releases.get(connection);
    this.#releases.delete(connection);
    release?.();
  }

  async destroy(): Promise<void> {
    if (!this.#pglite.closed) await this.#pglite.close();
  }
}

class PGliteConnection implements DatabaseConnection {
  readonly #pglite: PGlite;

  constructor(pglite: PGlite) {
    this.#pglite = pglite;
  }

  async run(statement: string): Promise<void> {
    try {
      await this.#pglite.exec(statement);
    } catch (error) {
      throw fromDatabase(error);
    }
  }

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    try {
      return await this.#execute<R>(compiledQuery);
    } catch (error) {
      // A file system error (a full or read-only disk) is an outage; SQL errors stay themselves.
      throw fromDatabase(error);
    }
  }

  async #execute<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const parameters = compiledQuery.parameters as unknown[];
    // Like `pg`, a query without parameters goes through the simple protocol, which admits
    // several statements (migrations rely on it); with parameters, the extended protocol.
    if (parameters.length === 0) {
      const results = await this.#pglite.exec(compiledQuery.sql, { rowMode: 'object' });
      const last = results.at(-1);
      return {
        rows: (last?.rows ?? []).map(toBuffers) as R[],
        numAffectedRows: BigInt(last?.affectedRows ?? 0),
      };
    }
    const result = await this.#pglite.query<Record<string, unknown>>(
      compiledQuery.sql,
      parameters,
      {
        rowMode: 'object',
      },
    );
    return {
      rows: result.rows.map(toBuffers) as R[],
      numAffectedRows: BigInt(result.affectedRows ?? 0),
    };
  }

  // biome-ignore lint/correctness/useYield: PGlite has no cursors; kysely only needs the method to exist.
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming queries are not supported by the PGlite dialect');
  }
}

/** PGlite returns bytea as Uint8Array, pg as Buffer: give the rest of the server one type. */
function toBuffers(row: Record<string, unknown>): Record<string, unknown> {
  for (const [column, value] of Object.entries(row)) {
    if (value instanceof Uint8Array && !Buffer.isBuffer(value)) {
      row[column] = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    }
  }
  return row;
}
