import { randomBytes } from 'node:crypto';
import { access, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { CrateError, isCrateError } from '@crate/crypto-core';
import { createArchive } from '../archive/archive-create.js';
import { restoreArchive } from '../archive/archive-restore.js';
import { AuditWriter, SYSTEM_CHAIN } from '../audit/audit.writer.js';
import type { DatabaseOptions } from '../db/database.js';
import { KeyService } from '../keys/key.service.js';
import { UnsealState } from '../keys/unseal-state.js';
import { openDatabase } from '../server.js';
import { databaseFromFlags } from './database-option.js';
import { loadMasterKey, masterKeyPath } from './master-key-option.js';
import { readPassphrase } from './passphrase-input.js';

interface DatabaseFlags {
  dataDir?: string;
  databaseUrl?: string;
  masterKeyFile?: string;
  passphraseFile?: string;
  json?: boolean;
}

/** An embedded database held by a running server: say what to do about it. */
async function openForAdmin(database: DatabaseOptions, command: string) {
  try {
    return await openDatabase(database, command);
  } catch (error) {
    if (isCrateError(error, 'ERR_DATABASE_LOCKED')) {
      throw new CrateError(
        'ERR_DATABASE_LOCKED',
        `${error.message}. \`${command}\` needs the embedded database to itself: stop the server, run it, ` +
          'start the server again (with Postgres it runs beside servers)',
      );
    }
    throw error;
  }
}

export async function runArchiveCreate(flags: DatabaseFlags & { out: string }): Promise<void> {
  const database = databaseFromFlags(flags);
  const out = resolve(flags.out);
  if (
    await access(out).then(
      () => true,
      () => false,
    )
  ) {
    throw new CrateError('ERR_CONFLICT', `${out} already exists; choose another --out`);
  }
  await mkdir(dirname(out), { recursive: true, mode: 0o700 });
  const keyring = await loadMasterKey(
    flags.masterKeyFile,
    'dataDir' in database ? database.dataDir : undefined,
  );
  try {
    const passphrase = await readPassphrase({
      passphraseFile: flags.passphraseFile,
      purpose: 'the archive',
      creating: true,
    });
    const { database: opened, lock } = await openForAdmin(database, 'crate-server archive create');
    const keys = new KeyService(opened.db, keyring, new UnsealState());
    const audit = new AuditWriter(opened.db, () => keys.auditSigner());
    const archiveId = randomBytes(16).toString('hex');
    const event = {
      chain: SYSTEM_CHAIN,
      requestId: `archive_${archiveId}`,
      actor: 'crate-server:archive-create',
      orgId: null,
      project: null,
      environment: null,
      action: 'archive.create',
      target: archiveId,
      clientAddress: null,
    };
    try {
      // Audited before it happens, as every request is: no entry, no archive.
      await audit.append({ ...event, outcome: 'success', code: null });
      const started = Date.now();
      let summary: Awaited<ReturnType<typeof createArchive>>;
      try {
        summary = await createArchive({
          db: opened.db,
          engine: opened.engine,
          keyring,
          out,
          passphrase,
          archiveId,
        });
      } catch (error) {
        await audit
          .append({
            ...event,
            outcome: 'error',
            code: isCrateError(error) ? error.code : 'ERR_INTERNAL',
          })
          .catch(() => {});
        throw error;
      }
      const result = { ...summary, engine: opened.engine, durationMs: Date.now() - started };
      if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else {
        const rows = summary.tables.map((t) => `${t.name} ${t.rows}`).join(', ');
        process.stderr.write(
          [
            `Archive ${summary.archiveId} written to ${summary.file} (${summary.bytes} bytes, mode 0600).`,
            `  rows: ${rows}`,
            `  SHA-256 of the file: ${summary.sha256}`,
            'It holds every key and secret (encrypted) and opens with the passphrase alone: store the two apart.',
            '',
          ].join('\n'),
        );
      }
    } finally {
      await audit.close();
      keys.destroy();
      await opened.close();
      await lock?.release();
    }
  } finally {
    keyring.destroy();
  }
}

export async function runArchiveRestore(file: string, flags: DatabaseFlags): Promise<void> {
  const database = databaseFromFlags(flags);
  const path = resolve(file);
  const passphrase = await readPassphrase({
    passphraseFile: flags.passphraseFile,
    purpose: 'the archive',
    creating: false,
  });
  const started = Date.now();
  let summary: Awaited<ReturnType<typeof restoreArchive>>;
  try {
    summary = await restoreArchive({
      file: path,
      passphrase,
      database,
      masterKeyFile: masterKeyPath(flags.masterKeyFile),
    });
  } catch (error) {
    if (isCrateError(error, 'ERR_DATABASE_LOCKED')) {
      throw new CrateError(
        'ERR_DATABASE_LOCKED',
        `${error.message}. Stop the server before restoring into its data directory`,
      );
    }
    throw error;
  }
  const result = { ...summary, durationMs: Date.now() - started };
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const r = summary.restored;
  process.stderr.write(
    [
      `Restored archive ${summary.archiveId} (made ${summary.createdAt} on ${summary.source.engine}) into ${summary.engine}.`,
      `  ${r.orgs} organizations, ${r.secrets} secrets (${r.secretVersions} versions decrypted), ` +
        `${r.privateKeys} private keys, ${r.auditEntries} audit entries in ${r.auditChains} chains verified.`,
      `  keys re-wrapped under ${summary.masterKey.file} (${summary.masterKey.fingerprint}${summary.masterKey.created ? ', created now, mode 0400: BACK IT UP' : ''}).`,
      'Start the server with this database and key file. Tokens moved with the data.',
      '',
    ].join('\n'),
  );
}
