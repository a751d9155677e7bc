/**
 * One error class with a stable string code, shared by crypto-core, the server and the CLI.
 * Callers switch on `code`, never on `message`: messages may be reworded, codes may not.
 *
 * Failures an attacker can cause (bad tag, wrong key, wrong context, tampered envelope)
 * all surface as ERR_DECRYPT with one fixed message, so that a caller (or a remote peer
 * reading error responses) cannot tell which step failed.
 */
export const ERROR_CODES = [
  // crypto-core
  'ERR_DECRYPT',
  'ERR_KEY_VERSION_UNKNOWN',
  'ERR_KEYRING_INVALID',
  'ERR_FORMAT_UNSUPPORTED',
  'ERR_KDF_PARAMS_REJECTED',
  'ERR_EPHEMERAL_KEY_REJECTED',
  'ERR_BUNDLE_SIGNATURE',
  'ERR_SHARES_INSUFFICIENT',
  'ERR_SHARES_MISMATCHED',
  'ERR_SHARE_CORRUPT',
  'ERR_AUDIT_CHAIN_BROKEN',
  // server: requests
  'ERR_BAD_REQUEST',
  'ERR_UNAUTHENTICATED',
  'ERR_FORBIDDEN',
  'ERR_NOT_FOUND',
  'ERR_CONFLICT',
  'ERR_PAYLOAD_TOO_LARGE',
  'ERR_RATE_LIMITED',
  'ERR_UNSEALED_WRITE',
  'ERR_SEAL_INVALID',
  'ERR_SEALING_KEY_STALE',
  'ERR_INVALID_SECRET_NAME',
  'ERR_TOKEN_EXPIRED',
  'ERR_TOKEN_REVOKED',
  'ERR_INVITATION_INVALID',
  'ERR_INVITATION_SIGN_IN_REQUIRED',
  // server: state
  'ERR_MASTER_KEY_MISSING',
  'ERR_MASTER_KEY_INSECURE',
  'ERR_MASTER_KEY_MISMATCH',
  'ERR_MASTER_KEY_VERSION_MISSING',
  'ERR_AUDIT_UNAVAILABLE',
  'ERR_DATABASE_UNAVAILABLE',
  'ERR_DATABASE_LOCKED',
  'ERR_DATA_DIR_NOT_WRITABLE',
  'ERR_ROTATION_IN_PROGRESS',
  'ERR_NONCE_BUDGET_EXHAUSTED',
  'ERR_INTEGRITY',
  'ERR_INTERNAL',
  // cli
  'ERR_USAGE',
  'ERR_CONFIG',
  'ERR_NETWORK',
  'ERR_INSECURE_TRANSPORT',
  'ERR_SEALING_KEY_CHANGED',
  'ERR_CHILD_FAILED',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class CrateError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CrateError';
    this.code = code;
  }
}

/** The one message for every failure an attacker can provoke while opening a ciphertext. */
export const DECRYPT_FAILED_MESSAGE = 'decryption failed';

export function decryptError(cause?: unknown): CrateError {
  // The cause stays on the object for local debugging; it is never serialized by the server.
  return new CrateError('ERR_DECRYPT', DECRYPT_FAILED_MESSAGE, cause ? { cause } : undefined);
}

export function isCrateError(value: unknown, code?: ErrorCode): value is CrateError {
  return value instanceof CrateError && (code === undefined || value.code === code);
}
