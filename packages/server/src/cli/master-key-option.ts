import { resolve } from 'node:path';
import type { Keyring } from '@crate/crypto-core';
import { FileMasterKeyProvider } from '../master-key/file-provider.js';
import { DEFAULT_MASTER_KEY_FILE, MASTER_KEY_FILE_ENV } from '../master-key/provider.js';

/** The key file a command uses: --master-key-file, else $CRATE_MASTER_KEY_FILE, else the default. */
export function masterKeyPath(flag: string | undefined): string {
  return resolve(flag ?? (process.env[MASTER_KEY_FILE_ENV] || DEFAULT_MASTER_KEY_FILE));
}

/** Loads it with the server's own checks (mode, format, not inside the data dir). */
export function loadMasterKey(flag: string | undefined, dataDir?: string): Promise<Keyring> {
  return new FileMasterKeyProvider(
    masterKeyPath(flag),
    dataDir === undefined ? {} : { dataDir },
  ).load();
}
