import { hostname } from 'node:os';
import { CrateError } from '@crate/crypto-core';
import { type Kysely, sql } from 'kysely';
import type { DatabaseEngine } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { findRunningRotation, type RotationKind } from './rotation.repository.js';

/** Who is rotating, as stored in key_rotations.owner and shown to a second attempt. */
export function rotationOwner(command: string): string {
  return `${command} (pid ${process.pid} on ${hostname()})`;
}

/** Rotations this process runs: on PGlite (one process per data dir) this is the whole lock. */
const heldInProcess = new Map<string, string>();

/**
 * Runs `fn` while holding the rotation lock of one scope (an org's DEK, or the master key),
 * so that two processes never rotate the same thing at once. On Postgres a session-level
 * advisory lock on a connection held for the duration: the database releases it the moment
 * the holder's connection goes away (a crash, kill -9), so a resumed rotation never waits for
 * a lease to expire. PGlite admits one process per data directory (the data-dir lock), so an
 * in-process lock suffices there. A second attempt fails at once with ERR_ROTATION_IN_PROGRESS
 * naming the holder recorded in key_rotations (process, host, last batch time).
 */
export async function withRotationLock<T>(
  db: Kysely<Database>,
  engine: DatabaseEngine,
  kind: RotationKind,
  scope: string,
  owner: string,
  fn: () => Promise<T>,
): Promise<T> {
  const name = `${kind}:${scope}`;
  if (heldInProcess.has(name)) throw await inProgress(db, kind, scope);
  heldInProcess.set(name, owner);
  try {
    if (engine === 'pglite') return await fn();
    return await db.connection().execute(async (connection) => {
      const key = sql`hashtextextended(${`crate-rotation:${name}`}, 0)`;
      const { rows } = await sql<{ locked: boolean }>`
        select pg_try_advisory_lock(${key}) as locked`.execute(connection);
      if (!rows[0]?.locked) throw await inProgress(db, kind, scope);
      try {
        return await fn();
      } finally {
        await sql`select pg_advisory_unlock(${key})`.execute(connection).catch(() => {});
      }
    });
  } finally {
    heldInProcess.delete(name);
  }
}

async function inProgress(
  db: Kysely<Database>,
  kind: RotationKind,
  scope: string,
): Promise<CrateError> {
  const running = await findRunningRotation(db, kind, scope).catch(() => undefined);
  const what = kind === 'org-dek' ? `the DEK of organization ${scope}` : 'the master key';
  const holder = running?.owner
    ? `${running.owner}, last batch ${running.heartbeatAt?.toISOString() ?? 'not yet'}, ${running.rewrapped} of ${running.total} re-wrapped`
    : 'another process';
  return new CrateError(
    'ERR_ROTATION_IN_PROGRESS',
    `a rotation of ${what} is already running in ${holder}; wait for it to finish (it resumes where it stopped if that process dies)`,
  );
}
