import type { Kysely, Transaction } from 'kysely';
import type { Database, Org, Role } from '../db/schema.js';

type Db = Kysely<Database> | Transaction<Database>;

export async function insertOrg(db: Db, org: { id: string; name: string }): Promise<void> {
  await db.insertInto('orgs').values(org).execute();
}

export function countOrgs(db: Db): Promise<number> {
  return db
    .selectFrom('orgs')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow()
    .then((row) => Number(row.n));
}

export function findOrg(db: Db, id: string): Promise<Org | undefined> {
  return db.selectFrom('orgs').selectAll().where('id', '=', id).executeTakeFirst();
}

export interface OrgWithRole {
  id: string;
  name: string;
  role: Role;
}

export function listOrgsOfUser(db: Db, userId: string): Promise<OrgWithRole[]> {
  return db
    .selectFrom('memberships')
    .innerJoin('orgs', 'orgs.id', 'memberships.org_id')
    .where('memberships.user_id', '=', userId)
    .select(['orgs.id', 'orgs.name', 'memberships.role'])
    .orderBy('orgs.created_at')
    .execute();
}
