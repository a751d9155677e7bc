import { CrateError, type ErrorCode } from '@crate/crypto-core';

/**
 * What an operator reads when the master key cannot open what the database holds: at start-up
 * (the refusal), at run time (every refused request and /healthz), and from admin commands.
 * One text everywhere, naming the likely causes and the remedies (docs/operations.md,
 * "Fail-closed states").
 */
export const MASTER_KEY_GUIDANCE =
  'Likely causes: the key file comes from another host or installation; it lacks a key version ' +
  'still in use (an older or newer copy of a rotated key file); or the database was copied, ' +
  'swapped or restored from another installation. Remedies: start with the key file that belongs ' +
  'to this database; if it is lost, recover it with `crate-server key-backup restore`; to move ' +
  'data between hosts, use `crate-server archive create` on the source and ' +
  "`crate-server archive restore` here (it re-wraps the keys under this host's key file). " +
  'See docs/operations.md, "Fail-closed states".';

export type MasterKeyFailureCode = 'ERR_MASTER_KEY_MISMATCH' | 'ERR_MASTER_KEY_VERSION_MISSING';

/**
 * The fail-closed error for an unwrap that failed with `cryptoCode` (ERR_KEY_VERSION_UNKNOWN:
 * the key file lacks the version; anything else: the key does not open it). `what` names the
 * record; pass a generic phrase when the message can reach a client of another tenant.
 */
export function masterKeyFailure(cryptoCode: ErrorCode, what: string, cause?: unknown): CrateError {
  const code: MasterKeyFailureCode =
    cryptoCode === 'ERR_KEY_VERSION_UNKNOWN'
      ? 'ERR_MASTER_KEY_VERSION_MISSING'
      : 'ERR_MASTER_KEY_MISMATCH';
  const problem =
    code === 'ERR_MASTER_KEY_VERSION_MISSING'
      ? `the master key file does not hold the key version that wrapped ${what}`
      : `the master key cannot unwrap ${what}: this key file does not belong to this database`;
  return new CrateError(code, `${problem}. ${MASTER_KEY_GUIDANCE}`, { cause });
}
