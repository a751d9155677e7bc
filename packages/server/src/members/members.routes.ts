import { ROLES } from '../auth/policy.js';
import type { Role } from '../db/schema.js';
import { defineRoute } from '../http/route.js';
import { object, orgParam, recordId } from '../http/schema.js';
import { listMembers } from './members.repository.js';
import { addMember, changeRole, removeMember, serializeMember } from './members.service.js';

const role = { type: 'string', enum: ROLES };
const email = { type: 'string', minLength: 3, maxLength: 254, pattern: '^[^\\s@]+@[^\\s@]+$' };
const memberParams = object({ org: orgParam, userId: recordId('usr') });

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
  defineRoute<{ Params: { org: string }; Body: { email: string; role: Role } }>({
    method: 'POST',
    url: '/v1/organization/:org/members',
    action: 'members.create',
    schema: { params: object({ org: orgParam }), body: object({ email, role }) },
    scope: ({ params, body }) => ({ org: params.org, target: body.email }),
    status: 201,
    handler: async ({ body, access }, ctx) => {
      const added = await addMember(ctx.db, access.org!.id, body.email.toLowerCase(), body.role);
      return { member: serializeMember(added.member), token: added.token };
    },
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
