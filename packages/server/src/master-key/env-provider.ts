import { CrateError, Keyring, parseMasterKeyFile } from '@crate/crypto-core';
import { MASTER_KEY_ENV, type MasterKeyDescription, type MasterKeyProvider } from './provider.js';

/**
 * Development only: the master key in CRATE_MASTER_KEY, either a whole master key file (JSON)
 * or one base64 32-byte key (taken as version 1). Environment variables leak into child
 * processes, crash reports and `ps e`; the server warns loudly and /healthz says so.
 */
export class EnvMasterKeyProvider implements MasterKeyProvider {
  readonly #env: NodeJS.ProcessEnv;

  constructor(env: NodeJS.ProcessEnv = process.env) {
    this.#env = env;
  }

  describe(): MasterKeyDescription {
    return {
      source: 'environment',
      location: MASTER_KEY_ENV,
      protectedAtRest: false,
      insecureDevKey: true,
    };
  }

  async load(): Promise<Keyring> {
    const text = this.#env[MASTER_KEY_ENV]?.trim();
    if (!text) {
      throw new CrateError(
        'ERR_MASTER_KEY_MISSING',
        `--insecure-dev-key-from-env was given but ${MASTER_KEY_ENV} is empty: set it, or drop the flag and use a key file`,
      );
    }
    if (text.startsWith('{')) return parseMasterKeyFile(text);
    const key = Buffer.from(text, 'base64');
    if (key.length !== 32 || key.toString('base64') !== text) {
      throw new CrateError(
        'ERR_KEYRING_INVALID',
        `${MASTER_KEY_ENV} must hold a master key file (JSON) or 32 bytes in base64`,
      );
    }
    return Keyring.create([{ version: 1, key }], 1);
  }
}

export const INSECURE_DEV_KEY_WARNING = [
  '!!! WARNING: the master key is being read from the CRATE_MASTER_KEY environment variable.',
  '!!! This is for development only: the key leaks to child processes, crash dumps and process',
  '!!! listings. Never run production like this; use --master-key-file with a 0400 key file.',
].join('\n');
