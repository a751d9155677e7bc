import type { Kysely, Transaction } from 'kysely';
import type { Database, Token, TokenAccess } from '../db/schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/** The token and, for a personal token, its user's email (null if the user is gone): one query. */
export function findTokenWithUser(
  db: Db,
  id: string,
): Promise<(Token & { user_email: string | null }) | undefined> {
  return db
    .selectFrom('tokens')
    .leftJoin('users', 'users.id', 'tokens.user_id')
    .selectAll('tokens')
    .select('users.email as user_email')
    .where('tokens.id', '=', id)
    .executeTakeFirst();
}

export async function insertPersonalToken(
  db: Db,
  token: { id: string; secretHash: Buffer; userId: string; name: string; expiresAt?: Date | null },
): Promise<void> {
  await db
    .insertInto('tokens')
    .values({
      id: token.id,
      kind: 'pat',
      secret_hash: token.secretHash,
      user_id: token.userId,
      org_id: null,
      project_id: null,
      environment_id: null,
      access: null,
      name: token.name,
      expires_at: token.expiresAt ?? null,
    })
    .execute();
}

export async function insertServiceToken(
  db: Db,
  token: {
    id: string;
    secretHash: Buffer;
    orgId: string;
    projectId: string;
    environmentId: string;
    access: TokenAccess;
    name: string;
    expiresAt: Date;
  },
): Promise<void> {
  await db
    .insertInto('tokens')
    .values({
      id: token.id,
      kind: 'svc',
      secret_hash: token.secretHash,
      org_id: token.orgId,
      user_id: null,
      project_id: token.projectId,
      environment_id: token.environmentId,
      access: token.access,
      name: token.name,
      expires_at: token.expiresAt,
    })
    .execute();
}

export async function touchToken(db: Db, id: string, now: Date): Promise<void> {
  await db.updateTable('tokens').set({ last_used_at: now }).where('id', '=', id).execute();
}

export interface ServiceTokenRow {
  id: string;
  name: string;
  project: string;
  environment: string;
  access: TokenAccess;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

export function listServiceTokens(db: Db, orgId: string): Promise<ServiceTokenRow[]> {
  return db
    .selectFrom('tokens')
    .innerJoin('projects', 'projects.id', 'tokens.project_id')
    .innerJoin('environments', 'environments.id', 'tokens.environment_id')
    .where('tokens.org_id', '=', orgId)
    .where('tokens.kind', '=', 'svc')
    .select([
      'tokens.id',
      'tokens.name',
      'projects.slug as project',
      'environments.slug as environment',
      'tokens.access',
      'tokens.created_at',
      'tokens.expires_at',
      'tokens.revoked_at',
      'tokens.last_used_at',
    ])
    .orderBy('tokens.created_at')
    .execute() as Promise<ServiceTokenRow[]>;
}

/** Revokes an org's service token; returns false when the org holds no such token. */
export async function revokeServiceToken(
  db: Db,
  orgId: string,
  id: string,
  now: Date,
): Promise<boolean> {
  const result = await db
    .updateTable('tokens')
    .set((eb) => ({ revoked_at: eb.fn.coalesce('revoked_at', eb.val(now)) }))
    .where('id', '=', id)
    .where('org_id', '=', orgId)
    .where('kind', '=', 'svc')
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function revokeUserTokens(db: Db, userId: string, now: Date): Promise<void> {
  await db
    .updateTable('tokens')
    .set({ revoked_at: now })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .execute();
}
