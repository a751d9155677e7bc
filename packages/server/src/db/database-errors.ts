import { CrateError } from '@crate/crypto-core';

/**
 * Where an error came from decides what it means: ECONNRESET from the database socket is an
 * outage, ECONNRESET from a client's socket is a client that went away. So the database layer
 * (db/database.ts, db/pglite-dialect.ts) converts its own connection-level failures into
 * ERR_DATABASE_UNAVAILABLE as they happen, and lets only SQL errors through, which carry a
 * SQLSTATE and the server's severity; http/errors.ts reads SQLSTATEs only off such errors.
 */
export interface SqlError extends Error {
  code: string;
  severity: string;
}

/** An error the database server (or PGlite's backend) reported for a statement. */
export function isSqlError(error: unknown): error is SqlError {
  if (!(error instanceof Error)) return false;
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  return typeof severity === 'string' && typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

// SQLSTATE classes and codes that say the database cannot serve now, whatever the statement:
// 08 connection exception, 53 insufficient resources (disk full, out of memory, too many
// connections), 57P01-57P05 shutdown, crash recovery, idle-session timeouts, 58 system error.
function isOutageState(code: string): boolean {
  return (
    code.startsWith('08') ||
    code.startsWith('53') ||
    code.startsWith('58') ||
    /^57P0[1-5]$/.test(code)
  );
}

export function databaseUnavailable(message: string, cause?: unknown): CrateError {
  return new CrateError('ERR_DATABASE_UNAVAILABLE', message, cause ? { cause } : undefined);
}

/**
 * What a failed statement or connection attempt becomes: a SQL error stays itself (a unique
 * violation, a trigger's refusal, a deadlock the transaction helper retries), unless its state
 * is an outage; everything else (a socket error, a dropped connection, a driver timeout, a
 * file system error inside PGlite) is ERR_DATABASE_UNAVAILABLE with the original as cause.
 */
export function fromDatabase(error: unknown): unknown {
  // A programming error (a parameter the driver cannot serialize) is a bug, not an outage.
  if (error instanceof CrateError || error instanceof TypeError || error instanceof RangeError) {
    return error;
  }
  if (isSqlError(error)) {
    return isOutageState(error.code)
      ? databaseUnavailable(
          `the database cannot serve requests now (SQLSTATE ${error.code})`,
          error,
        )
      : error;
  }
  return databaseUnavailable('the database cannot be reached', error);
}
