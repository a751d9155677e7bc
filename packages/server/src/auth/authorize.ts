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

  let role: Role | undefined;
  if (principal.kind === 'user') {
    const membership = await db
      .selectFrom('memberships')
      .select('role')
      .where('org_id', '=', request.org)
      .where('user_id', '=', principal.userId)
      .executeTakeFirst();
    if (!membership) throw notFound('organization');
    role = membership.role;
  } else if (principal.orgId !== request.org) {
    throw notFound('organization');
  }
  const org = await db
    .selectFrom('orgs')
    .selectAll()
    .where('id', '=', request.org)
    .executeTakeFirst();
  if (!org) throw notFound('organization');

  let project: Project | undefined;
  let environment: Environment | undefined;
  if (policy.scope === 'project' || policy.scope === 'environment') {
    if (!request.project) throw new TypeError(`action ${request.action} needs a project`);
    project = await db
      .selectFrom('projects')
      .selectAll()
      .where('org_id', '=', org.id)
      .where('slug', '=', request.project)
      .executeTakeFirst();
    if (!project || (principal.kind === 'service' && principal.projectId !== project.id)) {
      throw notFound('project');
    }
  }
  if (policy.scope === 'environment' && project) {
    if (!request.environment) throw new TypeError(`action ${request.action} needs an environment`);
    environment = await db
      .selectFrom('environments')
      .selectAll()
      .where('project_id', '=', project.id)
      .where('slug', '=', request.environment)
      .executeTakeFirst();
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
