import { defineRoute } from '../http/route.js';
import { object, orgParam } from '../http/schema.js';
import { refuseWhileHoldersLack } from '../rotation/master-key-holders.js';
import { rotateOrgKeys } from './sealing-rotation.service.js';

export const sealingRotationRoutes = [
  defineRoute<{ Params: { org: string } }>({
    method: 'POST',
    url: '/v1/organization/:org/keys/sealing/rotate',
    action: 'keys.rotate-sealing',
    schema: { params: object({ org: orgParam }) },
    scope: ({ params }) => ({ org: params.org, target: 'sealing-keys' }),
    handler: async ({ access }, ctx) => {
      await refuseWhileHoldersLack(
        ctx.db,
        ctx.engine,
        ctx.keys.keyring.activeVersion,
        'the new org key pairs',
      );
      return rotateOrgKeys(ctx, access.org!.id);
    },
  }),
];
