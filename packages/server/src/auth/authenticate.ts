import { CrateError, constantTimeEqual } from '@crate/crypto-core';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { Principal } from './principal.js';
import { hashTokenSecret, parseToken } from './token-format.js';
import { findTokenWithUser, touchToken } from './tokens.repository.js';

// Compared against when the id is unknown, so an unknown id costs the same work as a wrong secret.
const DUMMY_HASH = hashTokenSecret('crate-unknown-token-dummy-secret-0000000000000');
// last_used_at is advisory: writing it on every request would add a write to every read.
const TOUCH_INTERVAL_MS = 60_000;

export interface AuthenticationFailure {
  error: CrateError;
  /** The public id of a well-formed token, for the audit entry's actor. */
  tokenId?: string;
}

export type AuthenticationResult = { principal: Principal } | AuthenticationFailure;

export async function authenticate(
  db: Kysely<Database>,
  authorization: string | undefined,
  now: Date,
): Promise<AuthenticationResult> {
  if (!authorization) {
    return { error: new CrateError('ERR_UNAUTHENTICATED', 'send Authorization: Bearer <token>') };
  }
  const match = /^Bearer ([^\s]+)$/.exec(authorization);
  const parsed = match ? parseToken(match[1]!) : undefined;
  if (!parsed) {
    return {
      error: new CrateError(
        'ERR_UNAUTHENTICATED',
        'the Authorization header does not carry a Crate token',
      ),
    };
  }
  const row = await findTokenWithUser(db, parsed.id);
  const presented = hashTokenSecret(parsed.secret);
  const matches = constantTimeEqual(presented, row?.secret_hash ?? DUMMY_HASH);
  if (!row || !matches || row.kind !== parsed.kind) {
    return {
      error: new CrateError('ERR_UNAUTHENTICATED', 'unknown token'),
      tokenId: parsed.id,
    };
  }
  if (row.revoked_at !== null) {
    return {
      error: new CrateError('ERR_TOKEN_REVOKED', 'this token was revoked'),
      tokenId: row.id,
    };
  }
  if (row.expires_at !== null && row.expires_at.getTime() <= now.getTime()) {
    return {
      error: new CrateError('ERR_TOKEN_EXPIRED', 'this token has expired'),
      tokenId: row.id,
    };
  }
  if (!row.last_used_at || now.getTime() - row.last_used_at.getTime() > TOUCH_INTERVAL_MS) {
    await touchToken(db, row.id, now);
  }
  if (row.kind === 'pat') {
    if (row.user_email === null) {
      return { error: new CrateError('ERR_UNAUTHENTICATED', 'unknown token'), tokenId: row.id };
    }
    return {
      principal: { kind: 'user', tokenId: row.id, userId: row.user_id!, email: row.user_email },
    };
  }
  return {
    principal: {
      kind: 'service',
      tokenId: row.id,
      name: row.name,
      orgId: row.org_id!,
      projectId: row.project_id!,
      environmentId: row.environment_id!,
      access: row.access!,
    },
  };
}
