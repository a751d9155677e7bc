import { CrateError } from '@crate/crypto-core';
import type { Kysely } from 'kysely';
import type { Database, Environment, Org, Project } from '../db/schema.js';
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

export async function createProject(
  db: Kysely<Database>,
  org: Org,
  input: { slug: string; name?: string },
): Promise<{ project: Project; environments: Environment[] }> {
  return db.transaction().execute(async (trx) => {
    if (await findProjectBySlug(trx, org.id, input.slug)) {
      throw new CrateError('ERR_CONFLICT', `a project named ${input.slug} already exists`);
    }
    const project = {
      id: newId('prj'),
      org_id: org.id,
      slug: input.slug,
      name: input.name ?? input.slug,
    };
    await insertProject(trx, project);
    for (const slug of DEFAULT_ENVIRONMENTS) {
      await insertEnvironment(trx, {
        id: newId('env'),
        org_id: org.id,
        project_id: project.id,
        slug,
        name: slug,
      });
    }
    const created = (await findProjectBySlug(trx, org.id, input.slug))!;
    return { project: created, environments: await listEnvironments(trx, project.id) };
  });
}

export async function createEnvironment(
  db: Kysely<Database>,
  project: Project,
  input: { slug: string; name?: string },
): Promise<Environment> {
  return db.transaction().execute(async (trx) => {
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
