import { chmod, mkdir, open, realpath, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CrateError, generateKeyring, serializeMasterKeyFile } from '@crate/crypto-core';
import { AuditWriter } from '../audit/audit.writer.js';
import { migrateToLatest } from '../db/migrate.js';
import { KeyService } from '../keys/key.service.js';
import { ensureAuditKey } from '../keys/org-keys.js';
import { UnsealState } from '../keys/unseal-state.js';
import { isInside } from '../master-key/file-provider.js';
import { countOrgs } from '../orgs/orgs.repository.js';
import { createOrganization } from '../orgs/orgs.service.js';
import { openDatabase } from '../server.js';
import { databaseFromFlags } from './database-option.js';

export interface InitFlags {
  configDir: string;
  dataDir?: string;
  databaseUrl?: string;
  org: string;
  ownerEmail: string;
  json?: boolean;
}

export const MASTER_KEY_FILE_NAME = 'master.key';

/**
 * Creates a master key file (0400) in the config dir, then the first org, its owner and the
 * owner's token, printed once. Refuses to overwrite a key file, to put config and data in one
 * place, or to initialise a database that already holds orgs (their keys need the old key).
 */
export async function runInit(flags: InitFlags): Promise<void> {
  const configDir = resolve(flags.configDir);
  const database = databaseFromFlags(flags);
  if ('dataDir' in database) {
    await mkdir(database.dataDir, { recursive: true, mode: 0o700 });
    await mkdir(configDir, { recursive: true, mode: 0o700 });
    const [realConfig, realData] = await Promise.all([
      realpath(configDir),
      realpath(database.dataDir),
    ]);
    if ((await isInside(realConfig, realData)) || (await isInside(realData, realConfig))) {
      throw new CrateError(
        'ERR_MASTER_KEY_INSECURE',
        `the config dir (${configDir}) and the data dir (${database.dataDir}) must be separate, neither inside the ` +
          'other: a copy of the data must never carry the master key',
      );
    }
  } else {
    await mkdir(configDir, { recursive: true, mode: 0o700 });
  }
  const keyFile = join(configDir, MASTER_KEY_FILE_NAME);
  // Create the file exclusively now, so an existing key file is never overwritten.
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(keyFile, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CrateError(
        'ERR_CONFLICT',
        `${keyFile} already exists; refusing to overwrite a master key (the data it wraps would be lost). ` +
          'Use another --config-dir for a new installation',
      );
    }
    throw error;
  }
  const keyring = generateKeyring();
  let written = false;
  try {
    const { database: opened, lock } = await openDatabase(database, 'crate-server init');
    try {
      const { db } = opened;
      await migrateToLatest(db);
      if ((await countOrgs(db)) > 0) {
        throw new CrateError(
          'ERR_CONFLICT',
          'this database is already initialised; its keys are wrapped under its existing master key. ' +
            'Start the server with that key file instead',
        );
      }
      await handle.writeFile(serializeMasterKeyFile(keyring));
      await handle.close();
      await chmod(keyFile, 0o400);
      written = true;
      await ensureAuditKey(db, keyring);
      const keys = new KeyService(db, keyring, new UnsealState());
      const audit = new AuditWriter(db, () => keys.auditSigner());
      const created = await createOrganization(db, keyring, audit, {
        name: flags.org,
        ownerEmail: flags.ownerEmail,
        actor: 'crate-server:init',
        requestId: 'init',
      });
      await audit.close();
      keys.destroy();
      const result = {
        org: { id: created.org.id, name: created.org.name },
        owner: created.owner,
        token: created.ownerToken,
        masterKeyFile: keyFile,
        dataDir: 'dataDir' in database ? database.dataDir : null,
      };
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
      } else {
        process.stderr.write(
          [
            `Created organization ${result.org.name} (${result.org.id}).`,
            `Master key file: ${keyFile} (mode 0400). Back it up: without it the data cannot be read.`,
            `Owner: ${result.owner.email}. Their token, shown only this once:`,
            '',
          ].join('\n'),
        );
        process.stdout.write(`${result.token}\n`);
      }
    } finally {
      await opened.close();
      await lock?.release();
    }
  } catch (error) {
    // A key file that wraps nothing would only block the next attempt.
    if (!written) {
      await handle.close().catch(() => {});
      await rm(keyFile, { force: true });
    }
    throw error;
  } finally {
    keyring.destroy();
  }
}
