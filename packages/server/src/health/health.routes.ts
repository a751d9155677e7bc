import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { AppContext } from '../http/context.js';

/**
 * GET /healthz, without authentication: enough for a load balancer and an operator to tell
 * why the server fails closed, and nothing an attacker can use (no key material, no ids).
 */
export function registerHealthRoute(app: FastifyInstance, ctx: AppContext): void {
  app.get('/healthz', async (_request, reply) => {
    let databaseReachable = true;
    try {
      await sql`select 1`.execute(ctx.db);
    } catch {
      databaseReachable = false;
    }
    const keyring = ctx.keys.keyring;
    const unsealError = ctx.unseal.error;
    const status = !databaseReachable ? 'unavailable' : unsealError ? 'failing-closed' : 'ok';
    reply.code(status === 'ok' ? 200 : 503);
    return {
      status,
      database: { reachable: databaseReachable, engine: ctx.engine },
      masterKey: {
        loaded: true,
        source: ctx.masterKey.source,
        location: ctx.masterKey.location,
        activeVersion: keyring.activeVersion,
        versions: keyring.versions(),
        protectedAtRest: ctx.masterKey.protectedAtRest,
        insecureDevKey: ctx.masterKey.insecureDevKey,
      },
      unseal: unsealError
        ? {
            ok: false,
            error: { code: unsealError.code, message: unsealError.message, since: unsealError.at },
          }
        : { ok: true },
    };
  });
}
