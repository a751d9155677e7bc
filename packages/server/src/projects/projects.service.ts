import { CrateError } from '@crate/crypto-core';
import type { Kysely, Transaction } from 'kysely';
import type { Database, Environment, Org, Project } from '../db/schema.js';
import { inTransaction } from '../db/transaction.js';
import { newId } from '../lib/ids.js';
import {
  findEnvironmentBySlug,
  findProjectBySlug,
  insertEnvironment,
  insertProject,
  listEnvironments,
} from './projects.repository.js';

/** Every new project starts with these environments. */
export const DEFAULT_ENVIRONMENTS = ['dev', 'staging', 'prod'] as const;

/** The project every new org starts with, marked as its default. */
export const DEFAULT_PROJECT = { slug: 'default', name: 'Default' } as const;

export async function createProject(
  db: Kysely<Database>,
  org: Org,
  input: { slug: string; name?: string },
): Promise<{ project: Project; environments: Environment[] }> {
  return inTransaction(db, (trx) => insertProjectWithEnvironments(trx, org.id, input));
}

/**
 * Inserts a project and its default environments inside the caller's transaction. `isDefault`
 * marks the org's default project (the one a CLI falls back on when nothing names a project).
 */
export async function insertProjectWithEnvironments(
  trx: Transaction<Database>,
  orgId: string,
  input: { slug: string; name?: string; isDefault?: boolean },
): Promise<{ project: Project; environments: Environment[] }> {
  if (await findProjectBySlug(trx, orgId, input.slug)) {
    throw new CrateError('ERR_CONFLICT', `a project named ${input.slug} already exists`);
  }
  const project = {
    id: newId('prj'),
    org_id: orgId,
    slug: input.slug,
    name: input.name ?? input.slug,
    is_default: input.isDefault ?? false,
  };
  await insertProject(trx, project);
  for (const slug of DEFAULT_ENVIRONMENTS) {
    await insertEnvironment(trx, {
      id: newId('env'),
      org_id: orgId,
      project_id: project.id,
      slug,
      name: slug,
    });
  }
  const created = (await findProjectBySlug(trx, orgId, input.slug))!;
  return { project: created, environments: await listEnvironments(trx, project.id) };
}

export async function createEnvironment(
  db: Kysely<Database>,
  project: Project,
  input: { slug: string; name?: string },
): Promise<Environment> {
  return inTransaction(db, async (trx) => {
    if (await findEnvironmentBySlug(trx, project.id, input.slug)) {
      throw new CrateError(
        'ERR_CONFLICT',
        `an environment named ${input.slug} already exists in ${project.slug}`,
      );
    }
    await insertEnvironment(trx, {
      id: newId('env'),
      org_id: project.org_id,
      project_id: project.id,
      slug: input.slug,
      name: input.name ?? input.slug,
    });
    return (await findEnvironmentBySlug(trx, project.id, input.slug))!;
  });
}

export function serializeProject(project: Project) {
  return {
    id: project.id,
    slug: project.slug,
    name: project.name,
    default: project.is_default,
    createdAt: project.created_at.toISOString(),
  };
}

export function serializeEnvironment(environment: Environment) {
  return {
    id: environment.id,
    slug: environment.slug,
    name: environment.name,
    createdAt: environment.created_at.toISOString(),
  };
}
