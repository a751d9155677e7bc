import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Keyring } from '@crate/crypto-core';
import { CrateError } from '@crate/crypto-core';
import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema.js';

/**
 * Running servers announce the master key versions they hold (table master_key_holders), so
 * that `crate-server keys rotate-master` can refuse while a server sharing the database lacks
 * the version it would re-wrap under: such a server could not open the re-wrapped keys and
 * would fail closed at its next cache miss. A row is written at start, its heartbeat refreshed
 * every HEARTBEAT_MS, and removed at shutdown; a server that died stops counting once its
 * heartbeat is older than LIVE_SECONDS.
 */
const HEARTBEAT_MS = 30_000;
const LIVE_SECONDS = 90;

export interface MasterKeyHolder {
  host: string;
  pid: number;
  command: string;
  versions: number[];
  activeVersion: number;
  heartbeatAt: Date;
}

export function registerMasterKeyHolder(
  db: Kysely<Database>,
  keyring: Keyring,
  command: string,
  onError: (error: unknown) => void,
): { first: Promise<void>; stop(): Promise<void> } {
  const id = `mkh_${randomBytes(16).toString('hex')}`;
  const versions = keyring.versions();
  const upsert = () =>
    sql`
      insert into master_key_holders (id, host, pid, command, versions, active_version)
      values (${id}, ${hostname()}, ${process.pid}, ${command},
              array[${sql.join(versions)}]::int[], ${keyring.activeVersion})
      on conflict (id) do update set heartbeat_at = now()`
      .execute(db)
      .then(
        () => undefined,
        (error: unknown) => onError(error),
      );
  let pending = upsert();
  const timer = setInterval(() => {
    pending = pending.then(upsert);
  }, HEARTBEAT_MS);
  timer.unref();
  return {
    first: pending,
    stop: async () => {
      clearInterval(timer);
      await pending;
      await db
        .deleteFrom('master_key_holders')
        .where('id', '=', id)
        .execute()
        .catch(() => {});
    },
  };
}

/** Live servers (heartbeat within LIVE_SECONDS) that do not hold master key `version`. */
export function liveHoldersLacking(
  db: Kysely<Database>,
  version: number,
): Promise<MasterKeyHolder[]> {
  return liveHolders(db, sql`not (${version}::int = any(versions))`);
}

/** Live servers whose active master key version (the one they wrap new keys under) is `version`. */
export function liveHoldersActiveOn(
  db: Kysely<Database>,
  version: number,
): Promise<MasterKeyHolder[]> {
  return liveHolders(db, sql`active_version = ${version}`);
}

/** How a list of servers reads in a refusal: command, pid, host and versions of each. */
export function describeHolders(holders: MasterKeyHolder[]): string {
  return holders
    .map((h) => `${h.command} (pid ${h.pid} on ${h.host}, versions ${h.versions.join(', ')})`)
    .join('; ');
}

/**
 * Refuses (ERR_CONFLICT) while a live server sharing this Postgres lacks master key `version`:
 * it could not open `what` once wrapped under that version, and would fail closed for the orgs
 * concerned at its next cache miss. On PGlite no other process can share the database.
 */
export async function refuseWhileHoldersLack(
  db: Kysely<Database>,
  engine: 'pglite' | 'postgres',
  version: number,
  what: string,
): Promise<void> {
  if (engine !== 'postgres') return;
  const lacking = await liveHoldersLacking(db, version);
  if (lacking.length === 0) return;
  throw new CrateError(
    'ERR_CONFLICT',
    `${describeHolders(lacking)} ${lacking.length === 1 ? 'runs' : 'run'} without master key version ${version} and could not open ` +
      `${what}: restart every server with the key file that holds it, then run this again`,
  );
}

async function liveHolders(
  db: Kysely<Database>,
  condition: ReturnType<typeof sql>,
): Promise<MasterKeyHolder[]> {
  const { rows } = await sql<{
    host: string;
    pid: number;
    command: string;
    versions: number[];
    active_version: number;
    heartbeat_at: Date;
  }>`
    select host, pid, command, versions, active_version, heartbeat_at
      from master_key_holders
     where heartbeat_at > now() - make_interval(secs => ${LIVE_SECONDS})
       and ${condition}
     order by started_at`.execute(db);
  return rows.map((row) => ({
    host: row.host,
    pid: row.pid,
    command: row.command,
    versions: row.versions,
    activeVersion: row.active_version,
    heartbeatAt: row.heartbeat_at,
  }));
}
