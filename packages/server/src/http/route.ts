import { CrateError, isCrateError } from '@crate/crypto-core';
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import { SYSTEM_CHAIN } from '../audit/audit.writer.js';
import { authenticate } from '../auth/authenticate.js';
import { type Access, AccessDenied, authorize } from '../auth/authorize.js';
import { ACTIONS, type Action } from '../auth/policy.js';
import { actorOf } from '../auth/principal.js';
import type { AppContext } from './context.js';
import type { JsonSchema } from './schema.js';

export interface RouteTypes {
  Params?: unknown;
  Querystring?: unknown;
  Body?: unknown;
}

export interface RouteInput<T extends RouteTypes> {
  params: T['Params'];
  query: T['Querystring'];
  body: T['Body'];
}

/** What the action applies to, named from the parsed request; slugs, not ids. */
export interface RouteScope {
  org?: string;
  project?: string;
  environment?: string;
  /** The thing acted on, for the audit entry: a secret name, a member id, a token id. Never a value. */
  target?: string | null;
}

export interface RouteSpec<T extends RouteTypes = RouteTypes> {
  method: HTTPMethods;
  url: string;
  action: Action;
  schema: { params?: JsonSchema; querystring?: JsonSchema; body?: JsonSchema };
  scope: (input: RouteInput<T>) => RouteScope;
  /** Runs only after authentication, authorization and the audit entry all succeeded. */
  handler: (
    input: RouteInput<T> & { access: Access; request: FastifyRequest; reply: FastifyReply },
    ctx: AppContext,
  ) => Promise<unknown>;
  /** HTTP status of a successful answer (default 200). */
  status?: number;
}

/** Declares a route; the type parameter types params, query and body for scope and handler. */
export function defineRoute<T extends RouteTypes>(spec: RouteSpec<T>): RouteSpec {
  return spec as unknown as RouteSpec;
}

/**
 * Registers routes so that every one of them runs the same pipeline:
 *   authenticate -> authorize -> audit -> work.
 * A failed authentication or authorization is audited as 'denied' and answered; a granted
 * request is audited as 'success' BEFORE its work starts, so nothing happens (and nothing is
 * returned) unless its entry is committed. If the work then fails, an 'error' entry with the
 * same request id records the code. Audit write failures answer ERR_AUDIT_UNAVAILABLE.
 */
export function registerRoutes(app: FastifyInstance, ctx: AppContext, routes: RouteSpec[]): void {
  for (const spec of routes) {
    app.route({
      method: spec.method,
      url: spec.url,
      schema: spec.schema,
      handler: async (request, reply) => {
        const input: RouteInput<RouteTypes> = {
          params: request.params,
          query: request.query,
          body: request.body,
        };
        const result = await runPipeline(spec, input, request, reply, ctx);
        reply.code(spec.status ?? 200);
        return result;
      },
    });
  }
}

async function runPipeline(
  spec: RouteSpec,
  input: RouteInput<RouteTypes>,
  request: FastifyRequest,
  reply: FastifyReply,
  ctx: AppContext,
): Promise<unknown> {
  const scope = spec.scope(input);
  const base = {
    time: ctx.now().toISOString(),
    requestId: request.id,
    action: spec.action,
    target: scope.target ?? null,
    project: scope.project ?? null,
    environment: scope.environment ?? null,
    clientAddress: request.ip ?? null,
  };

  const authn = await authenticate(ctx.db, request.headers.authorization, ctx.now());
  if (!('principal' in authn)) {
    // Failed authentication belongs to no org: the system chain, with the org the caller named.
    await ctx.audit.append({
      ...base,
      chain: SYSTEM_CHAIN,
      actor: actorOf(undefined, authn.tokenId),
      orgId: scope.org ?? null,
      outcome: 'denied',
      code: authn.error.code,
    });
    throw authn.error;
  }
  const actor = actorOf(authn.principal);

  let access: Access;
  try {
    access = await authorize(ctx.db, authn.principal, {
      action: spec.action,
      ...(scope.org !== undefined && { org: scope.org }),
      ...(scope.project !== undefined && { project: scope.project }),
      ...(scope.environment !== undefined && { environment: scope.environment }),
    });
  } catch (error) {
    if (!(error instanceof AccessDenied)) throw error;
    // A probe at another tenant goes into that tenant's chain, where its admins can see it.
    const chain =
      scope.org !== undefined && (await orgExists(ctx, scope.org)) ? scope.org : SYSTEM_CHAIN;
    await ctx.audit.append({
      ...base,
      chain,
      actor,
      orgId: scope.org ?? null,
      outcome: 'denied',
      code: error.code,
    });
    throw new CrateError(error.code, error.message);
  }

  const chain = ACTIONS[spec.action].scope === 'none' ? SYSTEM_CHAIN : access.org!.id;
  const entry = { ...base, chain, actor, orgId: access.org?.id ?? null };
  await ctx.audit.append({ ...entry, outcome: 'success', code: null });
  try {
    return await spec.handler({ ...input, access, request, reply }, ctx);
  } catch (error) {
    const code = isCrateError(error) ? error.code : 'ERR_INTERNAL';
    await ctx.audit
      .append({ ...entry, time: ctx.now().toISOString(), outcome: 'error', code })
      .catch((auditError: unknown) => {
        request.log.error({ err: auditError }, 'could not audit the failure of a granted request');
      });
    throw error;
  }
}

async function orgExists(ctx: AppContext, orgId: string): Promise<boolean> {
  const row = await ctx.db
    .selectFrom('orgs')
    .select('id')
    .where('id', '=', orgId)
    .executeTakeFirst();
  return row !== undefined;
}
