import type { Insertable, Kysely, Transaction } from 'kysely';
import type { Database, Invitation, InvitationsTable } from '../db/schema.js';

type Db = Kysely<Database> | Transaction<Database>;

export async function insertInvitation(db: Db, row: Insertable<InvitationsTable>): Promise<void> {
  await db.insertInto('invitations').values(row).execute();
}

/** Revokes the org's pending invitation of `email`, if any (a new invitation replaces it). */
export async function revokePendingInvitationOf(
  db: Db,
  orgId: string,
  email: string,
  now: Date,
): Promise<void> {
  await db
    .updateTable('invitations')
    .set({ revoked_at: now })
    .where('org_id', '=', orgId)
    .where('email', '=', email)
    .where('accepted_at', 'is', null)
    .where('revoked_at', 'is', null)
    .execute();
}

export function findInvitation(db: Db, id: string): Promise<Invitation | undefined> {
  return db.selectFrom('invitations').selectAll().where('id', '=', id).executeTakeFirst();
}

export function listInvitations(db: Db, orgId: string): Promise<Invitation[]> {
  return db
    .selectFrom('invitations')
    .selectAll()
    .where('org_id', '=', orgId)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
}

/** Revokes a pending invitation of the org; false when it was not pending (or not the org's). */
export async function revokeInvitation(
  db: Db,
  orgId: string,
  id: string,
  now: Date,
): Promise<boolean> {
  const result = await db
    .updateTable('invitations')
    .set({ revoked_at: now })
    .where('id', '=', id)
    .where('org_id', '=', orgId)
    .where('accepted_at', 'is', null)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * Marks a pending, unexpired invitation accepted. The conditions are in the statement, so of two
 * concurrent acceptances of one code exactly one updates the row: a code is used once.
 */
export async function consumeInvitation(
  trx: Transaction<Database>,
  id: string,
  userId: string,
  now: Date,
): Promise<boolean> {
  const result = await trx
    .updateTable('invitations')
    .set({ accepted_at: now, accepted_by: userId })
    .where('id', '=', id)
    .where('accepted_at', 'is', null)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}
