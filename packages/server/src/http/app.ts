import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { AppContext } from './context.js';
import { isClientAbort, originOf, toHttpError } from './errors.js';
import { type RouteSpec, registerRoutes } from './route.js';

export interface AppOptions {
  /** Largest accepted request body in bytes (default 1 MiB: a batch of seals fits easily). */
  bodyLimit?: number;
  /** Fastify logger options; false in unit tests. Default: JSON to stderr, secrets redacted. */
  logger?: FastifyServerOptions['logger'];
  https?: { cert: Buffer; key: Buffer };
}

export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/**
 * Paths pino replaces with [REDACTED]. Request bodies are never logged at all (the request
 * serializer below keeps method, url and ids only); these are defence in depth for anything a
 * route might log by mistake.
 */
export const REDACTED_LOG_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'token',
  '*.token',
  'seal',
  '*.seal',
  'secrets[*].seal',
  '*.secrets[*].seal',
  'bundle',
  '*.bundle',
  'body',
  '*.body',
  'value',
  '*.value',
];

export function defaultLoggerOptions(): FastifyServerOptions['logger'] {
  return {
    level: process.env.CRATE_LOG_LEVEL ?? 'info',
    redact: { paths: REDACTED_LOG_PATHS, censor: '[REDACTED]' },
    // stdout carries the machine-readable "listening" line; logs go to stderr.
    stream: process.stderr,
    serializers: {
      req: (req: { method: string; url: string; id: string; ip?: string }) => ({
        method: req.method,
        // The path only: query strings carry no secrets today, but nothing needs them logged.
        url: req.url.split('?')[0],
        id: req.id,
        ip: req.ip,
      }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
  } as FastifyServerOptions['logger'];
}

export function buildApp(
  ctx: AppContext,
  routes: RouteSpec[],
  options: AppOptions = {},
): FastifyInstance {
  const app = Fastify({
    logger: options.logger ?? defaultLoggerOptions(),
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    genReqId: () => `req_${randomBytes(12).toString('base64url')}`,
    ...(options.https && { https: options.https }),
    ajv: {
      customOptions: {
        // Unknown fields are errors, not silently dropped; bodies are never type-coerced.
        removeAdditional: false,
        coerceTypes: false,
        useDefaults: false,
        allErrors: false,
      },
    },
  }) as unknown as FastifyInstance;

  // The request id joins a client's report to the log line and the audit entry.
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.setErrorHandler((error, request, reply) => {
    if (isClientAbort(error, request.raw)) {
      // The client reset the connection mid-request: nothing to answer and nothing wrong here.
      const code = 'ERR_BAD_REQUEST';
      request.log.info(
        { code, origin: 'client', reason: (error as Error).message },
        'the client closed the connection before its request was complete',
      );
      reply.code(400).send({ error: { code, message: 'the request was not complete' } });
      return;
    }
    const { status, body } = toHttpError(error);
    if (status >= 500) {
      request.log.error(
        { err: error, code: body.error.code, origin: originOf(error) },
        'request failed',
      );
    }
    reply.code(status).send(body);
  });
  app.setNotFoundHandler((_request, reply) => {
    reply.code(404).send({ error: { code: 'ERR_NOT_FOUND', message: 'no such route' } });
  });

  registerRoutes(app, ctx, routes);
  return app;
}
