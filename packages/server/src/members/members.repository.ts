import { type Insertable, type Kysely, sql, type Transaction } from 'kysely';
import type { Database, MembershipsTable, Role, User } from '../db/schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/**
 * Emails are compared without case: new accounts are stored lowercased, but a database may hold
 * an owner created with capitals before that rule, and it must still count as that account
 * (never be duplicated by an invitation accepted in lowercase).
 */
export function findUserByEmail(db: Db, email: string): Promise<User | undefined> {
  return db
    .selectFrom('users')
    .selectAll()
    .where(sql<string>`lower(email)`, '=', email.toLowerCase())
    .orderBy('created_at')
    .executeTakeFirst();
}

export async function insertUser(db: Db, user: { id: string; email: string }): Promise<void> {
  await db.insertInto('users').values(user).execute();
}

export async function insertMembership(db: Db, row: Insertable<MembershipsTable>): Promise<void> {
  await db.insertInto('memberships').values(row).execute();
}

export interface MemberRow {
  user_id: string;
  email: string;
  role: Role;
  created_at: Date;
}

export function listMembers(db: Db, orgId: string): Promise<MemberRow[]> {
  return db
    .selectFrom('memberships')
    .innerJoin('users', 'users.id', 'memberships.user_id')
    .where('memberships.org_id', '=', orgId)
    .select(['memberships.user_id', 'users.email', 'memberships.role', 'memberships.created_at'])
    .orderBy('memberships.created_at')
    .execute();
}

export function findMembership(
  db: Db,
  orgId: string,
  userId: string,
): Promise<MemberRow | undefined> {
  return db
    .selectFrom('memberships')
    .innerJoin('users', 'users.id', 'memberships.user_id')
    .where('memberships.org_id', '=', orgId)
    .where('memberships.user_id', '=', userId)
    .select(['memberships.user_id', 'users.email', 'memberships.role', 'memberships.created_at'])
    .executeTakeFirst();
}

/** The org's member with this email, if any: only this org's memberships are consulted. */
export function findMemberByEmail(
  db: Db,
  orgId: string,
  email: string,
): Promise<MemberRow | undefined> {
  return db
    .selectFrom('memberships')
    .innerJoin('users', 'users.id', 'memberships.user_id')
    .where('memberships.org_id', '=', orgId)
    .where(sql<string>`lower(users.email)`, '=', email.toLowerCase())
    .select(['memberships.user_id', 'users.email', 'memberships.role', 'memberships.created_at'])
    .executeTakeFirst();
}

export async function lockOwners(db: Transaction<Database>, orgId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('memberships')
    .select('user_id')
    .where('org_id', '=', orgId)
    .where('role', '=', 'owner')
    .forUpdate()
    .execute();
  return rows.map((row) => row.user_id);
}

export async function updateRole(db: Db, orgId: string, userId: string, role: Role): Promise<void> {
  await db
    .updateTable('memberships')
    .set({ role })
    .where('org_id', '=', orgId)
    .where('user_id', '=', userId)
    .execute();
}

export async function deleteMembership(db: Db, orgId: string, userId: string): Promise<void> {
  await db
    .deleteFrom('memberships')
    .where('org_id', '=', orgId)
    .where('user_id', '=', userId)
    .execute();
}
