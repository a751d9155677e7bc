import { CrateError } from '@crate/crypto-core';
import type { Kysely } from 'kysely';
import { issueToken } from '../auth/token-format.js';
import { insertPersonalToken } from '../auth/tokens.repository.js';
import type { Database, Role } from '../db/schema.js';
import { newId } from '../lib/ids.js';
import {
  deleteMembership,
  findMembership,
  findUserByEmail,
  insertMembership,
  insertUser,
  lockOwners,
  type MemberRow,
  updateRole,
} from './members.repository.js';

export interface AddedMember {
  member: MemberRow;
  /** The new user's first token, shown once; null when the user already existed. */
  token: string | null;
}

export async function addMember(
  db: Kysely<Database>,
  orgId: string,
  email: string,
  role: Role,
): Promise<AddedMember> {
  return db.transaction().execute(async (trx) => {
    let user = await findUserByEmail(trx, email);
    let token: string | null = null;
    if (!user) {
      user = { id: newId('usr'), email, created_at: new Date() };
      await insertUser(trx, { id: user.id, email });
      const issued = issueToken('pat');
      await insertPersonalToken(trx, {
        id: issued.id,
        secretHash: issued.secretHash,
        userId: user.id,
        name: `first token of ${email}`,
      });
      token = issued.token;
    } else if (await findMembership(trx, orgId, user.id)) {
      throw new CrateError('ERR_CONFLICT', `${email} is already a member of this organization`);
    }
    await insertMembership(trx, { org_id: orgId, user_id: user.id, role });
    const member = (await findMembership(trx, orgId, user.id))!;
    return { member, token };
  });
}

/** Changes a role; an org always keeps at least one owner. */
export async function changeRole(
  db: Kysely<Database>,
  orgId: string,
  userId: string,
  role: Role,
): Promise<MemberRow> {
  return db.transaction().execute(async (trx) => {
    const owners = await lockOwners(trx, orgId);
    const member = await findMembership(trx, orgId, userId);
    if (!member) throw new CrateError('ERR_NOT_FOUND', 'no such member');
    if (member.role === 'owner' && role !== 'owner' && owners.length === 1) {
      throw new CrateError(
        'ERR_CONFLICT',
        'the last owner cannot be demoted: make another member owner first',
      );
    }
    await updateRole(trx, orgId, userId, role);
    return { ...member, role };
  });
}

export async function removeMember(
  db: Kysely<Database>,
  orgId: string,
  userId: string,
): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const owners = await lockOwners(trx, orgId);
    const member = await findMembership(trx, orgId, userId);
    if (!member) throw new CrateError('ERR_NOT_FOUND', 'no such member');
    if (member.role === 'owner' && owners.length === 1) {
      throw new CrateError(
        'ERR_CONFLICT',
        'the last owner cannot be removed: make another member owner first',
      );
    }
    // Personal tokens stay valid for the user's other orgs; without the membership they no
    // longer reach this one.
    await deleteMembership(trx, orgId, userId);
  });
}

export function serializeMember(member: MemberRow) {
  return {
    userId: member.user_id,
    email: member.email,
    role: member.role,
    createdAt: member.created_at.toISOString(),
  };
}
