import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../http/context.js';
import type { HealthMonitor } from './health.monitor.js';

/**
 * GET /healthz, without authentication: enough for a load balancer and an operator to tell
 * whether this process can serve and, if not, which part fails (`checks`), and nothing an
 * attacker can use (no key material, no ids). 200 only when every check passes, else 503, so a
 * balancer takes the process out of rotation; it answers within the monitor's budget whatever
 * the database does.
 *
 * `status`, the one word: `unavailable` (the database does not answer), `failing-closed` (the
 * master key cannot open what the database holds), `audit-unavailable` (an audit entry cannot
 * be written, so every request is refused), else `ok`; the first that applies, in this order.
 */
export function registerHealthRoute(
  app: FastifyInstance,
  ctx: AppContext,
  monitor: HealthMonitor,
): void {
  app.get('/healthz', async (_request, reply) => {
    const checks = await monitor.checks();
    const keyring = ctx.keys.keyring;
    const unsealError = ctx.unseal.error;
    const status = !checks.database.ok
      ? 'unavailable'
      : !checks.masterKey.ok
        ? 'failing-closed'
        : !checks.audit.ok
          ? 'audit-unavailable'
          : 'ok';
    reply.code(status === 'ok' ? 200 : 503);
    return {
      status,
      checks,
      database: { reachable: checks.database.ok, engine: ctx.engine },
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
