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
 * advisory lock: the database releases it the moment the holder's connection goes away (a
 * crash, kill -9), so a resumed rotation never waits for a lease to expire. PGlite admits one
 * process per data directory (the data-dir lock), so an in-process lock suffices there. A
 * second attempt fails at once with ERR_ROTATION_IN_PROGRESS naming the holder recorded in
 * key_rotations (process, host, last batch time). Each batch also checks, under the rotation
 * row's lock, that the cursor is where this process left it, so even a lost lock connection
 * cannot make two processes apply batches to one rotation.
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
    const session = lockSessionOf(db);
    const key = `crate-rotation:${name}`;
    if (!(await session.tryLock(key))) throw await inProgress(db, kind, scope);
    try {
      return await fn();
    } finally {
      await session.unlock(key);
    }
  } finally {
    heldInProcess.delete(name);
  }
}

/**
 * One pooled connection per database handle holds every advisory lock of this process, and
 * only while at least one is held: however many orgs rotate at once, they take one connection
 * away from the pool, not one each (the batches borrow and return connections as usual).
 */
class LockSession {
  readonly #db: Kysely<Database>;
  #connection: Promise<Kysely<Database>> | undefined;
  #release: (() => void) | undefined;
  #held = 0;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async tryLock(key: string): Promise<boolean> {
    this.#held += 1;
    try {
      const connection = await this.#open();
      const { rows } = await sql<{ locked: boolean }>`
        select pg_try_advisory_lock(hashtextextended(${key}, 0)) as locked`.execute(connection);
      if (rows[0]?.locked) return true;
    } catch (error) {
      this.#drop();
      throw error;
    }
    this.#drop();
    return false;
  }

  async unlock(key: string): Promise<void> {
    try {
      const connection = await this.#open();
      await sql`select pg_advisory_unlock(hashtextextended(${key}, 0))`.execute(connection);
    } catch {
      // The connection is gone, and the lock with it.
    } finally {
      this.#drop();
    }
  }

  #open(): Promise<Kysely<Database>> {
    this.#connection ??= new Promise((resolve, reject) => {
      const released = new Promise<void>((done) => {
        this.#release = done;
      });
      this.#db
        .connection()
        .execute(async (connection) => {
          resolve(connection);
          await released;
        })
        .catch(reject);
    });
    return this.#connection;
  }

  #drop(): void {
    this.#held -= 1;
    if (this.#held === 0) {
      this.#release?.();
      this.#release = undefined;
      this.#connection = undefined;
    }
  }
}

const sessions = new WeakMap<Kysely<Database>, LockSession>();

function lockSessionOf(db: Kysely<Database>): LockSession {
  let session = sessions.get(db);
  if (!session) {
    session = new LockSession(db);
    sessions.set(db, session);
  }
  return session;
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
