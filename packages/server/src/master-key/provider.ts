import type { Keyring } from '@crate/crypto-core';

/**
 * Where the master key lives. The file provider reads a mounted key file; an HSM (PKCS#11)
 * or cloud KMS provider would implement the same interface, returning a Keyring whose
 * operations stay inside the device (`protectedAtRest: true`).
 */
export interface MasterKeyProvider {
  load(): Promise<Keyring>;
  describe(): MasterKeyDescription;
}

export type MasterKeySource = 'file' | 'environment';

export interface MasterKeyDescription {
  source: MasterKeySource;
  /** Where it came from, safe to print: a path or a variable name, never key material. */
  location: string;
  /** True only when the key never rests in clear on this host (HSM/KMS). A key file is not. */
  protectedAtRest: boolean;
  /** The development-only mode: key material in an environment variable. */
  insecureDevKey: boolean;
}

export const DEFAULT_MASTER_KEY_FILE = '/run/secrets/master.key';
/** Names the key file's path (never the key itself). */
export const MASTER_KEY_FILE_ENV = 'CRATE_MASTER_KEY_FILE';
/** Holds key material; honoured only with --insecure-dev-key-from-env. */
export const MASTER_KEY_ENV = 'CRATE_MASTER_KEY';
