import { CrateError, constantTimeEqual } from '@crate/crypto-core';
import type { Kysely } from 'kysely';
import { SYSTEM_CHAIN } from '../audit/audit.writer.js';
import { AccessDenied } from '../auth/authorize.js';
import { roleAllows } from '../auth/policy.js';
import { actorOf, type Principal } from '../auth/principal.js';
import { issueToken } from '../auth/token-format.js';
import { insertPersonalToken } from '../auth/tokens.repository.js';
import type { Database, Invitation, Role } from '../db/schema.js';
import { inTransaction } from '../db/transaction.js';
import type { RouteAuditEvent } from '../http/route.js';
import { newId } from '../lib/ids.js';
import {
  findMemberByEmail,
  findMembership,
  findUserByEmail,
  insertMembership,
  insertUser,
} from '../members/members.repository.js';
import {
  hashInvitationCode,
  type InvitationTerms,
  issueInvitationCode,
  parseInvitationCode,
} from './invitation-code.js';
import {
  consumeInvitation,
  findInvitation,
  insertInvitation,
  revokePendingInvitationOf,
} from './invitations.repository.js';

/** A week: long enough to hand a code over, short enough that a forgotten one does not linger. */
export const DEFAULT_INVITATION_LIFETIME_SECONDS = 7 * 86_400;
export const MIN_INVITATION_LIFETIME_SECONDS = 1;
export const MAX_INVITATION_LIFETIME_SECONDS = 30 * 86_400;

/**
 * The one answer to every code that cannot be used: mistyped, unknown, expired, used, revoked,
 * or presented with the token of another account than the invited one. One code and one message,
 * so that the answer tells nothing about which it was.
 */
const INVITATION_INVALID_MESSAGE =
  'this invitation code cannot be used: it is wrong, expired, already used or revoked, or it was not issued to the account presenting it';

// Compared against when the code names no invitation, so that case costs the same work.
const DUMMY_TERMS: InvitationTerms = {
  id: 'aaaaaaaaaaaaaaaa',
  orgId: 'org_00000000000000000000000000000000',
  email: 'nobody@invalid',
  role: 'viewer',
  expiresAt: new Date(0),
};
const DUMMY_HASH = hashInvitationCode(
  'crate-unknown-invitation-dummy-secret-00000000',
  DUMMY_TERMS,
);

type InvitationState = 'pending' | 'accepted' | 'revoked' | 'expired';

function invitationState(row: Invitation, now: Date): InvitationState {
  if (row.accepted_at !== null) return 'accepted';
  if (row.revoked_at !== null) return 'revoked';
  if (row.expires_at.getTime() <= now.getTime()) return 'expired';
  return 'pending';
}

export function serializeInvitation(row: Invitation, now: Date) {
  return {
    id: row.id,
    email: row.email,
    role: row.role,
    state: invitationState(row, now),
    invitedBy: row.invited_by,
    createdAt: row.created_at.toISOString(),
    expiresAt: row.expires_at.toISOString(),
    acceptedAt: row.accepted_at?.toISOString() ?? null,
    revokedAt: row.revoked_at?.toISOString() ?? null,
  };
}

function termsOf(row: Invitation): InvitationTerms {
  return {
    id: row.id,
    orgId: row.org_id,
    email: row.email,
    role: row.role,
    expiresAt: row.expires_at,
  };
}

export interface CreatedInvitation {
  invitation: Invitation;
  /** The one-time code, shown to the inviting admin once; only its hash is stored. */
  code: string;
}

/**
 * Whether a member with `inviterRole` may invite someone as `role`: up to their own role, so an
 * admin can invite admins, developers and viewers, and only an owner can invite an owner (owners
 * outrank admins: they alone change roles and rotate the org's keys).
 */
export function assertMayGrant(inviterRole: Role, role: Role): void {
  if (!roleAllows(inviterRole, role)) {
    throw new AccessDenied(
      'ERR_FORBIDDEN',
      `the ${inviterRole} role cannot invite an ${role}: only an ${role} can`,
    );
  }
}

/**
 * Invites `email` (lowercased by the caller) to the org with `role`. Whether the email has an
 * account is never looked up, so the answer (and its timing) is the same for both; only this
 * org's own members are consulted, which its admins can list anyway. A pending invitation of
 * the same email is replaced.
 */
export async function createInvitation(
  db: Kysely<Database>,
  input: {
    orgId: string;
    invitedBy: string;
    email: string;
    role: Role;
    lifetimeSeconds: number;
    now: Date;
  },
): Promise<CreatedInvitation> {
  const issued = issueInvitationCode();
  // Whole milliseconds, as the hash binds them: what Postgres stores is what is hashed.
  const expiresAt = new Date(input.now.getTime() + input.lifetimeSeconds * 1000);
  const terms: InvitationTerms = {
    id: issued.id,
    orgId: input.orgId,
    email: input.email,
    role: input.role,
    expiresAt,
  };
  const invitation = await inTransaction(db, async (trx) => {
    if (await findMemberByEmail(trx, input.orgId, input.email)) {
      throw new CrateError(
        'ERR_CONFLICT',
        `${input.email} is already a member of this organization`,
      );
    }
    await revokePendingInvitationOf(trx, input.orgId, input.email, input.now);
    await insertInvitation(trx, {
      id: issued.id,
      org_id: input.orgId,
      email: input.email,
      role: input.role,
      code_hash: issued.hashFor(terms),
      invited_by: input.invitedBy,
      created_at: input.now,
      expires_at: expiresAt,
    });
    return (await findInvitation(trx, issued.id))!;
  });
  return { invitation, code: issued.code };
}

export interface AcceptedInvitation {
  invitationId: string;
  org: { id: string; name: string };
  role: Role;
  user: { id: string; email: string };
  accountCreated: boolean;
  /** A new account's first token, shown once; null when an existing account accepted. */
  token: string | null;
}

/**
 * Accepts an invitation with its code: the caller becomes a member with the invited role.
 * With a personal token, the token's user must be the invited email. Without one, the invited
 * email must have no account yet: one is created with its first token. Every outcome is audited
 * through `audit` before anything changes: a genuine code in its org's chain (where the org's
 * admins see it), anything else in the system chain, so that guesses cannot write into an org's
 * chain.
 */
export async function acceptInvitation(
  db: Kysely<Database>,
  input: {
    code: string;
    principal: Principal | undefined;
    now: Date;
    audit: (event: RouteAuditEvent) => Promise<void>;
  },
): Promise<AcceptedInvitation> {
  const { principal, now, audit } = input;
  const parsed = parseInvitationCode(input.code);
  const row = parsed ? await findInvitation(db, parsed.id) : undefined;
  const presented = hashInvitationCode(parsed?.secret ?? '', row ? termsOf(row) : DUMMY_TERMS);
  const genuine = constantTimeEqual(presented, row?.code_hash ?? DUMMY_HASH) && row !== undefined;
  const callerActor = principal ? actorOf(principal) : 'anonymous';
  const refuse = async (chain: string, orgId: string | null, error: CrateError): Promise<never> => {
    await audit({
      chain,
      actor: callerActor,
      orgId,
      target: parsed?.id ?? null,
      outcome: 'denied',
      code: error.code,
    });
    throw error;
  };
  const invalid = new CrateError('ERR_INVITATION_INVALID', INVITATION_INVALID_MESSAGE);
  if (!genuine) return refuse(SYSTEM_CHAIN, null, invalid);
  const invitation = row!;
  const orgChain = invitation.org_id;
  if (invitationState(invitation, now) !== 'pending') return refuse(orgChain, orgChain, invalid);
  if (principal !== undefined) {
    if (principal.kind !== 'user' || principal.email.toLowerCase() !== invitation.email) {
      return refuse(orgChain, orgChain, invalid);
    }
    if (await findMembership(db, invitation.org_id, principal.userId)) {
      return refuse(
        orgChain,
        orgChain,
        new CrateError('ERR_CONFLICT', 'this account is already a member of that organization'),
      );
    }
  } else if (await findUserByEmail(db, invitation.email)) {
    // Only the holder of a genuine code gets here, and the code already names the email.
    return refuse(
      orgChain,
      orgChain,
      new CrateError(
        'ERR_INVITATION_SIGN_IN_REQUIRED',
        'this invitation is for an email that already has an account: accept it signed in with ' +
          "that account's token (crate login, then crate invitations accept)",
      ),
    );
  }

  const userId = principal?.kind === 'user' ? principal.userId : newId('usr');
  await audit({
    chain: orgChain,
    actor: `user:${userId}`,
    orgId: orgChain,
    target: `${invitation.id} as ${invitation.role}`,
    outcome: 'success',
    code: null,
  });
  return inTransaction(db, async (trx) => {
    // First, so that of two racing acceptances the second waits on this row and then finds it
    // used: the statement re-checks pending and unexpired, and a code is used once.
    if (!(await consumeInvitation(trx, invitation.id, userId, now))) throw invalid;
    let token: string | null = null;
    if (principal === undefined) {
      await insertUser(trx, { id: userId, email: invitation.email });
      const issued = issueToken('pat');
      await insertPersonalToken(trx, {
        id: issued.id,
        secretHash: issued.secretHash,
        userId,
        name: `first token of ${invitation.email}`,
      });
      token = issued.token;
    }
    await insertMembership(trx, {
      org_id: invitation.org_id,
      user_id: userId,
      role: invitation.role,
    });
    const org = await trx
      .selectFrom('orgs')
      .select(['id', 'name'])
      .where('id', '=', invitation.org_id)
      .executeTakeFirstOrThrow();
    return {
      invitationId: invitation.id,
      org: { id: org.id, name: org.name },
      role: invitation.role,
      user: { id: userId, email: invitation.email },
      accountCreated: principal === undefined,
      token,
    };
  });
}
