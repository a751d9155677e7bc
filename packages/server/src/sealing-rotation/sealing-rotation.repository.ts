import type { Insertable, Kysely, Transaction } from 'kysely';
import type { Database, OrgKeysTable, OrgKeyVouchesTable } from '../db/schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/**
 * The org's active sealing and signing key rows, locked until the transaction ends: a second
 * rotation of the same org waits here, then finds these rows no longer active.
 */
export function lockActiveOrgKeys(trx: Transaction<Database>, orgId: string) {
  return trx
    .selectFrom('org_keys')
    .select(['id', 'kind'])
    .where('org_id', '=', orgId)
    .where('status', '=', 'active')
    .forUpdate()
    .execute();
}

/** A retired sealing key keeps its private key: it opens seals during the grace period. */
export async function retireSealingKey(db: Db, keyId: string, at: Date): Promise<void> {
  await db
    .updateTable('org_keys')
    .set({ status: 'retired', retired_at: at })
    .where('id', '=', keyId)
    .where('kind', '=', 'sealing')
    .execute();
}

/** Destroys a key's private half; the public key and fingerprint stay for the record. */
export async function destroyOrgKey(db: Db, keyId: string, at: Date): Promise<void> {
  await db
    .updateTable('org_keys')
    .set({ status: 'destroyed', wrapped_private_key: null, retired_at: at })
    .where('id', '=', keyId)
    .execute();
}

export async function insertRotatedKeys(
  trx: Transaction<Database>,
  sealing: Insertable<OrgKeysTable>,
  signing: Insertable<OrgKeysTable>,
  vouch: Omit<Insertable<OrgKeyVouchesTable>, 'seq'>,
): Promise<number> {
  await trx.insertInto('org_keys').values([sealing, signing]).execute();
  const last = await trx
    .selectFrom('org_key_vouches')
    .select((eb) => eb.fn.max('seq').as('seq'))
    .where('org_id', '=', vouch.org_id)
    .executeTakeFirst();
  const seq = (last?.seq ?? 0) + 1;
  await trx
    .insertInto('org_key_vouches')
    .values({ ...vouch, seq })
    .execute();
  return seq;
}

export interface VouchLinkRow {
  seq: number;
  signed_by: string;
  sealing_key_id: string;
  sealing_fingerprint: string;
  signing_key_id: string;
  signing_public_key: Buffer;
  signing_fingerprint: string;
  signature: Buffer;
}

/** The org's last `limit` vouches, oldest first, with the keys each one vouches for. */
export async function listVouchLinks(
  db: Db,
  orgId: string,
  limit: number,
): Promise<VouchLinkRow[]> {
  const rows = await db
    .selectFrom('org_key_vouches as v')
    .innerJoin('org_keys as sealing', 'sealing.id', 'v.sealing_key_id')
    .innerJoin('org_keys as signing', 'signing.id', 'v.signing_key_id')
    .select([
      'v.seq',
      'v.signed_by',
      'v.sealing_key_id',
      'sealing.fingerprint as sealing_fingerprint',
      'v.signing_key_id',
      'signing.public_key as signing_public_key',
      'signing.fingerprint as signing_fingerprint',
      'v.signature',
    ])
    .where('v.org_id', '=', orgId)
    .orderBy('v.seq', 'desc')
    .limit(limit)
    .execute();
  return rows.reverse();
}

/** Retired sealing keys that still hold a private key although retired before `cutoff`. */
export function listExpiredSealingKeys(db: Db, cutoff: Date) {
  return db
    .selectFrom('org_keys')
    .select(['id', 'org_id'])
    .where('kind', '=', 'sealing')
    .where('status', '=', 'retired')
    .where('retired_at', '<', cutoff)
    .orderBy('retired_at')
    .execute();
}

/**
 * Destroys one retired sealing key if it is (still) retired before `cutoff`; true if this call
 * destroyed it. Keeps its retired_at. Idempotent across processes: the loser of a race sees 0 rows.
 */
export async function destroyExpiredSealingKey(
  db: Db,
  keyId: string,
  cutoff: Date,
): Promise<boolean> {
  const result = await db
    .updateTable('org_keys')
    .set({ status: 'destroyed', wrapped_private_key: null })
    .where('id', '=', keyId)
    .where('kind', '=', 'sealing')
    .where('status', '=', 'retired')
    .where('retired_at', '<', cutoff)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}
