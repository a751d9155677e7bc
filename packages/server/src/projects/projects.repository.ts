import type { Kysely, Transaction } from 'kysely';
import type { Database, Environment, Project } from '../db/schema.js';

type Db = Kysely<Database> | Transaction<Database>;

export function listProjects(db: Db, orgId: string): Promise<Project[]> {
  return db
    .selectFrom('projects')
    .selectAll()
    .where('org_id', '=', orgId)
    .orderBy('slug')
    .execute();
}

export async function insertProject(
  db: Db,
  project: { id: string; org_id: string; slug: string; name: string; is_default?: boolean },
): Promise<void> {
  await db.insertInto('projects').values(project).execute();
}

export async function deleteProject(db: Db, projectId: string): Promise<void> {
  await db.deleteFrom('projects').where('id', '=', projectId).execute();
}

export function listEnvironments(db: Db, projectId: string): Promise<Environment[]> {
  return db
    .selectFrom('environments')
    .selectAll()
    .where('project_id', '=', projectId)
    .orderBy('created_at')
    .execute();
}

export async function insertEnvironment(
  db: Db,
  environment: { id: string; org_id: string; project_id: string; slug: string; name: string },
): Promise<void> {
  await db.insertInto('environments').values(environment).execute();
}

export async function deleteEnvironment(db: Db, environmentId: string): Promise<void> {
  await db.deleteFrom('environments').where('id', '=', environmentId).execute();
}

export function findProjectBySlug(
  db: Db,
  orgId: string,
  slug: string,
): Promise<Project | undefined> {
  return db
    .selectFrom('projects')
    .selectAll()
    .where('org_id', '=', orgId)
    .where('slug', '=', slug)
    .executeTakeFirst();
}

export function findEnvironmentBySlug(
  db: Db,
  projectId: string,
  slug: string,
): Promise<Environment | undefined> {
  return db
    .selectFrom('environments')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('slug', '=', slug)
    .executeTakeFirst();
}
