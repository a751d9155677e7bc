import { defineRoute } from '../http/route.js';
import { integerText, object, orgParam } from '../http/schema.js';
import { listEntries } from './audit.repository.js';
import { serializeEntry, verifyChain } from './audit.service.js';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

export const auditRoutes = [
  defineRoute<{ Params: { org: string }; Querystring: { limit?: string; afterSeq?: string } }>({
    method: 'GET',
    url: '/v1/organization/:org/audit',
    action: 'audit.list',
    schema: {
      params: object({ org: orgParam }),
      querystring: object({ limit: integerText, afterSeq: integerText }, []),
    },
    scope: ({ params }) => ({ org: params.org }),
    handler: async ({ query, access }, ctx) => {
      const limit = Math.min(Math.max(Number(query.limit ?? DEFAULT_LIMIT), 1), MAX_LIMIT);
      const afterSeq = Number(query.afterSeq ?? 0);
      const entries = await listEntries(ctx.db, access.org!.id, { afterSeq, limit });
      return { entries: entries.map(serializeEntry) };
    },
  }),
  defineRoute<{ Params: { org: string } }>({
    method: 'GET',
    url: '/v1/organization/:org/audit/verify',
    action: 'audit.verify',
    schema: { params: object({ org: orgParam }) },
    scope: ({ params }) => ({ org: params.org }),
    handler: async ({ access }, ctx) =>
      verifyChain(ctx.db, await ctx.keys.auditPublicKeys(), access.org!.id),
  }),
];
