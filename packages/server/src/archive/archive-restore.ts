import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  AUDIT_GENESIS_HASH,
  type AuditEntryBody,
  CrateError,
  computeAuditHash,
  generateKeyring,
  importSigningPrivateKey,
  Keyring,
  keyFingerprint,
  serializeMasterKeyFile,
  signAuditHash,
  unwrapPrivateKey,
  zeroize,
} from '@crate/crypto-core';
import { sql, type Transaction } from 'kysely';
import { advanceChainHead, insertEntries, lockChainHead } from '../audit/audit.repository.js';
import { SYSTEM_CHAIN } from '../audit/audit.writer.js';
import { syncDirectory } from '../backup/files.js';
import { lockDataDir } from '../db/data-dir-lock.js';
import { createDatabase, type DatabaseOptions, pgliteDirectory } from '../db/database.js';
import { createMigrator, migrateToLatest } from '../db/migrate.js';
import type { Database } from '../db/schema.js';
import { findActiveAuditKey } from '../keys/keys.repository.js';
import { ensureAuditKey } from '../keys/org-keys.js';
import { FileMasterKeyProvider, isInside } from '../master-key/file-provider.js';
import { openDatabase } from '../server.js';
import { TRANSFER_KEY_VERSION } from './archive-create.js';
import { listTables } from './catalog.js';
import { type OpenedArchive, openArchive, readArchiveChunks } from './container.js';
import { MASTER_WRAPPED, rewrapRow } from './master-wrapped.js';
import { type ArchiveManifest, PayloadReader } from './payload.js';
import { type RestoredCounts, verifyRestored } from './verify-restored.js';

/** Rows sent to the database in one INSERT (fewer if their JSON passes BATCH_BYTES). */
const BATCH_ROWS = 1000;
const BATCH_BYTES = 4 * 1024 * 1024;
const STAGING_PREFIX = '.restore-';
const REPLACED_PREFIX = '.replaced-';

export interface RestoreArchiveOptions {
  file: string;
  passphrase: string;
  database: DatabaseOptions;
  /** The destination's master key file; created (mode 0400) when there is none. */
  masterKeyFile: string;
  now?: Date;
}

export interface RestoreSummary {
  archiveId: string;
  createdAt: string;
  source: ArchiveManifest['source'];
  engine: 'postgres' | 'pglite';
  masterKey: { file: string; created: boolean; activeVersion: number; fingerprint: string };
  restored: RestoredCounts;
}

/**
 * Restores an archive into an EMPTY database and re-wraps its keys under this host's master
 * key. Nothing is changed unless everything succeeds:
 *
 * 1. the whole archive is read and checked first (every chunk's tag, the manifest, the row
 *    counts, the payload checksum), before the target is touched;
 * 2. Postgres: one transaction takes an exclusive lock on every existing table, checks they
 *    are empty, migrates the schema to the archive's level, inserts every row, migrates to
 *    this server's level, audits the restore, verifies everything (verify-restored.ts), and
 *    only then commits. A failure at any step rolls all of it back, schema included.
 *    PGlite: the same transaction runs in a fresh directory beside the target, which is moved
 *    into place only after it committed and closed; the data-dir lock keeps servers out.
 * 3. A master key file created here is removed again if the restore fails.
 */
export async function restoreArchive(options: RestoreArchiveOptions): Promise<RestoreSummary> {
  const archive = await openArchive(options.file, options.passphrase);
  try {
    const manifest = await readAndCheck(archive);
    const destination = await destinationKey(options.masterKeyFile, options.database);
    try {
      const transfer = transferKeyring(manifest);
      const job: RestoreJob = {
        archive,
        manifest,
        transfer,
        destination: destination.keyring,
        now: options.now ?? new Date(),
      };
      let restored: RestoredCounts;
      try {
        restored =
          'databaseUrl' in options.database
            ? await restoreIntoPostgres(options.database, job)
            : await restoreIntoPglite(options.database.dataDir, job);
      } finally {
        transfer.destroy();
      }
      return {
        archiveId: manifest.archiveId,
        createdAt: manifest.createdAt,
        source: manifest.source,
        engine: 'databaseUrl' in options.database ? 'postgres' : 'pglite',
        masterKey: {
          file: options.masterKeyFile,
          created: destination.created,
          activeVersion: destination.keyring.activeVersion,
          fingerprint: keyFingerprint(destination.keyring.active().key),
        },
        restored,
      };
    } catch (error) {
      if (destination.created) await rm(options.masterKeyFile, { force: true });
      throw error;
    } finally {
      destination.keyring.destroy();
    }
  } finally {
    zeroize(archive.contentKey);
  }
}

interface RestoreJob {
  archive: OpenedArchive;
  manifest: ArchiveManifest;
  transfer: Keyring;
  destination: Keyring;
  now: Date;
}

/** Pass 1: authenticate and parse the whole archive without touching anything. */
async function readAndCheck(archive: OpenedArchive): Promise<ArchiveManifest> {
  const reader = new PayloadReader();
  for await (const chunk of readArchiveChunks(archive)) {
    for (const _ of reader.push(chunk)) {
      // Rows are only counted here.
    }
  }
  reader.finish();
  return reader.manifest;
}

function transferKeyring(manifest: ArchiveManifest): Keyring {
  const key = Buffer.from(manifest.transferKey, 'base64');
  try {
    if (key.length !== 32 || key.toString('base64') !== manifest.transferKey) {
      throw new CrateError('ERR_DECRYPT', 'the archive manifest holds a malformed transfer key');
    }
    return Keyring.create([{ version: TRANSFER_KEY_VERSION, key }], TRANSFER_KEY_VERSION);
  } finally {
    zeroize(key);
  }
}

/**
 * This host's master key: the existing file (with the server's checks), or a new one written
 * exclusively with mode 0400, never inside the data directory.
 */
async function destinationKey(
  path: string,
  database: DatabaseOptions,
): Promise<{ keyring: Keyring; created: boolean }> {
  const dataDir = 'dataDir' in database ? database.dataDir : undefined;
  try {
    await stat(path);
    return {
      keyring: await new FileMasterKeyProvider(path, dataDir ? { dataDir } : {}).load(),
      created: false,
    };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const configDir = dirname(path);
  await mkdir(configDir, { recursive: true, mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    throw new CrateError(
      'ERR_USAGE',
      `cannot create ${configDir} for the master key file (${error.code ?? 'error'}): name a writable place with --master-key-file`,
    );
  });
  if (dataDir) {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const [realConfig, realData] = await Promise.all([realpath(configDir), realpath(dataDir)]);
    if ((await isInside(realConfig, realData)) || (await isInside(realData, realConfig))) {
      throw new CrateError(
        'ERR_MASTER_KEY_INSECURE',
        `the master key file's directory (${configDir}) and the data dir (${dataDir}) must be separate, ` +
          'neither inside the other: a copy of the data must never carry the master key',
      );
    }
  }
  const keyring = generateKeyring();
  try {
    const handle = await open(path, 'wx', 0o600).catch((error: NodeJS.ErrnoException) => {
      throw new CrateError(
        'ERR_USAGE',
        `cannot create the master key file ${path} (${error.code ?? 'error'}): name a writable place with --master-key-file`,
      );
    });
    try {
      await handle.writeFile(serializeMasterKeyFile(keyring));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await chmod(path, 0o400);
    await syncDirectory(configDir);
    return { keyring, created: true };
  } catch (error) {
    keyring.destroy();
    throw error;
  }
}

async function restoreIntoPostgres(
  database: Extract<DatabaseOptions, { databaseUrl: string }>,
  job: RestoreJob,
): Promise<RestoredCounts> {
  const { database: opened } = await openDatabase(
    { databaseUrl: database.databaseUrl, maxConnections: 1 },
    'crate-server archive restore',
  );
  try {
    return await opened.db.transaction().execute((trx) => restoreRows(trx, job, true));
  } finally {
    await opened.close();
  }
}

async function restoreIntoPglite(dataDir: string, job: RestoreJob): Promise<RestoredCounts> {
  const lock = await lockDataDir(dataDir, 'crate-server archive restore');
  const suffix = randomBytes(6).toString('hex');
  const staging = join(dataDir, `${STAGING_PREFIX}${suffix}`);
  const replaced = join(dataDir, `${REPLACED_PREFIX}${suffix}`);
  try {
    // Left by a restore that was killed: nobody else can be using them while we hold the lock.
    for (const name of await readdir(dataDir)) {
      if (name.startsWith(STAGING_PREFIX) || name.startsWith(REPLACED_PREFIX)) {
        await rm(join(dataDir, name), { recursive: true, force: true });
      }
    }
    const target = pgliteDirectory(dataDir);
    const targetExists = await stat(target).then(
      () => true,
      () => false,
    );
    if (targetExists) {
      // Refuse early, before building anything; the staging database is checked again anyway.
      const existing = await createDatabase({ dataDir });
      try {
        await existing.db.transaction().execute((trx) => assertEmpty(trx, false));
      } finally {
        await existing.close();
      }
    }
    const fresh = await createDatabase({ dataDir: staging });
    let restored: RestoredCounts;
    try {
      restored = await fresh.db.transaction().execute((trx) => restoreRows(trx, job, false));
    } finally {
      await fresh.close();
    }
    // The empty database that was there (if any) steps aside, then the new one takes its place.
    if (targetExists) await rename(target, replaced);
    await rename(pgliteDirectory(staging), target);
    await syncDirectory(dataDir);
    return restored;
  } finally {
    await rm(staging, { recursive: true, force: true });
    await rm(replaced, { recursive: true, force: true });
    await lock.release();
  }
}

/** The one transaction of a restore; see restoreArchive. */
async function restoreRows(
  trx: Transaction<Database>,
  job: RestoreJob,
  lockTables: boolean,
): Promise<RestoredCounts> {
  const { manifest } = job;
  await assertEmpty(trx, lockTables);
  // The nonce-budget triggers (rotation/nonce-budget.ts) skip this transaction: the rows were
  // counted at the source, and their key_usage counters travel in the archive.
  await sql`select set_config('crate.restoring', 'on', true)`.execute(trx);
  await migrateToArchiveLevel(trx, manifest.migrations);
  await assertSameTables(trx, manifest);

  const destination = job.destination.active();
  const reader = new PayloadReader();
  let batch: { table: string; rows: string[]; bytes: number } | undefined;
  const flush = async () => {
    if (!batch || batch.rows.length === 0) return;
    const json = `[${batch.rows.join(',')}]`;
    await sql`insert into ${sql.table(batch.table)} select * from json_populate_recordset(null::${sql.table(
      batch.table,
    )}, ${json}::json)`.execute(trx);
    batch = undefined;
  };
  for await (const chunk of readArchiveChunks(job.archive)) {
    for (const { table, row } of reader.push(chunk)) {
      if (MASTER_WRAPPED[table]) {
        rewrapRow(
          table,
          row,
          job.transfer,
          destination,
          (what, cause) =>
            new CrateError(
              'ERR_DECRYPT',
              `the archive's key material does not open the ${what}; nothing was restored`,
              { cause },
            ),
        );
      }
      if (batch && batch.table !== table) await flush();
      const text = JSON.stringify(row);
      batch ??= { table, rows: [], bytes: 0 };
      batch.rows.push(text);
      batch.bytes += text.length;
      if (batch.rows.length >= BATCH_ROWS || batch.bytes >= BATCH_BYTES) await flush();
    }
  }
  await flush();
  reader.finish();

  await migrateToLatest(trx);
  await ensureAuditKey(trx, job.destination);
  await auditRestore(trx, job);
  return verifyRestored(trx, job.destination);
}

/**
 * Every Crate table must be empty: an archive is never merged into data. On Postgres the
 * tables are first locked exclusively, so a server starting meanwhile waits for the commit.
 */
async function assertEmpty(trx: Transaction<Database>, lockTables: boolean): Promise<void> {
  const tables = await listTables(trx);
  if (tables.length === 0) return;
  if (lockTables) {
    await sql`lock table ${sql.join(tables.map((t) => sql.table(t.name)))} in access exclusive mode`.execute(
      trx,
    );
  }
  const holding: string[] = [];
  for (const table of tables) {
    const result = await sql<{ present: boolean }>`select exists (select 1 from ${sql.table(
      table.name,
    )}) as present`.execute(trx);
    if (result.rows[0]?.present) holding.push(table.name);
  }
  if (holding.length > 0) {
    throw new CrateError(
      'ERR_CONFLICT',
      `the target database is not empty (${holding.join(', ')} hold rows): an archive is restored only into ` +
        'an empty database, never merged. Create a new database (or data dir) and restore there; nothing was changed',
    );
  }
}

async function migrateToArchiveLevel(
  trx: Transaction<Database>,
  migrations: string[],
): Promise<void> {
  const migrator = createMigrator(trx);
  const known = (await migrator.getMigrations()).map((m) => m.name);
  const unknown = migrations.filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    throw new CrateError(
      'ERR_FORMAT_UNSUPPORTED',
      `the archive comes from a newer crate-server (its schema has migrations this one does not know: ${unknown.join(', ')}); ` +
        'restore it with that version or later',
    );
  }
  if (migrations.some((name, i) => known[i] !== name)) {
    throw new CrateError(
      'ERR_FORMAT_UNSUPPORTED',
      'the archive schema history does not match this crate-server migrations',
    );
  }
  const last = migrations.at(-1);
  if (last === undefined) {
    throw new CrateError('ERR_FORMAT_UNSUPPORTED', 'the archive holds no Crate schema');
  }
  const { error } = await migrator.migrateTo(last);
  if (error) throw error;
}

/** The destination schema, at the archive's migration level, must have the archive's columns. */
async function assertSameTables(
  trx: Transaction<Database>,
  manifest: ArchiveManifest,
): Promise<void> {
  const here = new Map((await listTables(trx)).map((t) => [t.name, t.columns]));
  for (const table of manifest.tables) {
    const columns = here.get(table.name);
    if (
      !columns ||
      columns.length !== table.columns.length ||
      !table.columns.every((c) => columns.includes(c))
    ) {
      throw new CrateError(
        'ERR_FORMAT_UNSUPPORTED',
        `the archive's table ${table.name} does not match this schema at the same migration level`,
      );
    }
  }
}

/** The restore itself goes into the system audit chain, in the same transaction. */
async function auditRestore(trx: Transaction<Database>, job: RestoreJob): Promise<void> {
  const row = await findActiveAuditKey(trx);
  if (!row || row.wrapped_private_key === null) {
    throw new CrateError('ERR_AUDIT_UNAVAILABLE', 'no active audit signing key after restore');
  }
  const der = unwrapPrivateKey(job.destination, row.wrapped_private_key, {
    orgId: 'system',
    keyId: row.id,
    keyKind: 'audit',
  });
  let privateKey: ReturnType<typeof importSigningPrivateKey>;
  try {
    privateKey = importSigningPrivateKey(der);
  } finally {
    zeroize(der);
  }
  const head = await lockChainHead(trx, SYSTEM_CHAIN, AUDIT_GENESIS_HASH);
  const body: AuditEntryBody = {
    chain: SYSTEM_CHAIN,
    seq: head.seq + 1,
    time: job.now.toISOString(),
    requestId: `archive_${job.manifest.archiveId}`,
    actor: 'crate-server:archive-restore',
    orgId: null,
    project: null,
    environment: null,
    action: 'archive.restore',
    target: job.manifest.archiveId,
    outcome: 'success',
    clientAddress: null,
    code: null,
  };
  const hash = computeAuditHash(head.hash, body);
  await insertEntries(trx, [
    { body, prevHash: head.hash, hash, signature: signAuditHash(privateKey, hash), keyId: row.id },
  ]);
  await advanceChainHead(trx, SYSTEM_CHAIN, { seq: body.seq, hash });
}
