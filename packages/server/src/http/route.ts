import { CrateError, isCrateError } from '@crate/crypto-core';
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import { type AuditEvent, SYSTEM_CHAIN } from '../audit/audit.writer.js';
import { authenticate } from '../auth/authenticate.js';
import { type Access, AccessDenied, authorize } from '../auth/authorize.js';
import { ACTIONS, type Action } from '../auth/policy.js';
import { actorOf, type Principal } from '../auth/principal.js';
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

interface RouteSpecBase<T extends RouteTypes> {
  method: HTTPMethods;
  url: string;
  action: Action;
  schema: { params?: JsonSchema; querystring?: JsonSchema; body?: JsonSchema };
  scope: (input: RouteInput<T>) => RouteScope;
  /** HTTP status of a successful answer (default 200). */
  status?: number;
}

/** A route for authenticated callers: the pipeline authorizes it and audits it before the work. */
export interface AuthenticatedRouteSpec<T extends RouteTypes = RouteTypes>
  extends RouteSpecBase<T> {
  open?: false;
  /**
   * A further rule that depends on the request itself (the role an invitation grants), checked
   * after the action's policy: it throws AccessDenied, which is audited as a denial like any.
   */
  authorizeInput?: (input: RouteInput<T>, access: Access) => void;
  /** Runs only after authentication, authorization and the audit entry all succeeded. */
  handler: (
    input: RouteInput<T> & { access: Access; request: FastifyRequest; reply: FastifyReply },
    ctx: AppContext,
  ) => Promise<unknown>;
}

/** One audit entry as an open route's handler describes it; the pipeline adds the request's fields. */
export interface RouteAuditEvent {
  chain: string;
  actor: string;
  orgId: string | null;
  target: string | null;
  outcome: 'success' | 'denied';
  code: string | null;
}

/**
 * A route whose credential is in its body (accepting an invitation): a bearer token is optional,
 * so a caller with no account yet can reach it. Whether the request is granted, and which org's
 * chain records it, is known only once the handler has checked the body's credential, so the
 * handler writes the entry itself, through `audit`, before it changes anything. The pipeline
 * still authenticates a token that is sent (an invalid one is refused and audited, never treated
 * as absent), refuses what the action's policy refuses, and records an 'error' entry when the
 * handler fails after a granted entry or before writing any.
 */
export interface OpenRouteSpec<T extends RouteTypes = RouteTypes> extends RouteSpecBase<T> {
  open: true;
  handler: (
    input: RouteInput<T> & {
      principal: Principal | undefined;
      audit: (event: RouteAuditEvent) => Promise<void>;
      request: FastifyRequest;
      reply: FastifyReply;
    },
    ctx: AppContext,
  ) => Promise<unknown>;
}

export type RouteSpec<T extends RouteTypes = RouteTypes> =
  | AuthenticatedRouteSpec<T>
  | OpenRouteSpec<T>;

/** Declares a route; the type parameter types params, query and body for scope and handler. */
export function defineRoute<T extends RouteTypes>(spec: AuthenticatedRouteSpec<T>): RouteSpec {
  return spec as unknown as RouteSpec;
}

/** Declares an open route (see OpenRouteSpec). */
export function defineOpenRoute<T extends RouteTypes>(
  spec: Omit<OpenRouteSpec<T>, 'open'>,
): RouteSpec {
  return { ...spec, open: true } as unknown as RouteSpec;
}

/**
 * Registers routes so that every one of them runs the same pipeline:
 *   authenticate -> authorize -> audit -> work.
 * A failed authentication or authorization is audited as 'denied' and answered; a granted
 * request is audited as 'success' BEFORE its work starts, so nothing happens (and nothing is
 * returned) unless its entry is committed. If the work then fails, an 'error' entry with the
 * same request id records the code. Audit write failures answer ERR_AUDIT_UNAVAILABLE.
 * Open routes (OpenRouteSpec) differ only in who writes the granted request's entry.
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
        const result = spec.open
          ? await runOpenPipeline(spec, input, request, reply, ctx)
          : await runPipeline(spec, input, request, reply, ctx);
        reply.code(spec.status ?? 200);
        return result;
      },
    });
  }
}

type BaseEntry = Omit<AuditEvent, 'chain' | 'actor' | 'orgId' | 'outcome' | 'code'>;

function baseEntry(spec: RouteSpec, scope: RouteScope, request: FastifyRequest, ctx: AppContext) {
  return {
    time: ctx.now().toISOString(),
    requestId: request.id,
    action: spec.action,
    target: scope.target ?? null,
    project: scope.project ?? null,
    environment: scope.environment ?? null,
    clientAddress: request.ip ?? null,
  } satisfies BaseEntry;
}

/** Authenticates the bearer token; a failure is audited in the system chain and thrown. */
async function authenticateOrDeny(
  request: FastifyRequest,
  ctx: AppContext,
  base: BaseEntry,
  scope: RouteScope,
): Promise<Principal> {
  const authn = await authenticate(ctx.db, request.headers.authorization, ctx.now());
  if ('principal' in authn) return authn.principal;
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

/** Authorizes the action; a denial is audited (in the named org's chain if it exists) and thrown. */
async function authorizeOrDeny(
  spec: RouteSpec,
  input: RouteInput<RouteTypes>,
  principal: Principal,
  ctx: AppContext,
  base: BaseEntry,
  scope: RouteScope,
): Promise<Access> {
  try {
    const access = await authorize(ctx.db, principal, {
      action: spec.action,
      ...(scope.org !== undefined && { org: scope.org }),
      ...(scope.project !== undefined && { project: scope.project }),
      ...(scope.environment !== undefined && { environment: scope.environment }),
    });
    if (!spec.open) spec.authorizeInput?.(input, access);
    return access;
  } catch (error) {
    if (!(error instanceof AccessDenied)) throw error;
    // A probe at another tenant goes into that tenant's chain, where its admins can see it.
    const chain =
      scope.org !== undefined && (await orgExists(ctx, scope.org)) ? scope.org : SYSTEM_CHAIN;
    await ctx.audit.append({
      ...base,
      chain,
      actor: actorOf(principal),
      orgId: scope.org ?? null,
      outcome: 'denied',
      code: error.code,
    });
    throw new CrateError(error.code, error.message);
  }
}

async function runPipeline(
  spec: AuthenticatedRouteSpec,
  input: RouteInput<RouteTypes>,
  request: FastifyRequest,
  reply: FastifyReply,
  ctx: AppContext,
): Promise<unknown> {
  const scope = spec.scope(input);
  const base = baseEntry(spec, scope, request, ctx);
  const principal = await authenticateOrDeny(request, ctx, base, scope);
  const access = await authorizeOrDeny(spec, input, principal, ctx, base, scope);

  const chain = ACTIONS[spec.action].scope === 'none' ? SYSTEM_CHAIN : access.org!.id;
  const entry = { ...base, chain, actor: actorOf(principal), orgId: access.org?.id ?? null };
  await ctx.audit.append({ ...entry, outcome: 'success', code: null });
  try {
    return await spec.handler({ ...input, access, request, reply }, ctx);
  } catch (error) {
    await auditFailure(ctx, request, { ...entry, time: ctx.now().toISOString() }, error);
    throw error;
  }
}

async function runOpenPipeline(
  spec: OpenRouteSpec,
  input: RouteInput<RouteTypes>,
  request: FastifyRequest,
  reply: FastifyReply,
  ctx: AppContext,
): Promise<unknown> {
  const scope = spec.scope(input);
  const base = baseEntry(spec, scope, request, ctx);
  let principal: Principal | undefined;
  if (request.headers.authorization !== undefined) {
    principal = await authenticateOrDeny(request, ctx, base, scope);
    await authorizeOrDeny(spec, input, principal, ctx, base, scope);
  }
  let last: RouteAuditEvent | undefined;
  const audit = async (event: RouteAuditEvent): Promise<void> => {
    await ctx.audit.append({ ...base, time: ctx.now().toISOString(), ...event });
    last = event;
  };
  try {
    return await spec.handler({ ...input, principal, audit, request, reply }, ctx);
  } catch (error) {
    // A refusal the handler has just recorded needs no second entry.
    const recorded = last?.outcome === 'denied' && isCrateError(error) && error.code === last.code;
    if (!recorded) {
      await auditFailure(
        ctx,
        request,
        {
          ...base,
          time: ctx.now().toISOString(),
          chain: last?.chain ?? SYSTEM_CHAIN,
          actor: last?.actor ?? actorOf(principal),
          orgId: last?.orgId ?? null,
          target: last?.target ?? base.target,
        },
        error,
      );
    }
    throw error;
  }
}

/** Records that a granted request failed; best effort, since the failure is already the answer. */
async function auditFailure(
  ctx: AppContext,
  request: FastifyRequest,
  entry: Omit<AuditEvent, 'outcome' | 'code'>,
  error: unknown,
): Promise<void> {
  const code = isCrateError(error) ? error.code : 'ERR_INTERNAL';
  await ctx.audit.append({ ...entry, outcome: 'error', code }).catch((auditError: unknown) => {
    request.log.error({ err: auditError }, 'could not audit the failure of a granted request');
  });
}

async function orgExists(ctx: AppContext, orgId: string): Promise<boolean> {
  const row = await ctx.db
    .selectFrom('orgs')
    .select('id')
    .where('id', '=', orgId)
    .executeTakeFirst();
  return row !== undefined;
}
