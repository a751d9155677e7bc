import { CrateError } from '@crate/crypto-core';
import type { Access } from '../auth/authorize.js';
import { actorOf } from '../auth/principal.js';
import type { Role } from '../db/schema.js';
import type { AppContext } from '../http/context.js';
import { defineRoute } from '../http/route.js';
import { displayName, object } from '../http/schema.js';
import { findOrg, listOrgsOfUser, type OrgWithRole } from './orgs.repository.js';
import { createOrganization } from './orgs.service.js';

/** Orgs a token reaches; a service token has no role (its access is reported instead). */
async function reachableOrgs(
  access: Access,
  ctx: AppContext,
): Promise<Array<Omit<OrgWithRole, 'role'> & { role: Role | null }>> {
  const principal = access.principal;
  if (principal.kind === 'user') return listOrgsOfUser(ctx.db, principal.userId);
  const org = await findOrg(ctx.db, principal.orgId);
  return org ? [{ id: org.id, name: org.name, role: null }] : [];
}

/** The project and environment slugs of a service token (omitted if they no longer exist). */
async function serviceTokenScope(
  ctx: AppContext,
  projectId: string,
  environmentId: string,
): Promise<{ project?: string; environment?: string }> {
  const row = await ctx.db
    .selectFrom('environments')
    .innerJoin('projects', 'projects.id', 'environments.project_id')
    .select(['projects.slug as project', 'environments.slug as environment'])
    .where('environments.id', '=', environmentId)
    .where('projects.id', '=', projectId)
    .executeTakeFirst();
  return row ? { project: row.project, environment: row.environment } : {};
}

export const orgRoutes = [
  defineRoute({
    method: 'GET',
    url: '/v1/whoami',
    action: 'whoami',
    schema: {},
    scope: () => ({}),
    handler: async ({ access }, ctx) => {
      const p = access.principal;
      const orgs = await reachableOrgs(access, ctx);
      return {
        actor: actorOf(p),
        token:
          p.kind === 'user'
            ? { id: p.tokenId, kind: 'pat' }
            : {
                id: p.tokenId,
                kind: 'svc',
                name: p.name,
                access: p.access,
                // The slugs a CLI needs to work in the token's scope with nothing else set.
                ...(await serviceTokenScope(ctx, p.projectId, p.environmentId)),
              },
        ...(p.kind === 'user' && { user: { id: p.userId, email: p.email } }),
        orgs: orgs.map((o) => ({ id: o.id, name: o.name, role: o.role })),
      };
    },
  }),
  defineRoute({
    method: 'GET',
    url: '/v1/organizations',
    action: 'organizations.list',
    schema: {},
    scope: () => ({}),
    handler: async ({ access }, ctx) => {
      const orgs = await reachableOrgs(access, ctx);
      return {
        organizations: orgs.map((o) => ({ id: o.id, name: o.name, role: o.role })),
      };
    },
  }),
  defineRoute<{ Body: { name: string } }>({
    method: 'POST',
    url: '/v1/organizations',
    action: 'organizations.create',
    schema: { body: object({ name: displayName }) },
    scope: ({ body }) => ({ target: body.name }),
    status: 201,
    handler: async ({ body, access, request }, ctx) => {
      const principal = access.principal;
      if (principal.kind !== 'user')
        throw new CrateError('ERR_FORBIDDEN', 'a service token cannot create organizations');
      const created = await createOrganization(ctx.db, ctx.keys.keyring, ctx.audit, {
        name: body.name,
        ownerEmail: principal.email,
        actor: actorOf(principal),
        requestId: request.id,
      });
      return { id: created.org.id, name: created.org.name, role: 'owner' };
    },
  }),
];
