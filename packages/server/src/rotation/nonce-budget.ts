import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema.js';

/**
 * The nonce budget. AES-GCM with random 96-bit nonces must not encrypt more than 2^32
 * messages under one key (NIST SP 800-38D §8.3): beyond that the chance of a repeated nonce,
 * which breaks GCM's confidentiality and integrity for that key, exceeds 2^-32. Crate counts
 * every encryption per key version, in the same transaction as the write (database triggers,
 * migration 20261130T1000_key_rotation), and:
 *
 *  - from the soft limit (2^30) on, warns and rotates: a server that sees an org DEK version
 *    past it starts that org's DEK rotation by itself, when that gives room (see
 *    orgsPastSoftLimit);
 *    a master key version past it is reported on every start and by `keys status`;
 *  - past the hard limit (2^31, half the bound) refuses the write: ERR_NONCE_BUDGET_EXHAUSTED.
 *
 * Org DEK versions count secret DEK wraps (one per secret version written, one per re-wrap
 * into the version); master key versions count org DEK and private key wraps. The limits can
 * be lowered for tests with a row in key_budget_limits. The trigger raises SQLSTATE CR001,
 * which http/errors.ts maps to ERR_NONCE_BUDGET_EXHAUSTED.
 */

export interface KeyVersionUsage {
  kind: 'org-dek' | 'master-key';
  scope: string;
  version: number;
  encryptions: number;
  softLimit: number;
  hardLimit: number;
  /** True for the org's active DEK / the master key version currently in use most. */
  active: boolean;
}

/** Usage of every key version still in use (org DEKs not destroyed; master versions referenced). */
export async function keyUsage(db: Kysely<Database>): Promise<KeyVersionUsage[]> {
  const { rows } = await sql<{
    kind: 'org-dek' | 'master-key';
    scope: string;
    version: number;
    encryptions: string;
    soft: string;
    hard: string;
    active: boolean;
  }>`
    select u.key_kind as kind, u.scope, u.version, sum(u.encryptions)::text as encryptions,
           crate_key_budget(u.key_kind, 'soft')::text as soft,
           crate_key_budget(u.key_kind, 'hard')::text as hard,
           coalesce(bool_or(d.status = 'active'), false) as active
      from key_usage u
      left join org_deks d
        on u.key_kind = 'org-dek' and d.org_id = u.scope and d.version = u.version
     where u.key_kind = 'master-key' or d.status is distinct from 'destroyed'
     group by u.key_kind, u.scope, u.version
     order by u.key_kind, u.scope, u.version`.execute(db);
  return rows.map((row) => ({
    kind: row.kind,
    scope: row.scope,
    version: row.version,
    encryptions: Number(row.encryptions),
    softLimit: Number(row.soft),
    hardLimit: Number(row.hard),
    active: row.active,
  }));
}

/**
 * Orgs whose active DEK version is at or past the soft limit. A rotation re-wraps every
 * stored secret DEK under the new version, which counts against it as well: it only gives
 * room when the org stores far fewer secret versions than the old version has encrypted
 * (versions removed with their environment or project). `relieves` says whether it does
 * (the org stores fewer than half the soft limit); otherwise the org has outgrown what one
 * DEK version may wrap and rotating would not help.
 */
export async function orgsPastSoftLimit(
  db: Kysely<Database>,
): Promise<Array<{ orgId: string; encryptions: number; stored: number; relieves: boolean }>> {
  const { rows } = await sql<{ scope: string; encryptions: string; stored: number }>`
    select u.scope, sum(u.encryptions)::text as encryptions,
           (select count(*)::int from secret_versions sv join secrets s on s.id = sv.secret_id
             where s.org_id = u.scope) as stored
      from key_usage u
      join org_deks d on d.org_id = u.scope and d.version = u.version and d.status = 'active'
     where u.key_kind = 'org-dek'
     group by u.scope, u.version
    having sum(u.encryptions) >= crate_key_budget('org-dek', 'soft')
     order by u.scope`.execute(db);
  const soft = await softLimit(db, 'org-dek');
  return rows.map((row) => ({
    orgId: row.scope,
    encryptions: Number(row.encryptions),
    stored: row.stored,
    relieves: row.stored < soft / 2,
  }));
}

async function softLimit(db: Kysely<Database>, kind: 'org-dek' | 'master-key'): Promise<number> {
  const { rows } = await sql<{ soft: string }>`
    select crate_key_budget(${kind}, 'soft')::text as soft`.execute(db);
  return Number(rows[0]!.soft);
}

/** Master key versions at or past the soft limit (rotate the master key). */
export async function masterVersionsPastSoftLimit(db: Kysely<Database>): Promise<number[]> {
  const { rows } = await sql<{ version: number }>`
    select version from key_usage where key_kind = 'master-key'
     group by version
    having sum(encryptions) >= crate_key_budget('master-key', 'soft')
     order by version`.execute(db);
  return rows.map((row) => row.version);
}
