import { createHash, randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import { CrateError, type Keyring, keyFingerprint, zeroize } from '@crate/crypto-core';
import { type Kysely, sql } from 'kysely';
import type { DatabaseEngine } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { masterKeyFailure } from '../keys/unseal-guidance.js';
import { appliedMigrations, listTables } from './catalog.js';
import { ArchiveWriter } from './container.js';
import { assertMasterWrappedKnown, MASTER_WRAPPED, rewrapRow } from './master-wrapped.js';
import {
  ARCHIVE_FORMAT,
  ARCHIVE_PAYLOAD_VERSION,
  type ArchiveManifest,
  endLine,
  manifestLine,
  rowLine,
} from './payload.js';

/** The version of the transfer key as the archive's rows record it. */
export const TRANSFER_KEY_VERSION = 1;
const FETCH_ROWS = 2000;
const SERVER_VERSION = '0.1.0';

export interface CreateArchiveOptions {
  db: Kysely<Database>;
  engine: DatabaseEngine;
  /** The source master key: it opens the wrapped keys, which the archive re-wraps. */
  keyring: Keyring;
  out: string;
  passphrase: string;
  archiveId?: string;
  now?: Date;
}

export interface ArchiveSummary {
  file: string;
  bytes: number;
  sha256: string;
  archiveId: string;
  createdAt: string;
  migrations: string[];
  tables: { name: string; rows: number }[];
}

/**
 * Writes the whole database to an encrypted archive, from one snapshot: a read-only
 * REPEATABLE READ transaction, so that on Postgres, with servers writing beside it, every
 * table (and the audit chain with its head rows) is read at the same instant.
 *
 * Every row travels as stored (row_to_json: exact text of every column, bytea in hex,
 * timestamps with their offset), except the keys wrapped under the master key, which are
 * re-wrapped under a fresh transfer key carried in the (encrypted) manifest. The source
 * master key is never written; since every wrapped key must open to be re-wrapped, a key file
 * that does not match the database is refused here rather than discovered at restore.
 */
export async function createArchive(options: CreateArchiveOptions): Promise<ArchiveSummary> {
  const { db, keyring, out } = options;
  const archiveId = options.archiveId ?? randomBytes(16).toString('hex');
  const createdAt = (options.now ?? new Date()).toISOString();
  if (
    await access(out).then(
      () => true,
      () => false,
    )
  ) {
    throw new CrateError('ERR_CONFLICT', `${out} already exists; choose another --out`);
  }
  // The passphrase is stretched before the snapshot opens, so the transaction stays short.
  const writer = await ArchiveWriter.create(out, options.passphrase);
  const transferKey = randomBytes(32);
  try {
    const transfer = { version: TRANSFER_KEY_VERSION, key: transferKey };
    const shape = await db
      .transaction()
      .setIsolationLevel('repeatable read')
      .setAccessMode('read only')
      .execute(async (trx) => {
        // Fixed output settings: bytea in hex, timestamps rendered in UTC (with their offset).
        await sql`set local timezone = 'UTC'`.execute(trx);
        await sql`set local bytea_output = 'hex'`.execute(trx);
        const tables = await listTables(trx);
        assertMasterWrappedKnown(tables);
        const migrations = await appliedMigrations(trx);
        const counted: ArchiveManifest['tables'] = [];
        for (const table of tables) {
          const result = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(
            table.name,
          )}`.execute(trx);
          counted.push({ ...table, rows: result.rows[0]!.n });
        }
        const manifest: ArchiveManifest = {
          type: 'manifest',
          format: ARCHIVE_FORMAT,
          formatVersion: ARCHIVE_PAYLOAD_VERSION,
          archiveId,
          createdAt,
          createdBy: `crate-server ${SERVER_VERSION}`,
          source: {
            engine: options.engine,
            masterKey: {
              activeVersion: keyring.activeVersion,
              fingerprint: keyFingerprint(keyring.active().key),
            },
          },
          migrations,
          transferKey: transferKey.toString('base64'),
          tables: counted,
        };
        const payloadHash = createHash('sha256');
        const emit = async (line: Buffer) => {
          payloadHash.update(line);
          await writer.write(line);
        };
        await emit(manifestLine(manifest));
        for (const table of counted) {
          const written = await dumpTable(trx, table.name, async (json) => {
            if (MASTER_WRAPPED[table.name]) {
              const row = JSON.parse(json);
              rewrapRow(table.name, row, keyring, transfer, (what, cause) =>
                masterKeyFailure(cause.code, what, cause),
              );
              json = JSON.stringify(row);
            }
            await emit(rowLine(table.name, json));
          });
          if (written !== table.rows) {
            throw new CrateError(
              'ERR_INTERNAL',
              `${table.name} changed during the snapshot (${written} rows, ${table.rows} counted)`,
            );
          }
        }
        // Not part of the checksum it carries.
        await writer.write(endLine(payloadHash.digest('hex')));
        return { migrations, tables: counted.map(({ name, rows }) => ({ name, rows })) };
      });
    const file = await writer.finish();
    return {
      file: file.path,
      bytes: file.bytes,
      sha256: file.sha256,
      archiveId,
      createdAt,
      ...shape,
    };
  } catch (error) {
    await writer.abort();
    throw error;
  } finally {
    // JavaScript gives no guarantee that no other copy exists (the manifest string holds one).
    zeroize(transferKey);
  }
}

/** Streams a table through a cursor in the caller's transaction; memory stays bounded. */
async function dumpTable(
  trx: Kysely<Database>,
  table: string,
  onRow: (json: string) => Promise<void>,
): Promise<number> {
  await sql`declare archive_rows no scroll cursor for select row_to_json(t)::text as j from ${sql.table(
    table,
  )} t`.execute(trx);
  let count = 0;
  try {
    for (;;) {
      const page = await sql<{
        j: string;
      }>`fetch forward ${sql.lit(FETCH_ROWS)} from archive_rows`.execute(trx);
      if (page.rows.length === 0) break;
      for (const { j } of page.rows) {
        await onRow(j);
        count += 1;
      }
    }
  } finally {
    await sql`close archive_rows`.execute(trx);
  }
  return count;
}
