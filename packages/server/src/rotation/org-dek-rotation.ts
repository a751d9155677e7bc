import {
  CrateError,
  generateDataKey,
  type Keyring,
  readEnvelopeHeader,
  rewrapSecretDek,
  unwrapOrgDek,
  type VersionedKey,
  wrapOrgDek,
  zeroize,
} from '@crate/crypto-core';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { DatabaseEngine } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { inTransaction } from '../db/transaction.js';
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
import { ROTATION_CHANNEL } from './rotation-notify.js';
import { pauseForTest } from './test-hooks.js';

export const DEFAULT_BATCH_SIZE = 500;
/** Sweeps over the org after the first pass, for versions written under an old DEK meanwhile. */
const MAX_PASSES = 5;

export interface RotationOptions {
  /** Secrets per batch (every version of each); one transaction a batch. */
  batchSize?: number;
  /** Written to key_rotations.owner: who to ask when a second attempt is refused. */
  owner: string;
  /** Called once the rotation is started (new version active) or resumed, before any batch. */
  onStarted?: (rotation: RotationRow, resumed: boolean) => void;
  /** Called after every committed batch. */
  onProgress?: (progress: { rewrapped: number; total: number; pass: number }) => void;
  /** Stops between batches; the rotation stays 'running' and resumes on the next attempt. */
  signal?: AbortSignal;
}

export interface RotationReport {
  rotationId: string;
  kind: 'org-dek' | 'master-key';
  scope: string;
  fromVersions: number[];
  toVersion: number;
  resumed: boolean;
  status: 'done' | 'running';
  /** Rows re-wrapped in this run (a resumed run does not count earlier runs' batches). */
  rewrapped: number;
  /** Rows re-wrapped over the whole rotation, and how many there were to do. */
  rewrappedTotal: number;
  total: number;
  /** Rows still under an older version (0 when done). */
  remaining: number;
  batches: number;
  seconds: number;
  perSecond: number;
}

interface SecretRow {
  id: string;
  project_id: string;
  environment_id: string;
  name: string;
}

/**
 * Org DEK rotation: a new org DEK version becomes active (the old ones are kept, retired, so
 * everything stays readable), then every secret DEK of the org still wrapped under an older
 * version is re-wrapped under the new one, in batches of `batchSize` secrets, each batch one
 * transaction that also advances the persisted cursor. Re-wrap only: secret DEKs and values
 * are not re-encrypted. A killed rotation resumes from its cursor; running it while one is
 * unfinished resumes that one (idempotent); a second process is refused while one holds the
 * lock. After the walk, the org is swept again (up to MAX_PASSES) for versions a server wrote
 * under an older DEK it still held in cache; those stay readable whatever happens.
 */
export async function rotateOrgDek(
  db: Kysely<Database>,
  engine: DatabaseEngine,
  keyring: Keyring,
  orgId: string,
  options: RotationOptions,
): Promise<RotationReport> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  return withRotationLock(db, engine, 'org-dek', orgId, options.owner, async () => {
    const { rotation, resumed } = await startOrResume(db, keyring, orgId, options.owner);
    options.onStarted?.(rotation, resumed);
    const started = performance.now();
    const deks = await unwrapOrgDeks(db, keyring, orgId);
    let rewrapped = 0;
    let batches = 0;
    try {
      const target: VersionedKey = {
        version: rotation.toVersion,
        key: deks.get(rotation.toVersion)!,
      };
      const lookup = (version: number) => deks.get(version);
      let { pass, cursor, total } = rotation;
      let rewrappedTotal = rotation.rewrapped;
      let remaining = 0;
      for (;;) {
        if (options.signal?.aborted) break;
        const batch = await rewrapBatch(db, rotation.id, orgId, target, lookup, {
          cursor,
          batchSize,
          owner: options.owner,
        });
        if (batch.exhausted) {
          remaining = await countOrgRowsNotUnder(db, orgId, rotation.toVersion);
          if (remaining === 0 || pass >= MAX_PASSES) break;
          pass += 1;
          cursor = null;
          total += remaining;
          await updateRotation(db, rotation.id, { pass, cursor, total });
          continue;
        }
        cursor = batch.cursor;
        rewrapped += batch.rewrapped;
        rewrappedTotal += batch.rewrapped;
        total = Math.max(total, rewrappedTotal);
        batches += 1;
        options.onProgress?.({ rewrapped: rewrappedTotal, total, pass });
      }
      const done = !options.signal?.aborted && remaining === 0;
      await updateRotation(
        db,
        rotation.id,
        done ? { status: 'done', owner: null } : { owner: null },
      );
      const seconds = (performance.now() - started) / 1000;
      return {
        rotationId: rotation.id,
        kind: 'org-dek',
        scope: orgId,
        fromVersions: rotation.fromVersions,
        toVersion: rotation.toVersion,
        resumed,
        status: done ? 'done' : 'running',
        rewrapped,
        rewrappedTotal,
        total,
        remaining: done ? 0 : await countOrgRowsNotUnder(db, orgId, rotation.toVersion),
        batches,
        seconds,
        perSecond: seconds > 0 ? rewrapped / seconds : 0,
      };
    } finally {
      // Best effort: JavaScript gives no guarantee that no other copy of the bytes exists.
      for (const key of deks.values()) zeroize(key);
    }
  });
}

/**
 * Resumes the org's unfinished rotation, or starts one: in one transaction, with the org's
 * DEK rows locked, a new random DEK (wrapped under the active master key version) becomes
 * the active version and the previous active one is retired (kept for reading).
 */
async function startOrResume(
  db: Kysely<Database>,
  keyring: Keyring,
  orgId: string,
  owner: string,
): Promise<{ rotation: RotationRow; resumed: boolean }> {
  return inTransaction(db, async (trx) => {
    const rows = await trx
      .selectFrom('org_deks')
      .select(['version', 'status'])
      .where('org_id', '=', orgId)
      .orderBy('version')
      .forUpdate()
      .execute();
    if (rows.length === 0) throw new CrateError('ERR_NOT_FOUND', `no organization ${orgId}`);
    const running = await findRunningRotation(trx, 'org-dek', orgId, true);
    if (running) {
      await updateRotation(trx, running.id, { owner });
      return { rotation: { ...running, owner }, resumed: true };
    }
    const next = Math.max(...rows.map((row) => row.version)) + 1;
    const master = keyring.active();
    const dek = generateDataKey();
    try {
      await trx
        .updateTable('org_deks')
        .set({ status: 'retired' })
        .where('org_id', '=', orgId)
        .where('status', '=', 'active')
        .execute();
      await trx
        .insertInto('org_deks')
        .values({
          org_id: orgId,
          version: next,
          wrapped_key: wrapOrgDek(master, dek, { orgId, dekVersion: next }),
          master_key_version: master.version,
          status: 'active',
        })
        .execute();
    } finally {
      // Best effort: JavaScript gives no guarantee that no other copy of the bytes exists.
      zeroize(dek);
    }
    const total = await countOrgRowsNotUnder(trx, orgId, next);
    const id = newRotationId();
    const fromVersions = rows.filter((row) => row.status !== 'destroyed').map((row) => row.version);
    await insertRotation(trx, {
      id,
      kind: 'org-dek',
      scope: orgId,
      fromVersions,
      toVersion: next,
      total,
      owner,
    });
    // Other servers sharing a Postgres drop their cached DEKs of this org on commit.
    await sql`select pg_notify(${ROTATION_CHANNEL}, ${orgId})`.execute(trx);
    return { rotation: await lockRotation(trx, id), resumed: false };
  });
}

/** Every held version of the org's DEK, unwrapped; the caller zeroes them. */
async function unwrapOrgDeks(
  db: Kysely<Database>,
  keyring: Keyring,
  orgId: string,
): Promise<Map<number, Buffer>> {
  const rows = await db
    .selectFrom('org_deks')
    .select(['version', 'wrapped_key'])
    .where('org_id', '=', orgId)
    .where('status', '!=', 'destroyed')
    .execute();
  const keys = new Map<number, Buffer>();
  try {
    for (const row of rows) {
      keys.set(
        row.version,
        unwrapOrgDek(keyring, row.wrapped_key, { orgId, dekVersion: row.version }),
      );
    }
  } catch (error) {
    for (const key of keys.values()) zeroize(key);
    throw error;
  }
  return keys;
}

/**
 * One batch in one transaction: the next `batchSize` secrets of the org after the cursor (by
 * id), every version of them not yet under the target DEK locked and re-wrapped, and the
 * cursor advanced with them. A crash before commit leaves neither the rows nor the cursor
 * changed; after it, both.
 */
async function rewrapBatch(
  db: Kysely<Database>,
  rotationId: string,
  orgId: string,
  target: VersionedKey,
  lookup: (version: number) => Buffer | undefined,
  step: { cursor: string | null; batchSize: number; owner: string },
): Promise<{ exhausted: true } | { exhausted: false; cursor: string; rewrapped: number }> {
  let batchNumber = 0;
  const result = await inTransaction(db, async (trx) => {
    const rotation = await lockRotation(trx, rotationId);
    if (rotation.status !== 'running' || rotation.cursor !== step.cursor) {
      throw new CrateError(
        'ERR_ROTATION_IN_PROGRESS',
        `rotation ${rotationId} was changed by another process; run it again to resume`,
      );
    }
    batchNumber = rotation.batches + 1;
    let query = trx
      .selectFrom('secrets')
      .select(['id', 'project_id', 'environment_id', 'name'])
      .where('org_id', '=', orgId)
      .orderBy('id')
      .limit(step.batchSize);
    if (step.cursor !== null) query = query.where('id', '>', step.cursor);
    const secrets: SecretRow[] = await query.execute();
    if (secrets.length === 0) return { exhausted: true as const };
    const byId = new Map(secrets.map((secret) => [secret.id, secret]));
    // Which DEK wraps a row is what its envelope's header says (authenticated: it starts the
    // AAD); org_dek_version is only a hint for the index. Rows where either is off the target
    // are taken, so an edited hint can neither hide a row from the rotation nor survive it.
    const versions = await trx
      .selectFrom('secret_versions')
      .select(['secret_id', 'version', 'wrapped_dek'])
      .where('secret_id', 'in', [...byId.keys()])
      .where((eb) =>
        eb.or([
          eb('org_dek_version', '!=', target.version),
          sql<boolean>`crate_envelope_key_version(wrapped_dek) is distinct from ${target.version}`,
        ]),
      )
      .forUpdate()
      .execute();
    const rewrapped = await rewrapRows(trx, target, lookup, orgId, byId, versions);
    const cursor = secrets.at(-1)!.id;
    await advanceRotation(trx, rotationId, { cursor, rewrapped, owner: step.owner });
    await pauseForTest('in-batch', batchNumber);
    return { exhausted: false as const, cursor, rewrapped };
  });
  if (!result.exhausted) await pauseForTest('after-batch', batchNumber);
  return result;
}

/**
 * Re-wraps the rows whose envelope is not under the target (the header decides, read here
 * again rather than trusting the query) and sets every row's hint to the target. Returns how
 * many were re-wrapped; a row whose only fault was its hint keeps its bytes (so the nonce
 * budget trigger does not count it).
 */
async function rewrapRows(
  trx: Transaction<Database>,
  target: VersionedKey,
  lookup: (version: number) => Buffer | undefined,
  orgId: string,
  secrets: Map<string, SecretRow>,
  versions: Array<{ secret_id: string; version: number; wrapped_dek: Buffer }>,
): Promise<number> {
  if (versions.length === 0) return 0;
  let rewrapped = 0;
  const values = versions.map((row) => {
    const secret = secrets.get(row.secret_id)!;
    if (readEnvelopeHeader(row.wrapped_dek).keyVersion === target.version) {
      return sql`(${row.secret_id}, ${row.version}::int, ${row.wrapped_dek}::bytea)`;
    }
    rewrapped += 1;
    const wrapped = rewrapSecretDek(lookup, target, row.wrapped_dek, {
      orgId,
      projectId: secret.project_id,
      environmentId: secret.environment_id,
      name: secret.name,
      version: row.version,
    });
    return sql`(${row.secret_id}, ${row.version}::int, ${wrapped}::bytea)`;
  });
  await sql`
    update secret_versions as sv
       set wrapped_dek = v.wrapped_dek, org_dek_version = ${target.version}
      from (values ${sql.join(values)}) as v(secret_id, version, wrapped_dek)
     where sv.secret_id = v.secret_id and sv.version = v.version`.execute(trx);
  return rewrapped;
}

/**
 * Versions of the org's secrets not (yet) wrapped under `version`, by their envelope header,
 * or whose org_dek_version hint says otherwise (the rotation repairs those too).
 */
export async function countOrgRowsNotUnder(
  db: Kysely<Database> | Transaction<Database>,
  orgId: string,
  version: number,
): Promise<number> {
  const row = await db
    .selectFrom('secret_versions')
    .innerJoin('secrets', 'secrets.id', 'secret_versions.secret_id')
    .select(sql<number>`count(*)::int`.as('count'))
    .where('secrets.org_id', '=', orgId)
    .where((eb) =>
      eb.or([
        eb('secret_versions.org_dek_version', '!=', version),
        sql<boolean>`crate_envelope_key_version(secret_versions.wrapped_dek) is distinct from ${version}`,
      ]),
    )
    .executeTakeFirstOrThrow();
  return row.count;
}
