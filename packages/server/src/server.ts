import { CrateError, type Keyring } from '@crate/crypto-core';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { AuditWriter } from './audit/audit.writer.js';
import { type DataDirLock, lockDataDir } from './db/data-dir-lock.js';
import { createDatabase, type DatabaseOptions, type OpenDatabase } from './db/database.js';
import { migrateToLatest, pendingMigrations } from './db/migrate.js';
import { HealthMonitor, type HealthMonitorOptions } from './health/health.monitor.js';
import { registerHealthRoute } from './health/health.routes.js';
import { type AppOptions, buildApp } from './http/app.js';
import type { AppContext } from './http/context.js';
import { DEFAULT_KEY_CACHE_POLICY, KeyService } from './keys/key.service.js';
import { ensureAuditKey } from './keys/org-keys.js';
import {
  DEFAULT_SECRET_DEK_CACHE_POLICY,
  type SecretDekCachePolicy,
} from './keys/secret-dek-cache.js';
import { UnsealState } from './keys/unseal-state.js';
import type { MasterKeyProvider } from './master-key/provider.js';
import { assertKeyringHoldsReferencedVersions } from './rotation/master-key-rotation.js';
import { startRotations } from './rotation/rotation.runner.js';
import { allRoutes } from './routes.js';
import { startSealingKeySweeper } from './sealing-rotation/sealing-rotation.service.js';
import { adoptSecretsWithoutMac } from './secrets/secret-integrity.js';

export interface ServerOptions {
  database: DatabaseOptions;
  masterKey: MasterKeyProvider;
  /** Apply pending migrations at start (default); false refuses to start while any is pending. */
  migrate?: boolean;
  /** Bounds of the unwrapped secret DEK cache (default DEFAULT_SECRET_DEK_CACHE_POLICY). */
  secretDekCache?: SecretDekCachePolicy;
  /** Budget and probe intervals of /healthz (default DEFAULT_HEALTH_OPTIONS). */
  health?: HealthMonitorOptions;
  host?: string;
  port?: number;
  app?: AppOptions;
}

export interface RunningServer {
  readonly app: FastifyInstance;
  readonly url: string;
  readonly context: AppContext;
  close(): Promise<void>;
}

/** Opens the database the options name, taking the data-dir lock first for PGlite. */
export async function openDatabase(
  options: DatabaseOptions,
  command: string,
): Promise<{ database: OpenDatabase; lock: DataDirLock | undefined }> {
  const lock = 'dataDir' in options ? await lockDataDir(options.dataDir, command) : undefined;
  try {
    const database = await createDatabase(options);
    try {
      await sql`select 1`.execute(database.db);
    } catch (cause) {
      await database.close().catch(() => {});
      throw new CrateError(
        'ERR_DATABASE_UNAVAILABLE',
        'the database cannot be reached: check DATABASE_URL / --database-url and that Postgres is running',
        { cause },
      );
    }
    return { database, lock };
  } catch (error) {
    await lock?.release();
    throw error;
  }
}

/**
 * Start-up, failing closed at each step: load the master key (refusals name cause and fix),
 * lock and open the database, migrate (or refuse if migrations are pending), prove the master
 * key opens every wrapped key the database holds, then listen.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const keyring: Keyring = await options.masterKey.load();
  let opened: Awaited<ReturnType<typeof openDatabase>> | undefined;
  let keys: KeyService | undefined;
  let sweeper: ReturnType<typeof startSealingKeySweeper> | undefined;
  let rotations: ReturnType<typeof startRotations> | undefined;
  try {
    opened = await openDatabase(options.database, 'crate-server start');
    const { db, engine } = opened.database;
    if (options.migrate === false) {
      const pending = await pendingMigrations(db);
      if (pending.length > 0) {
        throw new CrateError(
          'ERR_DATABASE_UNAVAILABLE',
          `the database needs migrations (${pending.join(', ')}) and --no-migrate was given: run \`crate-server migrate\` first`,
        );
      }
    } else {
      // A migration may take longer than a request should: the time limits start after it.
      await opened.database.withoutTimeouts(() => migrateToLatest(db));
    }
    const unseal = new UnsealState();
    keys = new KeyService(
      db,
      keyring,
      unseal,
      DEFAULT_KEY_CACHE_POLICY,
      options.secretDekCache ?? DEFAULT_SECRET_DEK_CACHE_POLICY,
    );
    await assertKeyringHoldsReferencedVersions(db, keyring);
    await keys.verifyMasterKeyOpensEverything();
    await ensureAuditKey(db, keyring);
    // Once, on the first start after the upgrade that added state MACs (secret-integrity.ts).
    // Like a migration it rewrites every secret of an org in one transaction, which may take
    // longer than the request time limits allow: they are lifted for it, as for migrations.
    const adopted = await opened.database.withoutTimeouts(() =>
      adoptSecretsWithoutMac(db, keyring),
    );
    const keyService = keys;
    const audit = new AuditWriter(db, (options) => keyService.auditSigner(options));
    const context: AppContext = {
      db,
      engine,
      keys,
      audit,
      unseal,
      masterKey: options.masterKey.describe(),
      now: () => new Date(),
    };
    const app = buildApp(context, allRoutes, options.app);
    registerHealthRoute(app, context, new HealthMonitor({ db, audit, unseal }, options.health));
    for (const { orgId, secrets } of adopted) {
      // Expected exactly once per org, at the upgrade: seen again, someone re-armed the adoption
      // list in the database (docs/threat-model.md, "Stored state integrity").
      app.log.warn(
        { orgId, secrets },
        'adopted secrets stored before integrity MACs: their current state is MACed as found',
      );
    }
    // Retired sealing keys past their grace period lose their private key: now, then hourly.
    sweeper = startSealingKeySweeper(context, (error) =>
      app.log.error({ err: error }, 'the sweep of retired sealing keys failed'),
    );
    await sweeper.first;
    const sweeping = sweeper;
    // Org DEK rotations (admin API, nonce budget: checked now, then every five minutes) and the
    // master key versions this server holds, recorded for `keys rotate-master`.
    rotations = startRotations(
      context,
      app.log,
      'databaseUrl' in options.database ? options.database.databaseUrl : undefined,
    );
    await rotations.first;
    const rotating = rotations;
    await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 8420 });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : options.port;
    const scheme = options.app?.https ? 'https' : 'http';
    const host = options.host ?? '127.0.0.1';
    const url = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
    const database = opened;
    let closing: Promise<void> | undefined;
    return {
      app,
      url,
      context,
      close: () => {
        closing ??= (async () => {
          await app.close();
          await sweeping.stop();
          await rotating.stop();
          await audit.close();
          keyService.destroy();
          keyring.destroy();
          await database.database.close();
          await database.lock?.release();
        })();
        return closing;
      },
    };
  } catch (error) {
    await sweeper?.stop();
    await rotations?.stop();
    keys?.destroy();
    keyring.destroy();
    await opened?.database.close().catch(() => {});
    await opened?.lock?.release();
    throw error;
  }
}
