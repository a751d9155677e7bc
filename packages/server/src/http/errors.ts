import { CrateError, type ErrorCode, isCrateError } from '@crate/crypto-core';
import { isSqlError } from '../db/database-errors.js';

/**
 * The one place where error codes become HTTP statuses (docs/protocol.md, "Errors"). A code
 * that has no business reaching a client (a crypto-core failure on stored data, a CLI code)
 * is answered as ERR_INTERNAL so nothing about the failing step leaks.
 */
const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  ERR_BAD_REQUEST: 400,
  ERR_INVALID_SECRET_NAME: 400,
  ERR_UNSEALED_WRITE: 400,
  ERR_SEAL_INVALID: 400,
  ERR_EPHEMERAL_KEY_REJECTED: 400,
  ERR_UNAUTHENTICATED: 401,
  ERR_TOKEN_EXPIRED: 401,
  ERR_TOKEN_REVOKED: 401,
  ERR_FORBIDDEN: 403,
  ERR_INVITATION_INVALID: 403,
  ERR_INVITATION_SIGN_IN_REQUIRED: 401,
  ERR_NOT_FOUND: 404,
  ERR_CONFLICT: 409,
  ERR_SEALING_KEY_STALE: 409,
  ERR_ROTATION_IN_PROGRESS: 409,
  ERR_PAYLOAD_TOO_LARGE: 413,
  ERR_RATE_LIMITED: 429,
  ERR_MASTER_KEY_MISMATCH: 503,
  ERR_MASTER_KEY_VERSION_MISSING: 503,
  ERR_AUDIT_UNAVAILABLE: 503,
  ERR_DATABASE_UNAVAILABLE: 503,
  ERR_NONCE_BUDGET_EXHAUSTED: 503,
  // Stored state failed its integrity MAC (secrets/secret-integrity.ts): a server-side fault,
  // not the client's (so not 4xx), and not transient (so not 503, which invites retries).
  // Unlike ERR_INTERNAL its code and message reach the client, who must not take it for a
  // passing glitch.
  ERR_INTEGRITY: 500,
  ERR_INTERNAL: 500,
};

export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

export interface HttpError {
  status: number;
  body: ErrorBody;
}

const INTERNAL: HttpError = {
  status: 500,
  body: {
    error: { code: 'ERR_INTERNAL', message: 'internal error; the request id is in the server log' },
  },
};

/** Maps anything thrown by a route to the answer the client sees. */
export function toHttpError(error: unknown): HttpError {
  const crate = asCrateError(error);
  if (!crate) return INTERNAL;
  const status = HTTP_STATUS[crate.code];
  if (status === undefined || crate.code === 'ERR_INTERNAL') return INTERNAL;
  return { status, body: { error: { code: crate.code, message: crate.message } } };
}

export function httpStatusOf(code: ErrorCode): number | undefined {
  return HTTP_STATUS[code];
}

/**
 * Translates Fastify's own errors (validation, parsing, body size) and the SQL errors a route
 * lets through. Database outages arrive already as ERR_DATABASE_UNAVAILABLE: the database layer
 * converts them where they happen (db/database-errors.ts), so a socket error code here is
 * never taken for one (a client's ECONNRESET is not a database outage, see isClientAbort).
 */
function asCrateError(error: unknown): CrateError | undefined {
  if (isCrateError(error)) return error;
  if (isSqlError(error)) return fromSqlState(error.code);
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as {
    code?: unknown;
    validation?: unknown;
    message?: unknown;
    statusCode?: unknown;
  };
  if (e.validation !== undefined && typeof e.message === 'string') {
    // Ajv messages name the field and the rule, never the offending value.
    return new CrateError('ERR_BAD_REQUEST', e.message);
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new CrateError('ERR_PAYLOAD_TOO_LARGE', 'the request body is over the size limit');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      // Fixed text: the JSON parser's own message quotes part of the body, which may be a value.
      return new CrateError('ERR_BAD_REQUEST', 'the request body is not valid JSON');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new CrateError('ERR_BAD_REQUEST', 'send the body as application/json');
    default:
      if (e.statusCode === 400 && typeof e.code === 'string' && e.code.startsWith('FST_')) {
        return new CrateError('ERR_BAD_REQUEST', 'malformed request');
      }
      return undefined;
  }
}

function fromSqlState(state: string): CrateError | undefined {
  switch (state) {
    case '23505': // unique_violation: a concurrent request created the same record first
      return new CrateError('ERR_CONFLICT', 'already exists');
    case 'CR001': // the nonce budget trigger (rotation/nonce-budget.ts)
      return new CrateError(
        'ERR_NONCE_BUDGET_EXHAUSTED',
        'this key version has reached its encryption limit; an administrator must rotate it',
      );
    case '40001': // serialization_failure and deadlock_detected, still there after the retries
    case '40P01': // of db/transaction.ts: honest concurrency, so 503 (try again), never 500
      return new CrateError(
        'ERR_DATABASE_UNAVAILABLE',
        'the database is busy with conflicting concurrent writes; try again',
      );
    default:
      return undefined;
  }
}

/** Where a failure came from, for the log line: the client, the database, or the server. */
export type ErrorOrigin = 'client' | 'database' | 'internal';

/**
 * True when the client went away while its request was read (a reset or half-sent body): Node
 * reports that as an error on the request stream, with code ECONNRESET and message 'aborted'.
 * Nobody is left to answer, and it is no fault of the server's or the database's.
 */
export function isClientAbort(
  error: unknown,
  request: { readonly destroyed: boolean; readonly readableAborted?: boolean },
): boolean {
  if (isCrateError(error) || isSqlError(error)) return false;
  const code = (error as { code?: unknown } | null)?.code;
  return (
    request.readableAborted === true ||
    (request.destroyed && (code === 'ECONNRESET' || code === 'ECONNABORTED'))
  );
}

export function originOf(error: unknown): ErrorOrigin {
  if (isSqlError(error)) return 'database';
  if (
    isCrateError(error, 'ERR_DATABASE_UNAVAILABLE') ||
    isCrateError(error, 'ERR_AUDIT_UNAVAILABLE')
  ) {
    return 'database';
  }
  return 'internal';
}
