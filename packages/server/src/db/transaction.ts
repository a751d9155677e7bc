import { randomInt } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.js';

/**
 * Honest concurrency that Postgres resolves by aborting one transaction: a serialization
 * failure (40001) or a detected deadlock (40P01). Row locks are taken in one canonical order
 * (sorted names, see secrets.service.ts), so deadlocks between Crate's own transactions should
 * not arise; this is the second line, for lock orders no code path can fix (the nonce-budget
 * counter shards, a foreign-key check) and for whatever an operator's own SQL takes.
 */
const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']);

export interface RetryPolicy {
  /** Attempts in all, the first one included. */
  attempts: number;
  /** Backoff before retry n (1-based) is a random delay in [0, baseDelayMs * 2^(n-1)). */
  baseDelayMs: number;
}

/** Five attempts, jittered over at most 10 + 20 + 40 + 80 ms: far below any request timeout. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 5, baseDelayMs: 10 };

export function isRetryableTransactionError(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    RETRYABLE_SQLSTATES.has(String((error as { code?: unknown }).code))
  );
}

/**
 * Runs `work` in a transaction and, when Postgres aborts it with a serialization failure or a
 * deadlock, runs it again from the start, up to `policy.attempts` times with jittered
 * exponential backoff (two losers retrying in lockstep would collide again). The aborted
 * attempt wrote nothing, so running `work` again is safe as long as it only touches the
 * database through `trx` and has no other side effect: callers keep audit entries, network
 * calls and anything else that must happen once outside of it (the audit entry of a request is
 * committed before its work starts, http/route.ts). After the last attempt the error goes to
 * the caller unchanged (http/errors.ts answers it 503 ERR_DATABASE_BUSY, never 500).
 */
export async function inTransaction<T>(
  db: Kysely<Database>,
  work: (trx: Transaction<Database>) => Promise<T>,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute(work);
    } catch (error) {
      if (attempt >= policy.attempts || !isRetryableTransactionError(error)) throw error;
      const ceiling = policy.baseDelayMs * 2 ** (attempt - 1);
      await new Promise((resolve) => setTimeout(resolve, randomInt(0, Math.max(1, ceiling))));
    }
  }
}
