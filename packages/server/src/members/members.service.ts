import { CrateError } from '@crate/crypto-core';
import type { Kysely } from 'kysely';
import type { Database, Role } from '../db/schema.js';
import { inTransaction } from '../db/transaction.js';
import {
  deleteMembership,
  findMembership,
  lockOwners,
  type MemberRow,
  updateRole,
} from './members.repository.js';

/** Changes a role; an org always keeps at least one owner. */
export async function changeRole(
  db: Kysely<Database>,
  orgId: string,
  userId: string,
  role: Role,
): Promise<MemberRow> {
  return inTransaction(db, async (trx) => {
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
  await inTransaction(db, async (trx) => {
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
