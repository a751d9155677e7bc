import { CrateError } from '@crate/crypto-core';
import { defineRoute } from '../http/route.js';
import { object, orgParam } from '../http/schema.js';
import { rotationRunner } from './rotation.runner.js';

/** Admin API of org DEK rotation (docs/protocol.md, "Key rotation"); owners only. */
export const rotationRoutes = [
  defineRoute<{ Params: { org: string }; Body: { batchSize?: number } | undefined }>({
    method: 'POST',
    url: '/v1/organization/:org/keys/dek/rotate',
    action: 'keys.rotate',
    schema: {
      params: object({ org: orgParam }),
      body: object({ batchSize: { type: 'integer', minimum: 1, maximum: 5000 } }, []),
    },
    scope: ({ params }) => ({ org: params.org, target: 'org-dek' }),
    status: 202,
    handler: async ({ access, body }, ctx) => ({
      rotation: await rotationRunner(ctx).start(access.org!.id, body?.batchSize),
    }),
  }),
  defineRoute<{ Params: { org: string } }>({
    method: 'GET',
    url: '/v1/organization/:org/keys/dek/rotation',
    action: 'keys.rotate',
    schema: { params: object({ org: orgParam }) },
    scope: ({ params }) => ({ org: params.org, target: 'org-dek' }),
    handler: async ({ access }, ctx) => {
      const rotation = await rotationRunner(ctx).status(access.org!.id);
      if (!rotation) {
        throw new CrateError('ERR_NOT_FOUND', 'this organization has no DEK rotation yet');
      }
      return { rotation };
    },
  }),
];
