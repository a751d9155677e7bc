import { defineRoute } from '../http/route.js';
import { type JsonSchema, object, orgParam, slug } from '../http/schema.js';
import {
  deleteSecret,
  listSecretMetadata,
  publicKeys,
  retrieveBundle,
  rollbackSecret,
  secretHistory,
  setSecrets,
} from './secrets.service.js';
import {
  assertBundleNonce,
  assertSecretName,
  isValidSecretName,
  MAX_SECRETS_PER_WRITE,
  namesTarget,
  parseEphemeralPublicKey,
  parseSealedWrite,
  parseTagFilter,
} from './secrets.validation.js';

const orgParams = object({ org: orgParam });
// Names are checked by the handler so that a bad one answers ERR_INVALID_SECRET_NAME.
const nameParams = object({
  org: orgParam,
  name: { type: 'string', minLength: 1, maxLength: 1024 },
});
const placeQuery = object({ project: slug, env: slug });

/**
 * The PUT body schema names only what authorization needs (project, environment). The rest
 * (sealed, secrets, and the absence of any plaintext field) is checked by parseSealedWrite,
 * which answers ERR_UNSEALED_WRITE / ERR_SEAL_INVALID / ERR_INVALID_SECRET_NAME rather than
 * a generic schema error; unknown fields are still refused there.
 */
const sealedWriteBody: JsonSchema = {
  type: 'object',
  properties: {
    project: slug,
    environment: slug,
    secrets: { type: 'array', maxItems: MAX_SECRETS_PER_WRITE },
  },
  required: ['project', 'environment'],
};

const retrieveBody = object(
  {
    project: slug,
    environment: slug,
    names: {
      type: 'array',
      minItems: 1,
      maxItems: 1000,
      items: { type: 'string', minLength: 1, maxLength: 1024 },
    },
    // SPKI DER of an RSA key of at most 8192 bits is about 1.1 KB: 4 KB of base64 is ample.
    publicKey: { type: 'string', minLength: 1, maxLength: 4096 },
    nonce: { type: 'string', minLength: 1, maxLength: 64 },
  },
  ['project', 'environment', 'publicKey', 'nonce'],
);

const rollbackBody = object({
  project: slug,
  environment: slug,
  version: { type: 'integer', minimum: 1, maximum: 2_147_483_647 },
});

type OrgParams = { org: string };
type NameParams = { org: string; name: string };
type PlaceQuery = { project: string; env: string };

export const secretRoutes = [
  defineRoute<{ Params: OrgParams }>({
    method: 'GET',
    url: '/v1/organization/:org/secrets/public-key',
    action: 'secrets.public-key',
    schema: { params: orgParams },
    scope: ({ params }) => ({ org: params.org }),
    handler: ({ access }, ctx) => publicKeys(ctx, access.org!.id),
  }),
  defineRoute<{
    Params: OrgParams;
    Body: { project: string; environment: string; secrets?: { name?: unknown }[] };
  }>({
    method: 'PUT',
    url: '/v1/organization/:org/secrets',
    action: 'secrets.set',
    schema: { params: orgParams, body: sealedWriteBody },
    scope: ({ params, body }) => ({
      org: params.org,
      project: body.project,
      environment: body.environment,
      target: namesTarget(
        Array.isArray(body.secrets)
          ? body.secrets.map((item) => (typeof item === 'object' ? item?.name : undefined))
          : undefined,
      ),
    }),
    handler: ({ body, access }, ctx) => setSecrets(ctx, access, parseSealedWrite(body)),
  }),
  defineRoute<{
    Params: OrgParams;
    Querystring: { project: string; env: string; tags?: string };
  }>({
    method: 'GET',
    url: '/v1/organization/:org/secrets',
    action: 'secrets.list',
    schema: {
      params: orgParams,
      querystring: object({ project: slug, env: slug, tags: { type: 'string', maxLength: 2200 } }, [
        'project',
        'env',
      ]),
    },
    scope: ({ params, query }) => ({
      org: params.org,
      project: query.project,
      environment: query.env,
    }),
    handler: ({ query, access }, ctx) =>
      listSecretMetadata(ctx, access, parseTagFilter(query.tags)),
  }),
  defineRoute<{
    Params: OrgParams;
    Body: {
      project: string;
      environment: string;
      names?: string[];
      publicKey: string;
      nonce: string;
    };
  }>({
    method: 'POST',
    url: '/v1/organization/:org/secrets/retrieve',
    action: 'secrets.retrieve',
    schema: { params: orgParams, body: retrieveBody },
    scope: ({ params, body }) => ({
      org: params.org,
      project: body.project,
      environment: body.environment,
      target: namesTarget(body.names),
    }),
    handler: ({ body, access }, ctx) => {
      for (const [index, name] of (body.names ?? []).entries()) {
        assertSecretName(name, `names[${index}]`);
      }
      assertBundleNonce(body.nonce);
      const { key } = parseEphemeralPublicKey(body.publicKey);
      return retrieveBundle(ctx, access, {
        names: body.names,
        ephemeralPublicKey: key,
        nonce: body.nonce,
      });
    },
  }),
  defineRoute<{ Params: NameParams; Querystring: PlaceQuery }>({
    method: 'DELETE',
    url: '/v1/organization/:org/secrets/:name',
    action: 'secrets.delete',
    schema: { params: nameParams, querystring: placeQuery },
    scope: ({ params, query }) => ({
      org: params.org,
      project: query.project,
      environment: query.env,
      target: isValidSecretName(params.name) ? params.name : null,
    }),
    handler: async ({ params, access }, ctx) => {
      assertSecretName(params.name);
      return deleteSecret(ctx, access, params.name);
    },
  }),
  defineRoute<{ Params: NameParams; Querystring: PlaceQuery }>({
    method: 'GET',
    url: '/v1/organization/:org/secrets/:name/versions',
    action: 'secrets.versions',
    schema: { params: nameParams, querystring: placeQuery },
    scope: ({ params, query }) => ({
      org: params.org,
      project: query.project,
      environment: query.env,
      target: isValidSecretName(params.name) ? params.name : null,
    }),
    handler: async ({ params, access }, ctx) => {
      assertSecretName(params.name);
      return secretHistory(ctx, access, params.name);
    },
  }),
  defineRoute<{
    Params: NameParams;
    Body: { project: string; environment: string; version: number };
  }>({
    method: 'POST',
    url: '/v1/organization/:org/secrets/:name/rollback',
    action: 'secrets.rollback',
    schema: { params: nameParams, body: rollbackBody },
    scope: ({ params, body }) => ({
      org: params.org,
      project: body.project,
      environment: body.environment,
      target: isValidSecretName(params.name) ? params.name : null,
    }),
    handler: async ({ params, body, access }, ctx) => {
      assertSecretName(params.name);
      return rollbackSecret(ctx, access, params.name, body.version);
    },
  }),
];
