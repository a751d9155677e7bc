import { type Kysely, type RawBuilder, sql, type Transaction } from 'kysely';
import type { Database, NewSecretVersion } from '../db/schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/**
 * Arrays are sent as `array[$1, $2]::text[]` rather than as one array parameter: the pg and
 * PGlite drivers serialize JS arrays differently, this text is the same for both.
 */
function textArray(values: readonly string[]): RawBuilder<string[]> {
  return values.length === 0
    ? sql<string[]>`'{}'::text[]`
    : sql<string[]>`array[${sql.join(values)}]::text[]`;
}

/** The columns of a secrets row its integrity MAC covers, and the MAC (secret-integrity.ts). */
export interface SecretStateRow {
  id: string;
  name: string;
  current_version: number;
  deleted_at: Date | null;
  tags: string[];
  state_mac: Buffer | null;
}

const STATE_COLUMNS = [
  'secrets.id',
  'secrets.name',
  'secrets.current_version',
  'secrets.deleted_at',
  'secrets.tags',
  'secrets.state_mac',
] as const;

export interface SecretSummaryRow extends SecretStateRow {
  updated_at: Date;
  /** Null when the current version's row is missing (the caller reports it). */
  author: string | null;
}

/**
 * Every secret of an environment, deleted ones included, with the author of its current
 * version. Neither the deleted flag nor the tags are filtered here: both are covered by the
 * state MAC, so the caller checks each row first and filters after (a row hidden by an edited
 * column would otherwise never be checked).
 */
export function listSecrets(db: Db, environmentId: string): Promise<SecretSummaryRow[]> {
  return db
    .selectFrom('secrets')
    .leftJoin('secret_versions', (join) =>
      join
        .onRef('secret_versions.secret_id', '=', 'secrets.id')
        .onRef('secret_versions.version', '=', 'secrets.current_version'),
    )
    .select([...STATE_COLUMNS, 'secrets.updated_at', 'secret_versions.author'])
    .where('secrets.environment_id', '=', environmentId)
    .orderBy('secrets.name')
    .execute();
}

export interface StoredValueRow extends SecretStateRow {
  /** Null when the current version's row is missing (the caller reports it). */
  wrapped_dek: Buffer | null;
  ciphertext: Buffer | null;
}

/**
 * The current ciphertext of every secret of an environment (or of the named ones), deleted
 * ones included so that their state MAC is checked too (the caller leaves them out), and the
 * id of the org's active signing key read in the same statement (an uncorrelated subquery,
 * evaluated once): a retrieval needs both, and this saves a round trip. The id is undefined
 * when no row matched (the caller then reads the key on its own).
 */
export async function currentValuesAndSigningKey(
  db: Db,
  orgId: string,
  environmentId: string,
  names: readonly string[] | undefined,
): Promise<{ rows: StoredValueRow[]; signingKeyId: string | null | undefined }> {
  const found = await db
    .selectFrom('secrets')
    .leftJoin('secret_versions', (join) =>
      join
        .onRef('secret_versions.secret_id', '=', 'secrets.id')
        .onRef('secret_versions.version', '=', 'secrets.current_version'),
    )
    .select((eb) => [
      ...STATE_COLUMNS,
      'secret_versions.wrapped_dek',
      'secret_versions.ciphertext',
      eb
        .selectFrom('org_keys')
        .select('org_keys.id')
        .where('org_keys.org_id', '=', orgId)
        .where('org_keys.kind', '=', 'signing')
        .where('org_keys.status', '=', 'active')
        .as('signing_key_id'),
    ])
    .where('secrets.environment_id', '=', environmentId)
    .$if(names !== undefined, (query) => query.where('secrets.name', 'in', names!))
    .orderBy('secrets.name')
    .execute();
  return {
    rows: found.map(({ signing_key_id: _, ...row }) => row),
    signingKeyId: found[0]?.signing_key_id,
  };
}

/**
 * Creates the secret or claims its next version, in one statement. The row stays locked until
 * the transaction ends, so concurrent writers to one secret queue up and every one of them
 * gets the next number: versions 1..n without gaps or duplicates (a rolled-back transaction
 * gives its number back). A write to a deleted secret revives it and continues its history.
 */
export async function claimNextVersion(
  trx: Transaction<Database>,
  secret: {
    id: string;
    orgId: string;
    projectId: string;
    environmentId: string;
    name: string;
    tags: readonly string[] | undefined;
    now: Date;
  },
): Promise<SecretStateRow> {
  return trx
    .insertInto('secrets')
    .values({
      id: secret.id,
      org_id: secret.orgId,
      project_id: secret.projectId,
      environment_id: secret.environmentId,
      name: secret.name,
      tags: textArray(secret.tags ?? []),
      current_version: 1,
      updated_at: secret.now,
    })
    .onConflict((conflict) =>
      conflict.columns(['environment_id', 'name']).doUpdateSet((eb) => ({
        current_version: sql<number>`secrets.current_version + 1`,
        deleted_at: null,
        updated_at: eb.ref('excluded.updated_at'),
        ...(secret.tags !== undefined && { tags: eb.ref('excluded.tags') }),
      })),
    )
    .returning(['id', 'name', 'current_version', 'deleted_at', 'tags', 'state_mac'])
    .executeTakeFirstOrThrow();
}

/** Records the state MACs of rows this transaction has just changed (and still holds locked). */
export async function setStateMacs(
  trx: Transaction<Database>,
  rows: ReadonlyArray<{ id: string; stateMac: Buffer }>,
): Promise<void> {
  if (rows.length === 0) return;
  const values = rows.map((row) => sql`(${row.id}, ${row.stateMac}::bytea)`);
  await sql`
    update secrets as s set state_mac = v.state_mac
      from (values ${sql.join(values)}) as v(id, state_mac)
     where s.id = v.id`.execute(trx);
}

export async function insertVersion(
  trx: Transaction<Database>,
  row: NewSecretVersion,
): Promise<void> {
  await trx.insertInto('secret_versions').values(row).execute();
}

/** Several versions in one statement (so the nonce-budget trigger runs once for all of them). */
export async function insertVersions(
  trx: Transaction<Database>,
  rows: readonly NewSecretVersion[],
): Promise<void> {
  if (rows.length === 0) return;
  await trx
    .insertInto('secret_versions')
    .values([...rows])
    .execute();
}

/** The secret (deleted or not), locked for the rest of the transaction. */
export function lockSecret(
  trx: Transaction<Database>,
  environmentId: string,
  name: string,
): Promise<SecretStateRow | undefined> {
  return trx
    .selectFrom('secrets')
    .select(STATE_COLUMNS)
    .where('environment_id', '=', environmentId)
    .where('name', '=', name)
    .forUpdate()
    .executeTakeFirst();
}

/** The named secrets of an environment that exist (deleted or not), locked, in name order. */
export function lockSecrets(
  trx: Transaction<Database>,
  environmentId: string,
  names: readonly string[],
): Promise<SecretStateRow[]> {
  return trx
    .selectFrom('secrets')
    .select(STATE_COLUMNS)
    .where('environment_id', '=', environmentId)
    .where('name', 'in', names)
    .orderBy('name')
    .forUpdate()
    .execute();
}

export function findSecret(
  db: Db,
  environmentId: string,
  name: string,
): Promise<SecretStateRow | undefined> {
  return db
    .selectFrom('secrets')
    .select(STATE_COLUMNS)
    .where('environment_id', '=', environmentId)
    .where('name', '=', name)
    .executeTakeFirst();
}

/** Marks a (locked, checked) secret deleted, with the MAC of its new state; its versions stay. */
export async function markDeleted(
  trx: Transaction<Database>,
  secretId: string,
  now: Date,
  stateMac: Buffer,
): Promise<void> {
  await trx
    .updateTable('secrets')
    .set({ deleted_at: now, updated_at: now, state_mac: stateMac })
    .where('id', '=', secretId)
    .execute();
}

/** A rollback's new current version (which revives a deleted secret), with its state MAC. */
export async function advanceToVersion(
  trx: Transaction<Database>,
  secretId: string,
  version: number,
  now: Date,
  stateMac: Buffer,
): Promise<void> {
  await trx
    .updateTable('secrets')
    .set({ current_version: version, deleted_at: null, updated_at: now, state_mac: stateMac })
    .where('id', '=', secretId)
    .execute();
}

export function findVersion(db: Db, secretId: string, version: number) {
  return db
    .selectFrom('secret_versions')
    .select(['version', 'wrapped_dek', 'ciphertext', 'client_encrypted'])
    .where('secret_id', '=', secretId)
    .where('version', '=', version)
    .executeTakeFirst();
}

export function listVersions(db: Db, secretId: string) {
  return db
    .selectFrom('secret_versions')
    .select(['version', 'created_at', 'author', 'kind', 'rolled_back_from'])
    .where('secret_id', '=', secretId)
    .orderBy('version')
    .execute();
}
