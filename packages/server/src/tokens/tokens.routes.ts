import { CrateError } from '@crate/crypto-core';
import { issueToken } from '../auth/token-format.js';
import {
  insertServiceToken,
  listServiceTokens,
  revokeServiceToken,
  type ServiceTokenRow,
} from '../auth/tokens.repository.js';
import type { TokenAccess } from '../db/schema.js';
import { defineRoute } from '../http/route.js';
import { displayName, object, orgParam, slug } from '../http/schema.js';

/** Service tokens must expire (at most about ten years); short lives suit one CI job. */
export const MIN_TOKEN_LIFETIME_SECONDS = 1;
export const MAX_TOKEN_LIFETIME_SECONDS = 10 * 366 * 24 * 3600;

const tokenIdParam = { type: 'string', pattern: '^[a-z2-7]{16}$' };

function serializeToken(row: ServiceTokenRow, now: Date) {
  const state =
    row.revoked_at !== null
      ? 'revoked'
      : row.expires_at !== null && row.expires_at <= now
        ? 'expired'
        : 'active';
  return {
    id: row.id,
    name: row.name,
    project: row.project,
    environment: row.environment,
    access: row.access,
    state,
    createdAt: row.created_at.toISOString(),
    expiresAt: row.expires_at?.toISOString() ?? null,
    revokedAt: row.revoked_at?.toISOString() ?? null,
    lastUsedAt: row.last_used_at?.toISOString() ?? null,
  };
}

type CreateBody = {
  name: string;
  project: string;
  environment: string;
  access: TokenAccess;
  expiresInSeconds: number;
};

export const tokenRoutes = [
  defineRoute<{ Params: { org: string } }>({
    method: 'GET',
    url: '/v1/organization/:org/tokens',
    action: 'tokens.list',
    schema: { params: object({ org: orgParam }) },
    scope: ({ params }) => ({ org: params.org }),
    handler: async ({ access }, ctx) => {
      const now = ctx.now();
      return {
        tokens: (await listServiceTokens(ctx.db, access.org!.id)).map((row) =>
          serializeToken(row, now),
        ),
      };
    },
  }),
  defineRoute<{ Params: { org: string }; Body: CreateBody }>({
    method: 'POST',
    url: '/v1/organization/:org/tokens',
    action: 'tokens.create',
    schema: {
      params: object({ org: orgParam }),
      body: object({
        name: displayName,
        project: slug,
        environment: slug,
        access: { type: 'string', enum: ['read', 'read-write'] },
        expiresInSeconds: {
          type: 'integer',
          minimum: MIN_TOKEN_LIFETIME_SECONDS,
          maximum: MAX_TOKEN_LIFETIME_SECONDS,
        },
      }),
    },
    scope: ({ params, body }) => ({
      org: params.org,
      project: body.project,
      environment: body.environment,
      target: body.name,
    }),
    status: 201,
    handler: async ({ body, access }, ctx) => {
      const issued = issueToken('svc');
      const now = ctx.now();
      const expiresAt = new Date(now.getTime() + body.expiresInSeconds * 1000);
      await insertServiceToken(ctx.db, {
        id: issued.id,
        secretHash: issued.secretHash,
        orgId: access.org!.id,
        projectId: access.project!.id,
        environmentId: access.environment!.id,
        access: body.access,
        name: body.name,
        expiresAt,
      });
      return {
        // Shown once: only its hash is stored.
        token: issued.token,
        id: issued.id,
        name: body.name,
        project: access.project!.slug,
        environment: access.environment!.slug,
        access: body.access,
        expiresAt: expiresAt.toISOString(),
      };
    },
  }),
  defineRoute<{ Params: { org: string; tokenId: string } }>({
    method: 'DELETE',
    url: '/v1/organization/:org/tokens/:tokenId',
    action: 'tokens.revoke',
    schema: { params: object({ org: orgParam, tokenId: tokenIdParam }) },
    scope: ({ params }) => ({ org: params.org, target: params.tokenId }),
    handler: async ({ params, access }, ctx) => {
      if (!(await revokeServiceToken(ctx.db, access.org!.id, params.tokenId, ctx.now()))) {
        throw new CrateError('ERR_NOT_FOUND', 'no such token');
      }
      return { id: params.tokenId, revoked: true };
    },
  }),
];
