import { CrateError } from '@crate/crypto-core';
import { ROLES } from '../auth/policy.js';
import { actorOf } from '../auth/principal.js';
import type { Role } from '../db/schema.js';
import { defineOpenRoute, defineRoute } from '../http/route.js';
import { email, object, orgParam } from '../http/schema.js';
import { listInvitations, revokeInvitation } from './invitations.repository.js';
import {
  acceptInvitation,
  assertMayGrant,
  createInvitation,
  DEFAULT_INVITATION_LIFETIME_SECONDS,
  MAX_INVITATION_LIFETIME_SECONDS,
  MIN_INVITATION_LIFETIME_SECONDS,
  serializeInvitation,
} from './invitations.service.js';

const role = { type: 'string', enum: ROLES };
const invitationId = { type: 'string', pattern: '^[a-z2-7]{16}$' };
// No pattern: a malformed code gets the same ERR_INVITATION_INVALID as a wrong one.
const code = { type: 'string', minLength: 1, maxLength: 200 };

type CreateBody = { email: string; role: Role; expiresInSeconds?: number };

export const invitationRoutes = [
  defineRoute<{ Params: { org: string }; Body: CreateBody }>({
    method: 'POST',
    url: '/v1/organization/:org/invitations',
    action: 'invitations.create',
    schema: {
      params: object({ org: orgParam }),
      body: object(
        {
          email,
          role,
          expiresInSeconds: {
            type: 'integer',
            minimum: MIN_INVITATION_LIFETIME_SECONDS,
            maximum: MAX_INVITATION_LIFETIME_SECONDS,
          },
        },
        ['email', 'role'],
      ),
    },
    scope: ({ params, body }) => ({
      org: params.org,
      target: `${body.email.toLowerCase()} as ${body.role}`,
    }),
    authorizeInput: ({ body }, access) => assertMayGrant(access.role!, body.role),
    status: 201,
    handler: async ({ body, access }, ctx) => {
      const now = ctx.now();
      const created = await createInvitation(ctx.db, {
        orgId: access.org!.id,
        invitedBy: actorOf(access.principal),
        email: body.email.toLowerCase(),
        role: body.role,
        lifetimeSeconds: body.expiresInSeconds ?? DEFAULT_INVITATION_LIFETIME_SECONDS,
        now,
      });
      return {
        invitation: serializeInvitation(created.invitation, now),
        // Shown once: only a hash of it is stored.
        code: created.code,
      };
    },
  }),
  defineRoute<{ Params: { org: string } }>({
    method: 'GET',
    url: '/v1/organization/:org/invitations',
    action: 'invitations.list',
    schema: { params: object({ org: orgParam }) },
    scope: ({ params }) => ({ org: params.org }),
    handler: async ({ access }, ctx) => {
      const now = ctx.now();
      return {
        invitations: (await listInvitations(ctx.db, access.org!.id)).map((row) =>
          serializeInvitation(row, now),
        ),
      };
    },
  }),
  defineRoute<{ Params: { org: string; invitationId: string } }>({
    method: 'DELETE',
    url: '/v1/organization/:org/invitations/:invitationId',
    action: 'invitations.revoke',
    schema: { params: object({ org: orgParam, invitationId }) },
    scope: ({ params }) => ({ org: params.org, target: params.invitationId }),
    handler: async ({ params, access }, ctx) => {
      if (!(await revokeInvitation(ctx.db, access.org!.id, params.invitationId, ctx.now()))) {
        throw new CrateError('ERR_NOT_FOUND', 'no pending invitation with this id');
      }
      return { id: params.invitationId, revoked: true };
    },
  }),
  defineOpenRoute<{ Body: { code: string } }>({
    method: 'POST',
    url: '/v1/invitations/accept',
    action: 'invitations.accept',
    schema: { body: object({ code }) },
    // Never the code: the service records the invitation id (its public half) as the target.
    scope: () => ({}),
    handler: async ({ body, principal, audit }, ctx) =>
      acceptInvitation(ctx.db, { code: body.code, principal, now: ctx.now(), audit }),
  }),
];
