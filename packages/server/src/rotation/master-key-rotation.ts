import {
  CrateError,
  type Keyring,
  rewrapOrgDek,
  rewrapOrgMacKey,
  rewrapPrivateKey,
  type VersionedKey,
} from '@crate/crypto-core';
import { type Kysely, sql } from 'kysely';
import type { DatabaseEngine } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { inTransaction } from '../db/transaction.js';
import {
  DEFAULT_BATCH_SIZE,
  type RotationOptions,
  type RotationReport,
} from './org-dek-rotation.js';
import {
  advanceRotation,
  findRunningRotation,
  insertRotation,
  lockRotation,
  newRotationId,
  type RotationRow,
  updateRotation,
} from './rotation.repository.js';
import { withRotationLock } from './rotation-lock.js';
import { pauseForTest } from './test-hooks.js';

/** Records wrapped under one master key version, by table. */
export interface MasterKeyReferences {
  version: number;
  orgDeks: number;
  orgMacKeys: number;
  orgKeys: number;
  systemKeys: number;
  total: number;
}

/**
 * Every master key version the database still uses, with how many records use it: org DEKs
 * (every status but destroyed), org integrity keys, org private keys and audit keys not
 * destroyed. A record's version is the one its envelope's header names (authenticated: the
 * header starts the AAD), not its master_key_version column, which is a hint: an edited column
 * can then neither make a retirement look safe nor hide a record from the start-up check.
 */
export async function masterKeyReferences(db: Kysely<Database>): Promise<MasterKeyReferences[]> {
  const { rows } = await sql<{ version: number; table: string; count: number }>`
    select crate_envelope_key_version(wrapped_key)::int as version, 'org_deks' as table,
           count(*)::int as count
      from org_deks where status <> 'destroyed' group by 1
    union all
    select crate_envelope_key_version(wrapped_key)::int, 'org_mac_keys', count(*)::int
      from org_mac_keys group by 1
    union all
    select crate_envelope_key_version(wrapped_private_key)::int, 'org_keys', count(*)::int
      from org_keys where wrapped_private_key is not null group by 1
    union all
    select crate_envelope_key_version(wrapped_private_key)::int, 'system_keys', count(*)::int
      from system_keys where wrapped_private_key is not null group by 1`.execute(db);
  const byVersion = new Map<number, MasterKeyReferences>();
  for (const row of rows) {
    const entry = byVersion.get(row.version) ?? {
      version: row.version,
      orgDeks: 0,
      orgMacKeys: 0,
      orgKeys: 0,
      systemKeys: 0,
      total: 0,
    };
    if (row.table === 'org_deks') entry.orgDeks += row.count;
    else if (row.table === 'org_mac_keys') entry.orgMacKeys += row.count;
    else if (row.table === 'org_keys') entry.orgKeys += row.count;
    else entry.systemKeys += row.count;
    entry.total += row.count;
    byVersion.set(row.version, entry);
  }
  return [...byVersion.values()].sort((a, b) => a.version - b.version);
}

export function describeReferences(refs: MasterKeyReferences): string {
  return (
    `${refs.total} record${refs.total === 1 ? '' : 's'} ` +
    `(${refs.orgDeks} org DEK${refs.orgDeks === 1 ? '' : 's'}, ` +
    `${refs.orgMacKeys} org integrity key${refs.orgMacKeys === 1 ? '' : 's'}, ` +
    `${refs.orgKeys} org private key${refs.orgKeys === 1 ? '' : 's'}, ` +
    `${refs.systemKeys} audit key${refs.systemKeys === 1 ? '' : 's'})`
  );
}

/**
 * Start-up check: the key file must hold every master key version the database uses. Refuses
 * with ERR_MASTER_KEY_VERSION_MISSING naming each missing version and how many records use it
 * (no ids: the message is for the operator, who can list them with `keys status`).
 */
export async function assertKeyringHoldsReferencedVersions(
  db: Kysely<Database>,
  keyring: Keyring,
): Promise<void> {
  const held = new Set(keyring.versions());
  const missing = (await masterKeyReferences(db)).filter((refs) => !held.has(refs.version));
  if (missing.length === 0) return;
  const list = missing
    .map((refs) => `version ${refs.version}, still used by ${describeReferences(refs)}`)
    .join('; ');
  throw new CrateError(
    'ERR_MASTER_KEY_VERSION_MISSING',
    `the master key file (versions ${keyring.versions().join(', ')}) lacks ${list}: ` +
      'start with the key file that holds every version in use (the copy from before the version was retired, ' +
      'or `crate-server key-backup restore`); a version may only be retired after `crate-server keys rotate-master`',
  );
}

type MasterTable = 'org_deks' | 'org_mac_keys' | 'org_keys' | 'system_keys';
const TABLES: readonly MasterTable[] = ['org_deks', 'org_mac_keys', 'org_keys', 'system_keys'];

/**
 * Master key rotation: every org DEK, org integrity key, org private key and audit key not wrapped under the key
 * file's active version is re-wrapped under it, a batch at a time (one transaction each, the
 * rotation row advanced with it). The rows still to do are exactly those whose
 * master_key_version differs from the active one, so a killed rotation resumes by running it
 * again. Older versions stay in the key file until `keys retire-master-version`.
 */
export async function rotateMasterKey(
  db: Kysely<Database>,
  engine: DatabaseEngine,
  keyring: Keyring,
  options: RotationOptions,
): Promise<RotationReport> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  return withRotationLock(db, engine, 'master-key', 'system', options.owner, async () => {
    const { rotation, resumed } = await startOrResume(db, keyring, options.owner);
    options.onStarted?.(rotation, resumed);
    const started = performance.now();
    const target = keyring.active();
    let rewrapped = 0;
    let batches = 0;
    let rewrappedTotal = rotation.rewrapped;
    for (const table of TABLES) {
      for (;;) {
        if (options.signal?.aborted) break;
        const count = await rewrapBatch(db, rotation.id, keyring, target, table, {
          batchSize,
          owner: options.owner,
        });
        if (count === 0) break;
        rewrapped += count;
        rewrappedTotal += count;
        batches += 1;
        options.onProgress?.({ rewrapped: rewrappedTotal, total: rotation.total, pass: 1 });
      }
    }
    const remaining = await countNotUnder(db, target.version);
    const done = remaining === 0;
    await updateRotation(db, rotation.id, done ? { status: 'done', owner: null } : { owner: null });
    const seconds = (performance.now() - started) / 1000;
    return {
      rotationId: rotation.id,
      kind: 'master-key',
      scope: 'system',
      fromVersions: rotation.fromVersions,
      toVersion: target.version,
      resumed,
      status: done ? 'done' : 'running',
      rewrapped,
      rewrappedTotal,
      total: rotation.total,
      remaining,
      batches,
      seconds,
      perSecond: seconds > 0 ? rewrapped / seconds : 0,
    };
  });
}

async function startOrResume(
  db: Kysely<Database>,
  keyring: Keyring,
  owner: string,
): Promise<{ rotation: RotationRow; resumed: boolean }> {
  const active = keyring.activeVersion;
  const refs = await masterKeyReferences(db);
  const held = new Set(keyring.versions());
  const missing = refs.filter((entry) => !held.has(entry.version));
  if (missing.length > 0) {
    throw new CrateError(
      'ERR_MASTER_KEY_VERSION_MISSING',
      `the key file lacks master key version ${missing.map((m) => m.version).join(', ')}, still used by ` +
        `${missing.map(describeReferences).join('; ')}: nothing can re-wrap those records without it`,
    );
  }
  const fromVersions = refs.map((entry) => entry.version).filter((version) => version !== active);
  const total = refs.filter((entry) => entry.version !== active).reduce((n, e) => n + e.total, 0);
  return inTransaction(db, async (trx) => {
    const running = await findRunningRotation(trx, 'master-key', 'system', true);
    if (running) {
      // The key file may have gained yet another version since: rotate to today's active one.
      await updateRotation(trx, running.id, {
        owner,
        toVersion: active,
        fromVersions,
        total: running.rewrapped + total,
      });
      return {
        rotation: {
          ...running,
          owner,
          toVersion: active,
          fromVersions,
          total: running.rewrapped + total,
        },
        resumed: true,
      };
    }
    const id = newRotationId();
    await insertRotation(trx, {
      id,
      kind: 'master-key',
      scope: 'system',
      fromVersions,
      toVersion: active,
      total,
      owner,
    });
    return { rotation: await lockRotation(trx, id), resumed: false };
  });
}

/**
 * Rows to re-wrap: the envelope's header names another version, or the master_key_version hint
 * does (an edited hint is repaired; the header is the truth and is what decides "done").
 */
function notUnder(column: 'wrapped_key' | 'wrapped_private_key', version: number) {
  return sql<boolean>`(master_key_version <> ${version}
    or crate_envelope_key_version(${sql.ref(column)}) is distinct from ${version})`;
}

async function rewrapBatch(
  db: Kysely<Database>,
  rotationId: string,
  keyring: Keyring,
  target: VersionedKey,
  table: MasterTable,
  step: { batchSize: number; owner: string },
): Promise<number> {
  let batchNumber = 0;
  const count = await inTransaction(db, async (trx) => {
    const rotation = await lockRotation(trx, rotationId);
    if (rotation.status !== 'running') {
      throw new CrateError(
        'ERR_ROTATION_IN_PROGRESS',
        `rotation ${rotationId} is no longer running`,
      );
    }
    batchNumber = rotation.batches + 1;
    let n = 0;
    if (table === 'org_deks') {
      const rows = await trx
        .selectFrom('org_deks')
        .select(['org_id', 'version', 'wrapped_key'])
        .where(notUnder('wrapped_key', target.version))
        .where('status', '!=', 'destroyed')
        .orderBy('org_id')
        .orderBy('version')
        .limit(step.batchSize)
        .forUpdate()
        .execute();
      for (const row of rows) {
        const wrapped = rewrapOrgDek(keyring, target, row.wrapped_key, {
          orgId: row.org_id,
          dekVersion: row.version,
        });
        await trx
          .updateTable('org_deks')
          .set({ wrapped_key: wrapped, master_key_version: target.version })
          .where('org_id', '=', row.org_id)
          .where('version', '=', row.version)
          .execute();
      }
      n = rows.length;
    } else if (table === 'org_mac_keys') {
      // Re-wrapped only: the key itself (and so every state MAC made with it) is unchanged.
      const rows = await trx
        .selectFrom('org_mac_keys')
        .select(['org_id', 'version', 'wrapped_key'])
        .where(notUnder('wrapped_key', target.version))
        .orderBy('org_id')
        .orderBy('version')
        .limit(step.batchSize)
        .forUpdate()
        .execute();
      for (const row of rows) {
        const wrapped = rewrapOrgMacKey(keyring, target, row.wrapped_key, {
          orgId: row.org_id,
          macKeyVersion: row.version,
        });
        await trx
          .updateTable('org_mac_keys')
          .set({ wrapped_key: wrapped, master_key_version: target.version })
          .where('org_id', '=', row.org_id)
          .where('version', '=', row.version)
          .execute();
      }
      n = rows.length;
    } else if (table === 'org_keys') {
      const rows = await trx
        .selectFrom('org_keys')
        .select(['id', 'org_id', 'kind', 'wrapped_private_key'])
        .where('wrapped_private_key', 'is not', null)
        .where(notUnder('wrapped_private_key', target.version))
        .orderBy('id')
        .limit(step.batchSize)
        .forUpdate()
        .execute();
      for (const row of rows) {
        const wrapped = rewrapPrivateKey(keyring, target, row.wrapped_private_key!, {
          orgId: row.org_id,
          keyId: row.id,
          keyKind: row.kind,
        });
        await trx
          .updateTable('org_keys')
          .set({ wrapped_private_key: wrapped, master_key_version: target.version })
          .where('id', '=', row.id)
          .execute();
      }
      n = rows.length;
    } else {
      const rows = await trx
        .selectFrom('system_keys')
        .select(['id', 'wrapped_private_key'])
        .where('wrapped_private_key', 'is not', null)
        .where(notUnder('wrapped_private_key', target.version))
        .orderBy('id')
        .limit(step.batchSize)
        .forUpdate()
        .execute();
      for (const row of rows) {
        const wrapped = rewrapPrivateKey(keyring, target, row.wrapped_private_key!, {
          orgId: 'system',
          keyId: row.id,
          keyKind: 'audit',
        });
        await trx
          .updateTable('system_keys')
          .set({ wrapped_private_key: wrapped, master_key_version: target.version })
          .where('id', '=', row.id)
          .execute();
      }
      n = rows.length;
    }
    if (n === 0) return 0;
    await advanceRotation(trx, rotationId, { cursor: table, rewrapped: n, owner: step.owner });
    await pauseForTest('in-batch', batchNumber);
    return n;
  });
  if (count > 0) await pauseForTest('after-batch', batchNumber);
  return count;
}

async function countNotUnder(db: Kysely<Database>, version: number): Promise<number> {
  const refs = await masterKeyReferences(db);
  return refs.filter((entry) => entry.version !== version).reduce((n, e) => n + e.total, 0);
}
