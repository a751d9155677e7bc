import { defineRoute } from '../http/route.js';
import { object, orgParam } from '../http/schema.js';
import { rotateOrgKeys } from './sealing-rotation.service.js';

export const sealingRotationRoutes = [
  defineRoute<{ Params: { org: string } }>({
    method: 'POST',
    url: '/v1/organization/:org/keys/sealing/rotate',
    action: 'keys.rotate-sealing',
    schema: { params: object({ org: orgParam }) },
    scope: ({ params }) => ({ org: params.org, target: 'sealing-keys' }),
    handler: async ({ access }, ctx) => rotateOrgKeys(ctx, access.org!.id),
  }),
];
