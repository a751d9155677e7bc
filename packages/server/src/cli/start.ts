import { readFile } from 'node:fs/promises';
import { CrateError } from '@crate/crypto-core';
import {
  type DatabaseOptions,
  type DatabaseTimeouts,
  DEFAULT_DATABASE_TIMEOUTS,
  DEFAULT_MAX_CONNECTIONS,
} from '../db/database.js';
import { DEFAULT_SECRET_DEK_CACHE_POLICY } from '../keys/secret-dek-cache.js';
import { EnvMasterKeyProvider, INSECURE_DEV_KEY_WARNING } from '../master-key/env-provider.js';
import { FileMasterKeyProvider } from '../master-key/file-provider.js';
import {
  DEFAULT_MASTER_KEY_FILE,
  MASTER_KEY_ENV,
  MASTER_KEY_FILE_ENV,
  type MasterKeyProvider,
} from '../master-key/provider.js';
import { startServer } from '../server.js';
import { databaseFromFlags } from './database-option.js';
import { isWorkerProcess, reportListening, resolveWorkers, runPrimary } from './workers.js';

export interface StartFlags {
  host: string;
  port: string;
  dataDir?: string;
  databaseUrl?: string;
  masterKeyFile?: string;
  migrate: boolean;
  tlsCert?: string;
  tlsKey?: string;
  insecureDevKeyFromEnv?: boolean;
  /** Processes serving the API (Postgres only when more than one): N or auto. */
  workers?: string;
  /** Database time limits in milliseconds (db/database.ts, DEFAULT_DATABASE_TIMEOUTS). */
  dbConnectTimeout?: string;
  dbStatementTimeout?: string;
  dbTransactionTimeout?: string;
  /** Pooled Postgres connections of this process. */
  dbMaxConnections?: string;
  /** Unwrapped secret DEKs kept in memory (0 turns the cache off). */
  secretDekCacheSize?: string;
}

/** A whole number flag within [min, max], or a usage error naming the flag. */
function integerFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw new CrateError(
      'ERR_USAGE',
      `--${name} must be a whole number between ${min} and ${max}, not ${value}`,
    );
  }
  return parsed;
}

/** The database flags, checked before anything is opened. */
export function databaseLimitsFromFlags(flags: StartFlags): {
  timeouts: DatabaseTimeouts;
  maxConnections: number;
} {
  const hour = 3_600_000;
  const d = DEFAULT_DATABASE_TIMEOUTS;
  return {
    timeouts: {
      connectMs: integerFlag('db-connect-timeout', flags.dbConnectTimeout, d.connectMs, 100, hour),
      statementMs: integerFlag(
        'db-statement-timeout',
        flags.dbStatementTimeout,
        d.statementMs,
        100,
        hour,
      ),
      transactionMs: integerFlag(
        'db-transaction-timeout',
        flags.dbTransactionTimeout,
        d.transactionMs,
        100,
        hour,
      ),
    },
    maxConnections: integerFlag(
      'db-max-connections',
      flags.dbMaxConnections,
      DEFAULT_MAX_CONNECTIONS,
      1,
      1000,
    ),
  };
}

export async function runStart(flags: StartFlags): Promise<void> {
  try {
    await start(flags);
  } catch (error) {
    // A worker whose start-up failed must exit (the primary then stops the others); the IPC
    // channel to the primary would otherwise keep it alive after main() reported the error.
    if (isWorkerProcess()) process.channel?.unref();
    throw error;
  }
}

async function start(flags: StartFlags): Promise<void> {
  const limits = databaseLimitsFromFlags(flags);
  const named = databaseFromFlags(flags);
  const database: DatabaseOptions =
    'databaseUrl' in named
      ? { ...named, timeouts: limits.timeouts, maxConnections: limits.maxConnections }
      : { ...named, timeouts: limits.timeouts };
  const secretDekCacheSize = integerFlag(
    'secret-dek-cache-size',
    flags.secretDekCacheSize,
    DEFAULT_SECRET_DEK_CACHE_POLICY.maxEntries,
    0,
    10_000_000,
  );
  const port = Number(flags.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new CrateError(
      'ERR_USAGE',
      `--port must be an integer between 0 and 65535, not ${flags.port}`,
    );
  }
  if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey)) {
    throw new CrateError('ERR_USAGE', '--tls-cert and --tls-key go together');
  }
  const workers = resolveWorkers(flags.workers, database);
  if (workers > 1 && !isWorkerProcess()) {
    // The primary only forks and supervises; each worker runs the rest of this function.
    await runPrimary(workers);
    return;
  }
  let masterKey: MasterKeyProvider;
  if (flags.insecureDevKeyFromEnv) {
    process.stderr.write(`${INSECURE_DEV_KEY_WARNING}\n`);
    masterKey = new EnvMasterKeyProvider();
  } else {
    if (process.env[MASTER_KEY_ENV]) {
      throw new CrateError(
        'ERR_MASTER_KEY_INSECURE',
        `${MASTER_KEY_ENV} is set but key material in the environment is refused: unset it and use ` +
          '--master-key-file (or CRATE_MASTER_KEY_FILE naming the path); for development only, pass --insecure-dev-key-from-env',
      );
    }
    const path = flags.masterKeyFile ?? process.env[MASTER_KEY_FILE_ENV] ?? DEFAULT_MASTER_KEY_FILE;
    masterKey = new FileMasterKeyProvider(
      path,
      'dataDir' in database ? { dataDir: database.dataDir } : {},
    );
  }
  const https =
    flags.tlsCert && flags.tlsKey
      ? { cert: await readFile(flags.tlsCert), key: await readFile(flags.tlsKey) }
      : undefined;
  const server = await startServer({
    database,
    masterKey,
    migrate: flags.migrate,
    secretDekCache: { ...DEFAULT_SECRET_DEK_CACHE_POLICY, maxEntries: secretDekCacheSize },
    host: flags.host,
    port,
    app: https ? { https } : {},
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.app.log.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        server.app.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (isWorkerProcess()) {
    // The primary prints the listening line once every worker listens.
    reportListening(server.url, stop);
    return;
  }
  // The one line on stdout: tests and scripts wait for it.
  process.stdout.write(`crate-server listening on ${server.url}\n`);
}
