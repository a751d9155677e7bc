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

export interface SecretSummaryRow {
  name: string;
  version: number;
  tags: string[];
  updated_at: Date;
  author: string;
}

/** Live (not deleted) secrets of an environment, with the author of their current version. */
export function listSecrets(
  db: Db,
  environmentId: string,
  tags: readonly string[],
): Promise<SecretSummaryRow[]> {
  return db
    .selectFrom('secrets')
    .innerJoin('secret_versions', (join) =>
      join
        .onRef('secret_versions.secret_id', '=', 'secrets.id')
        .onRef('secret_versions.version', '=', 'secrets.current_version'),
    )
    .select([
      'secrets.name',
      'secrets.current_version as version',
      'secrets.tags',
      'secrets.updated_at',
      'secret_versions.author',
    ])
    .where('secrets.environment_id', '=', environmentId)
    .where('secrets.deleted_at', 'is', null)
    .$if(tags.length > 0, (query) => query.where(sql<boolean>`secrets.tags @> ${textArray(tags)}`))
    .orderBy('secrets.name')
    .execute();
}

export interface StoredValueRow {
  name: string;
  version: number;
  wrapped_dek: Buffer;
  ciphertext: Buffer;
}

/**
 * The current ciphertext of every live secret of an environment (or of the named ones), and the
 * id of the org's active signing key read in the same statement (an uncorrelated subquery,
 * evaluated once): a retrieval needs both, and this saves a round trip. The id is undefined when
 * no row matched (the caller then reads the key on its own).
 */
export async function currentValuesAndSigningKey(
  db: Db,
  orgId: string,
  environmentId: string,
  names: readonly string[] | undefined,
): Promise<{ rows: StoredValueRow[]; signingKeyId: string | null | undefined }> {
  const found = await db
    .selectFrom('secrets')
    .innerJoin('secret_versions', (join) =>
      join
        .onRef('secret_versions.secret_id', '=', 'secrets.id')
        .onRef('secret_versions.version', '=', 'secrets.current_version'),
    )
    .select((eb) => [
      'secrets.name',
      'secrets.current_version as version',
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
    .where('secrets.deleted_at', 'is', null)
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
): Promise<{ id: string; version: number }> {
  const row = await trx
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
    .returning(['id', 'current_version'])
    .executeTakeFirstOrThrow();
  return { id: row.id, version: row.current_version };
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

export interface SecretRow {
  id: string;
  name: string;
  current_version: number;
  deleted_at: Date | null;
}

/** The secret (deleted or not), locked for the rest of the transaction. */
export function lockSecret(
  trx: Transaction<Database>,
  environmentId: string,
  name: string,
): Promise<SecretRow | undefined> {
  return trx
    .selectFrom('secrets')
    .select(['id', 'name', 'current_version', 'deleted_at'])
    .where('environment_id', '=', environmentId)
    .where('name', '=', name)
    .forUpdate()
    .executeTakeFirst();
}

export function findSecret(
  db: Db,
  environmentId: string,
  name: string,
): Promise<SecretRow | undefined> {
  return db
    .selectFrom('secrets')
    .select(['id', 'name', 'current_version', 'deleted_at'])
    .where('environment_id', '=', environmentId)
    .where('name', '=', name)
    .executeTakeFirst();
}

/** Marks a live secret deleted; its versions stay. False if there was no live secret. */
export async function softDeleteSecret(
  db: Db,
  environmentId: string,
  name: string,
  now: Date,
): Promise<boolean> {
  const result = await db
    .updateTable('secrets')
    .set({ deleted_at: now, updated_at: now })
    .where('environment_id', '=', environmentId)
    .where('name', '=', name)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
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
