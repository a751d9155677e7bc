import { CrateError, type ErrorCode } from '@crate/crypto-core';

/**
 * Exit codes, taken from BSD sysexits(3) so scripts can tell failure kinds apart.
 * A child run by `crate run` passes its own exit code through instead.
 */
export const EXIT = {
  ok: 0,
  /** The command line, a file or a value given to the CLI is wrong. */
  usage: 64,
  /** A signature, seal, bundle or audit chain did not verify: possible tampering. */
  dataError: 65,
  /** The org, project, environment, secret or token does not exist (for this token). */
  notFound: 66,
  /** The server cannot be reached, or it reports that it cannot serve (database, master key). */
  unavailable: 69,
  /** The server failed internally, or the CLI hit an unexpected error. */
  software: 70,
  /** A temporary condition: try again shortly. */
  tempFail: 75,
  /** Not logged in, token expired or revoked, or not allowed to do this. */
  noPermission: 77,
  /** The configuration is missing or unusable (no server, refused http://, unreadable files). */
  config: 78,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export function exitCodeFor(code: ErrorCode): ExitCode {
  switch (code) {
    case 'ERR_USAGE':
    case 'ERR_BAD_REQUEST':
    case 'ERR_INVALID_SECRET_NAME':
    case 'ERR_PAYLOAD_TOO_LARGE':
    case 'ERR_CONFLICT':
    case 'ERR_KDF_PARAMS_REJECTED':
    case 'ERR_SHARES_INSUFFICIENT':
    case 'ERR_SHARES_MISMATCHED':
    case 'ERR_SHARE_CORRUPT':
    case 'ERR_KEYRING_INVALID':
      return EXIT.usage;
    case 'ERR_DECRYPT':
    case 'ERR_BUNDLE_SIGNATURE':
    case 'ERR_SEAL_INVALID':
    case 'ERR_UNSEALED_WRITE':
    case 'ERR_SEALING_KEY_CHANGED':
    case 'ERR_EPHEMERAL_KEY_REJECTED':
    case 'ERR_AUDIT_CHAIN_BROKEN':
    case 'ERR_FORMAT_UNSUPPORTED':
    case 'ERR_INTEGRITY':
      return EXIT.dataError;
    case 'ERR_NOT_FOUND':
      return EXIT.notFound;
    case 'ERR_NETWORK':
    case 'ERR_DATABASE_UNAVAILABLE':
    case 'ERR_AUDIT_UNAVAILABLE':
    case 'ERR_MASTER_KEY_MISSING':
    case 'ERR_MASTER_KEY_INSECURE':
    case 'ERR_MASTER_KEY_MISMATCH':
    case 'ERR_MASTER_KEY_VERSION_MISSING':
    case 'ERR_NONCE_BUDGET_EXHAUSTED':
      return EXIT.unavailable;
    case 'ERR_INTERNAL':
    case 'ERR_KEY_VERSION_UNKNOWN':
    case 'ERR_CHILD_FAILED':
      return EXIT.software;
    case 'ERR_RATE_LIMITED':
    case 'ERR_ROTATION_IN_PROGRESS':
    case 'ERR_DATABASE_LOCKED':
    case 'ERR_SEALING_KEY_STALE':
      return EXIT.tempFail;
    case 'ERR_UNAUTHENTICATED':
    case 'ERR_TOKEN_EXPIRED':
    case 'ERR_TOKEN_REVOKED':
    case 'ERR_FORBIDDEN':
    case 'ERR_INVITATION_INVALID':
    case 'ERR_INVITATION_SIGN_IN_REQUIRED':
      return EXIT.noPermission;
    case 'ERR_CONFIG':
    case 'ERR_INSECURE_TRANSPORT':
    case 'ERR_DATA_DIR_NOT_WRITABLE':
      return EXIT.config;
    default: {
      const unhandled: never = code;
      return unhandled;
    }
  }
}

/** What to do next, per code. The message of the error says what happened. */
export function hintFor(code: ErrorCode): string | undefined {
  switch (code) {
    case 'ERR_USAGE':
      return 'Run the command with --help to see its arguments and examples.';
    case 'ERR_INVALID_SECRET_NAME':
      return 'Secret names are environment variable names: a letter or _, then letters, digits or _ (at most 256).';
    case 'ERR_BAD_REQUEST':
      return 'The server rejected the request as malformed; check the arguments, or the CLI and server versions.';
    case 'ERR_PAYLOAD_TOO_LARGE':
      return 'Send fewer or smaller values at a time.';
    case 'ERR_CONFLICT':
      return 'It already exists, or another change won a race; check the current state and retry.';
    case 'ERR_DECRYPT':
    case 'ERR_BUNDLE_SIGNATURE':
      return 'The response did not verify. Something between you and the server may be altering traffic; do not retry through it. If it persists on a trusted network, report it to the server operator.';
    case 'ERR_SEAL_INVALID':
    case 'ERR_UNSEALED_WRITE':
      return 'The server could not open the sealed value. Run `crate keys show` to compare the pinned key with the server, then retry.';
    case 'ERR_SEALING_KEY_CHANGED':
      return 'Confirm the new fingerprint with your server operator out of band, then run `crate keys trust` to accept it.';
    case 'ERR_EPHEMERAL_KEY_REJECTED':
      return 'The server refused the one-time retrieval key; check that the CLI and server versions match.';
    case 'ERR_AUDIT_CHAIN_BROKEN':
      return 'The audit log has been altered. Preserve the database and tell the server operator.';
    case 'ERR_FORMAT_UNSUPPORTED':
      return 'The data uses a format this CLI does not know; upgrade the CLI.';
    case 'ERR_INTEGRITY':
      return "The server's stored data failed its integrity check (changed outside the server). Do not rely on this secret; tell the server operator, who finds the row in the server log.";
    case 'ERR_NOT_FOUND':
      return 'Check the org, project, environment and name (`crate session org show`, `--project`, `--env`).';
    case 'ERR_NETWORK':
      return 'Check the server URL (`crate whoami`, CRATE_SERVER) and your network; `--fallback` lets `crate run` use the last good bundle.';
    case 'ERR_DATABASE_UNAVAILABLE':
    case 'ERR_AUDIT_UNAVAILABLE':
    case 'ERR_MASTER_KEY_MISSING':
    case 'ERR_MASTER_KEY_INSECURE':
    case 'ERR_MASTER_KEY_MISMATCH':
    case 'ERR_MASTER_KEY_VERSION_MISSING':
    case 'ERR_NONCE_BUDGET_EXHAUSTED':
      return 'The server cannot serve requests right now; its operator can see why in `GET /healthz` and the server log.';
    case 'ERR_INTERNAL':
      return 'The server failed; its operator can find the request in the server log.';
    case 'ERR_KEY_VERSION_UNKNOWN':
    case 'ERR_CHILD_FAILED':
    // A crate-server start-up refusal, whose message names the directory and the fix.
    case 'ERR_DATA_DIR_NOT_WRITABLE':
      return undefined;
    case 'ERR_RATE_LIMITED':
    case 'ERR_ROTATION_IN_PROGRESS':
    case 'ERR_DATABASE_LOCKED':
    case 'ERR_SEALING_KEY_STALE':
      return 'This is temporary; try again in a moment.';
    case 'ERR_UNAUTHENTICATED':
      return 'Run `crate login`, or set CRATE_TOKEN.';
    case 'ERR_TOKEN_EXPIRED':
    case 'ERR_TOKEN_REVOKED':
      return 'Get a new token (`crate tokens create`, or ask an admin) and run `crate login` or set CRATE_TOKEN.';
    case 'ERR_FORBIDDEN':
      return 'Your role or token scope does not allow this; ask an org admin.';
    case 'ERR_INVITATION_INVALID':
      return 'Check the code you were given; if it is right, ask the admin who invited you for a new invitation.';
    case 'ERR_INVITATION_SIGN_IN_REQUIRED':
      return 'Log in with your existing account (`crate login`), then run `crate invitations accept` again.';
    case 'ERR_CONFIG':
      return 'Run `crate login --server URL`, or set CRATE_SERVER and CRATE_TOKEN.';
    case 'ERR_INSECURE_TRANSPORT':
      return 'Use an https:// URL. Plain http:// is allowed only to loopback addresses, or with --insecure-http on a network you trust.';
    case 'ERR_KDF_PARAMS_REJECTED':
    case 'ERR_SHARES_INSUFFICIENT':
    case 'ERR_SHARES_MISMATCHED':
    case 'ERR_SHARE_CORRUPT':
    case 'ERR_KEYRING_INVALID':
      return undefined;
    default: {
      const unhandled: never = code;
      return unhandled;
    }
  }
}

export function usageError(message: string): CrateError {
  return new CrateError('ERR_USAGE', message);
}

export interface ReportedError {
  exitCode: number;
  lines: string[];
}

/**
 * The one place an error becomes what the user sees. Expected errors (CrateError) get a
 * message and a next step, never a stack; anything else is a bug, shown with its stack
 * only when CRATE_DEBUG is set.
 */
export function describeError(error: unknown, debug: boolean): ReportedError {
  if (error instanceof CrateError) {
    const lines = [`crate: ${error.message} (${error.code})`];
    const hint = hintFor(error.code);
    if (hint) lines.push(hint);
    if (debug && error.stack) lines.push(error.stack);
    return { exitCode: exitCodeFor(error.code), lines };
  }
  const lines = [
    'crate: unexpected error: ' + (error instanceof Error ? error.message : String(error)),
  ];
  if (debug && error instanceof Error && error.stack) lines.push(error.stack);
  else lines.push('Set CRATE_DEBUG=1 for details, and report this as a bug.');
  return { exitCode: EXIT.software, lines };
}
