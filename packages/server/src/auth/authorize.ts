import { CrateError } from '@crate/crypto-core';
import type { Kysely } from 'kysely';
import type { Database, Environment, Org, Project, Role } from '../db/schema.js';
import { ACTIONS, type Action, accessAllows, roleAllows } from './policy.js';
import type { Principal } from './principal.js';

export interface AccessRequest {
  action: Action;
  /** Org id from the path. */
  org?: string;
  /** Project slug. */
  project?: string;
  /** Environment slug. */
  environment?: string;
}

/** The records the caller may act on, resolved once so routes do not look them up again. */
export interface Access {
  principal: Principal;
  action: Action;
  org?: Org;
  /** The caller's role in `org` (absent for service tokens and org-less actions). */
  role?: Role;
  project?: Project;
  environment?: Environment;
}

/** Whether a denial is a missing record (ERR_NOT_FOUND) or a refused action (ERR_FORBIDDEN). */
export class AccessDenied extends CrateError {}

function notFound(what: string): AccessDenied {
  return new AccessDenied('ERR_NOT_FOUND', `no such ${what}`);
}

/**
 * Decides whether `principal` may perform `request.action`. Anything the caller cannot see —
 * another org, a project outside a service token's scope — answers exactly like a missing
 * record, so ids of other tenants cannot be probed. Throws AccessDenied; the caller audits it.
 */
export async function authorize(
  db: Kysely<Database>,
  principal: Principal,
  request: AccessRequest,
): Promise<Access> {
  const policy = ACTIONS[request.action];
  if (policy.scope === 'none') {
    if (principal.kind === 'service' && policy.service === null) {
      throw new AccessDenied('ERR_FORBIDDEN', `a service token cannot ${request.action}`);
    }
    return { principal, action: request.action };
  }
  if (!request.org) throw new TypeError(`action ${request.action} needs an org`);

  if (principal.kind === 'service' && principal.orgId !== request.org) {
    throw notFound('organization');
  }
  const scoped = policy.scope === 'project' || policy.scope === 'environment';
  if (scoped && !request.project) throw new TypeError(`action ${request.action} needs a project`);
  if (policy.scope === 'environment' && !request.environment) {
    throw new TypeError(`action ${request.action} needs an environment`);
  }
  // One round trip for the org, the caller's membership, the project and the environment.
  const found = await lookupScope(db, {
    orgId: request.org,
    userId: principal.kind === 'user' ? principal.userId : null,
    project: scoped ? request.project! : null,
    environment: policy.scope === 'environment' ? request.environment! : null,
  });

  let role: Role | undefined;
  if (principal.kind === 'user') {
    if (!found?.role) throw notFound('organization');
    role = found.role;
  }
  if (!found) throw notFound('organization');
  const org = found.org;

  let project: Project | undefined;
  let environment: Environment | undefined;
  if (scoped) {
    project = found.project;
    if (!project || (principal.kind === 'service' && principal.projectId !== project.id)) {
      throw notFound('project');
    }
  }
  if (policy.scope === 'environment' && project) {
    environment = found.environment;
    if (
      !environment ||
      (principal.kind === 'service' && principal.environmentId !== environment.id)
    ) {
      throw notFound('environment');
    }
  }

  const allowed =
    principal.kind === 'user'
      ? roleAllows(role!, policy.minRole)
      : accessAllows(principal.access, policy.service);
  if (!allowed) {
    throw new AccessDenied(
      'ERR_FORBIDDEN',
      principal.kind === 'user'
        ? `the ${role} role cannot ${request.action}; it needs ${policy.minRole} or above`
        : `this service token (${principal.access}) cannot ${request.action}`,
    );
  }
  const access: Access = { principal, action: request.action, org };
  if (role) access.role = role;
  if (project) access.project = project;
  if (environment) access.environment = environment;
  return access;
}

interface ScopeRecords {
  org: Org;
  /** The caller's role in the org; null for a service token or a user who is not a member. */
  role: Role | null;
  project: Project | undefined;
  environment: Environment | undefined;
}

/**
 * The org by id, the user's membership in it, the project by slug in that org and the
 * environment by slug in that project, in one query (left joins on the unique keys): undefined
 * if the org does not exist. A null userId/project/environment joins nothing.
 */
async function lookupScope(
  db: Kysely<Database>,
  key: { orgId: string; userId: string | null; project: string | null; environment: string | null },
): Promise<ScopeRecords | undefined> {
  const row = await db
    .selectFrom('orgs as o')
    .leftJoin('memberships as m', (join) =>
      join.onRef('m.org_id', '=', 'o.id').on('m.user_id', '=', key.userId),
    )
    .leftJoin('projects as p', (join) =>
      join.onRef('p.org_id', '=', 'o.id').on('p.slug', '=', key.project),
    )
    .leftJoin('environments as e', (join) =>
      join.onRef('e.project_id', '=', 'p.id').on('e.slug', '=', key.environment),
    )
    .select([
      'o.id as o_id',
      'o.name as o_name',
      'o.created_at as o_created_at',
      'm.role as m_role',
      'p.id as p_id',
      'p.org_id as p_org_id',
      'p.slug as p_slug',
      'p.name as p_name',
      'p.is_default as p_is_default',
      'p.created_at as p_created_at',
      'e.id as e_id',
      'e.org_id as e_org_id',
      'e.project_id as e_project_id',
      'e.slug as e_slug',
      'e.name as e_name',
      'e.created_at as e_created_at',
    ])
    .where('o.id', '=', key.orgId)
    .executeTakeFirst();
  if (!row) return undefined;
  return {
    org: { id: row.o_id, name: row.o_name, created_at: row.o_created_at },
    role: row.m_role,
    project:
      row.p_id === null
        ? undefined
        : {
            id: row.p_id,
            org_id: row.p_org_id!,
            slug: row.p_slug!,
            name: row.p_name!,
            is_default: row.p_is_default!,
            created_at: row.p_created_at!,
          },
    environment:
      row.e_id === null
        ? undefined
        : {
            id: row.e_id,
            org_id: row.e_org_id!,
            project_id: row.e_project_id!,
            slug: row.e_slug!,
            name: row.e_name!,
            created_at: row.e_created_at!,
          },
  };
}
