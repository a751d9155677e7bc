import { ROLES } from '../auth/policy.js';
import type { Role } from '../db/schema.js';
import { defineRoute } from '../http/route.js';
import { object, orgParam, recordId } from '../http/schema.js';
import { listMembers } from './members.repository.js';
import { changeRole, removeMember, serializeMember } from './members.service.js';

const role = { type: 'string', enum: ROLES };
const memberParams = object({ org: orgParam, userId: recordId('usr') });

// Members join only by accepting an invitation (invitations/): there is no route that adds one.
export const memberRoutes = [
  defineRoute<{ Params: { org: string } }>({
    method: 'GET',
    url: '/v1/organization/:org/members',
    action: 'members.list',
    schema: { params: object({ org: orgParam }) },
    scope: ({ params }) => ({ org: params.org }),
    handler: async ({ access }, ctx) => ({
      members: (await listMembers(ctx.db, access.org!.id)).map(serializeMember),
    }),
  }),
  defineRoute<{ Params: { org: string; userId: string }; Body: { role: Role } }>({
    method: 'PATCH',
    url: '/v1/organization/:org/members/:userId',
    action: 'members.update',
    schema: { params: memberParams, body: object({ role }) },
    scope: ({ params }) => ({ org: params.org, target: params.userId }),
    handler: async ({ params, body, access }, ctx) => ({
      member: serializeMember(await changeRole(ctx.db, access.org!.id, params.userId, body.role)),
    }),
  }),
  defineRoute<{ Params: { org: string; userId: string } }>({
    method: 'DELETE',
    url: '/v1/organization/:org/members/:userId',
    action: 'members.delete',
    schema: { params: memberParams },
    scope: ({ params }) => ({ org: params.org, target: params.userId }),
    handler: async ({ params, access }, ctx) => {
      await removeMember(ctx.db, access.org!.id, params.userId);
      return { userId: params.userId, removed: true };
    },
  }),
];
