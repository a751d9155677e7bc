import type { Insertable, Kysely, Transaction } from 'kysely';
import type {
  Database,
  OrgDeksTable,
  OrgKey,
  OrgKeysTable,
  OrgMacKeysTable,
  SystemKey,
  SystemKeysTable,
} from '../db/schema.js';

type Db = Kysely<Database> | Transaction<Database>;

export async function insertOrgDek(db: Db, row: Insertable<OrgDeksTable>): Promise<void> {
  await db.insertInto('org_deks').values(row).execute();
}

export async function insertOrgKey(db: Db, row: Insertable<OrgKeysTable>): Promise<void> {
  await db.insertInto('org_keys').values(row).execute();
}

/** Inserts the audit key unless another process won the race; the unique index decides. */
export async function insertSystemKeyIfNoneActive(
  db: Db,
  row: Insertable<SystemKeysTable>,
): Promise<void> {
  await db
    .insertInto('system_keys')
    .values(row)
    .onConflict((oc) => oc.column('kind').where('status', '=', 'active').doNothing())
    .execute();
}

export interface OrgDekRow {
  version: number;
  wrapped_key: Buffer;
  status: 'active' | 'retired' | 'destroyed';
}

export function listOrgDeks(db: Db, orgId: string): Promise<OrgDekRow[]> {
  return db
    .selectFrom('org_deks')
    .select(['version', 'wrapped_key', 'status'])
    .where('org_id', '=', orgId)
    .where('status', '!=', 'destroyed')
    .orderBy('version')
    .execute();
}

export function listOrgMacKeys(
  db: Db,
  orgId: string,
): Promise<Array<{ version: number; wrapped_key: Buffer }>> {
  return db
    .selectFrom('org_mac_keys')
    .select(['version', 'wrapped_key'])
    .where('org_id', '=', orgId)
    .orderBy('version')
    .execute();
}

export async function insertOrgMacKey(db: Db, row: Insertable<OrgMacKeysTable>): Promise<void> {
  await db.insertInto('org_mac_keys').values(row).execute();
}

export function findOrgKey(db: Db, orgId: string, keyId: string): Promise<OrgKey | undefined> {
  return db
    .selectFrom('org_keys')
    .selectAll()
    .where('org_id', '=', orgId)
    .where('id', '=', keyId)
    .executeTakeFirst();
}

export function findActiveOrgKey(
  db: Db,
  orgId: string,
  kind: 'sealing' | 'signing',
): Promise<OrgKey | undefined> {
  return db
    .selectFrom('org_keys')
    .selectAll()
    .where('org_id', '=', orgId)
    .where('kind', '=', kind)
    .where('status', '=', 'active')
    .executeTakeFirst();
}

/**
 * The org's active sealing and signing keys in one statement, hence one snapshot: never a key
 * from before a rotation next to one from after it.
 */
export async function findActiveOrgKeyPair(
  db: Db,
  orgId: string,
): Promise<{ sealing: OrgKey | undefined; signing: OrgKey | undefined }> {
  const rows = await db
    .selectFrom('org_keys')
    .selectAll()
    .where('org_id', '=', orgId)
    .where('status', '=', 'active')
    .execute();
  return {
    sealing: rows.find((row) => row.kind === 'sealing'),
    signing: rows.find((row) => row.kind === 'signing'),
  };
}

export function findActiveAuditKey(db: Db): Promise<SystemKey | undefined> {
  return db
    .selectFrom('system_keys')
    .selectAll()
    .where('kind', '=', 'audit')
    .where('status', '=', 'active')
    .executeTakeFirst();
}

/** Just the id of the active audit key: checked on every audit batch, so it must be cheap. */
export async function findActiveAuditKeyId(db: Db): Promise<string | undefined> {
  const row = await db
    .selectFrom('system_keys')
    .select('id')
    .where('kind', '=', 'audit')
    .where('status', '=', 'active')
    .executeTakeFirst();
  return row?.id;
}

export function listSystemKeys(db: Db): Promise<SystemKey[]> {
  return db.selectFrom('system_keys').selectAll().execute();
}

/** Every wrapped secret the master key must be able to open: checked at start-up. */
export function listAllWrappedOrgMaterial(db: Db) {
  return Promise.all([
    db
      .selectFrom('org_deks')
      .select(['org_id', 'version', 'wrapped_key'])
      .where('status', '!=', 'destroyed')
      .execute(),
    db
      .selectFrom('org_keys')
      .select(['org_id', 'id', 'kind', 'wrapped_private_key'])
      .where('wrapped_private_key', 'is not', null)
      .execute(),
    db
      .selectFrom('system_keys')
      .select(['id', 'kind', 'wrapped_private_key'])
      .where('wrapped_private_key', 'is not', null)
      .execute(),
    db.selectFrom('org_mac_keys').select(['org_id', 'version', 'wrapped_key']).execute(),
  ]);
}
