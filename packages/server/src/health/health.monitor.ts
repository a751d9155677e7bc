import { type ErrorCode, isCrateError } from '@crate/crypto-core';
import { type Kysely, sql } from 'kysely';
import { probeAuditInsert } from '../audit/audit.repository.js';
import type { AuditWriter } from '../audit/audit.writer.js';
import { isSqlError } from '../db/database-errors.js';
import type { Database } from '../db/schema.js';
import type { UnsealState } from '../keys/unseal-state.js';

/** One part the server needs in order to serve; `error` says what failed, never a value or id. */
export interface HealthCheck {
  ok: boolean;
  error?: { code: ErrorCode; message: string };
  /** ISO time of the observation the answer rests on. */
  checkedAt: string;
}

export interface HealthChecks {
  database: HealthCheck;
  audit: HealthCheck;
  masterKey: HealthCheck;
}

export interface HealthMonitorOptions {
  /** Longest a health answer waits for a probe; the route answers within about this. */
  budgetMs: number;
  /** A database answer is reused this long (many balancers probe every second or more). */
  databaseCacheMs: number;
  /** While the audit log is known writable, it is probed again this often. */
  auditProbeIntervalMs: number;
  /** While the audit log is known failing, this often (to see it recover). */
  auditRetryIntervalMs: number;
}

export const DEFAULT_HEALTH_OPTIONS: HealthMonitorOptions = {
  budgetMs: 500,
  databaseCacheMs: 1_000,
  auditProbeIntervalMs: 5_000,
  auditRetryIntervalMs: 1_000,
};

interface Observation {
  ok: boolean;
  at: number;
  error?: { code: ErrorCode; message: string };
}

const unanswered = (what: string, budgetMs: number) => ({
  code: 'ERR_DATABASE_UNAVAILABLE' as const,
  message: `${what} did not answer within ${budgetMs} ms`,
});

/** What a failed probe says: a Crate code and message, or the SQLSTATE (never SQL or values). */
function describe(error: unknown, fallback: ErrorCode): { code: ErrorCode; message: string } {
  if (isCrateError(error)) return { code: error.code, message: error.message };
  return {
    code: fallback,
    message: isSqlError(error)
      ? `the database refused it (SQLSTATE ${error.code})`
      : 'the probe failed',
  };
}

/**
 * What /healthz reports: whether this process can serve, part by part. A probe never makes the
 * answer wait longer than the budget, whatever the database does: each probe runs at most once
 * at a time (a hung one is not started again on every request, and it ends at the database
 * statement limit), and an answer that is not in within the budget is reported as a failure.
 *
 * The audit log: a request is refused unless its entry commits, so health reports the newest of
 * two observations: the outcome of the last real append (AuditWriter.lastWrite) and a probe,
 * an entry-shaped insert rolled back (audit.repository.ts, probeAuditInsert), which writes
 * nothing to any chain. The probe runs every auditProbeIntervalMs while the log is writable, to
 * notice a revoked grant or a read-only database before a request does, and every
 * auditRetryIntervalMs after a failure, so health (and the balancer) sees the recovery even
 * though no request reaches a server that answers 503.
 */
export class HealthMonitor {
  readonly #db: Kysely<Database>;
  readonly #audit: AuditWriter;
  readonly #unseal: UnsealState;
  readonly #options: HealthMonitorOptions;
  #database: Observation | undefined;
  #databaseProbe: Promise<Observation> | undefined;
  #auditProbed: Observation | undefined;
  #auditProbe: Promise<Observation> | undefined;

  constructor(
    deps: { db: Kysely<Database>; audit: AuditWriter; unseal: UnsealState },
    options: HealthMonitorOptions = DEFAULT_HEALTH_OPTIONS,
  ) {
    this.#db = deps.db;
    this.#audit = deps.audit;
    this.#unseal = deps.unseal;
    this.#options = options;
  }

  async checks(): Promise<HealthChecks> {
    const [database, audit] = await Promise.all([this.#checkDatabase(), this.#checkAudit()]);
    const unsealError = this.#unseal.error;
    const masterKey: HealthCheck = unsealError
      ? {
          ok: false,
          error: { code: unsealError.code, message: unsealError.message },
          checkedAt: unsealError.at,
        }
      : { ok: true, checkedAt: new Date().toISOString() };
    return { database: toCheck(database), audit: toCheck(audit), masterKey };
  }

  async #checkDatabase(): Promise<Observation> {
    const now = Date.now();
    if (this.#database && now - this.#database.at < this.#options.databaseCacheMs) {
      return this.#database;
    }
    this.#databaseProbe ??= sql`select 1`
      .execute(this.#db)
      .then(
        () => ({ ok: true, at: Date.now() }),
        (error: unknown) => ({
          ok: false,
          at: Date.now(),
          error: describe(error, 'ERR_DATABASE_UNAVAILABLE'),
        }),
      )
      .then((observation: Observation) => {
        this.#database = observation;
        this.#databaseProbe = undefined;
        return observation;
      });
    return this.#within(this.#databaseProbe, () => ({
      ok: false,
      at: Date.now(),
      error: unanswered('the database', this.#options.budgetMs),
    }));
  }

  async #checkAudit(): Promise<Observation> {
    const written = this.#audit.lastWrite;
    const real: Observation | undefined = written && {
      ok: written.ok,
      at: written.at,
      ...(written.error && { error: { code: written.error.code, message: written.error.message } }),
    };
    const probed = this.#auditProbed;
    const newest = !probed || (real && real.at >= probed.at) ? real : probed;
    const interval = newest?.ok
      ? this.#options.auditProbeIntervalMs
      : this.#options.auditRetryIntervalMs;
    if (newest && Date.now() - newest.at < interval) return newest;
    this.#auditProbe ??= probeAuditInsert(this.#db)
      .then(
        () => ({ ok: true, at: Date.now() }),
        (error: unknown) => ({
          ok: false,
          at: Date.now(),
          error: {
            code: 'ERR_AUDIT_UNAVAILABLE' as const,
            message: `an audit entry cannot be written: ${describe(error, 'ERR_AUDIT_UNAVAILABLE').message}`,
          },
        }),
      )
      .then((observation: Observation) => {
        this.#auditProbed = observation;
        this.#auditProbe = undefined;
        return observation;
      });
    return this.#within(this.#auditProbe, () => ({
      ok: false,
      at: Date.now(),
      error: {
        code: 'ERR_AUDIT_UNAVAILABLE',
        message: `the audit probe did not answer within ${this.#options.budgetMs} ms`,
      },
    }));
  }

  #within(probe: Promise<Observation>, late: () => Observation): Promise<Observation> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<Observation>((resolve) => {
      timer = setTimeout(() => resolve(late()), this.#options.budgetMs);
    });
    return Promise.race([probe, deadline]).finally(() => clearTimeout(timer));
  }
}

function toCheck(observation: Observation): HealthCheck {
  return {
    ok: observation.ok,
    ...(observation.error && { error: observation.error }),
    checkedAt: new Date(observation.at).toISOString(),
  };
}
