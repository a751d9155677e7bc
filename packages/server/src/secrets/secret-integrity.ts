import {
  CrateError,
  computeSecretStateMac,
  type Keyring,
  type SecretState,
  unwrapOrgMacKey,
  verifySecretStateMac,
  zeroize,
} from '@crate/crypto-core';
import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema.js';
import type { OrgDeks } from '../keys/key.service.js';
import { insertOrgMacKey, listOrgMacKeys } from '../keys/keys.repository.js';
import { generateOrgMacKey } from '../keys/org-keys.js';
import type { SecretStateRow } from './secrets.repository.js';

/**
 * The integrity of a secret's stored state (DESIGN invariant 8). Each version's bytes are
 * AEAD envelopes bound to their identity, but which version is current, whether the secret
 * is deleted and which tags it has are plain columns: `secrets.state_mac` is an HMAC over them
 * and the secret's identity under the org's integrity key (crypto-core integrity.ts). Every
 * path that reads or changes a secret checks it first and fails closed with ERR_INTEGRITY;
 * every change writes the new MAC in the transaction that holds the row lock, so concurrent
 * writers (who queue on that lock) each MAC the state they leave.
 */

/** Where a secret lives: the ids the request resolved (never the row's own columns). */
export interface SecretPlace {
  orgId: string;
  projectId: string;
  environmentId: string;
}

type StateColumns = Pick<SecretStateRow, 'id' | 'name' | 'current_version' | 'deleted_at' | 'tags'>;

function stateOf(place: SecretPlace, row: StateColumns): SecretState {
  return {
    orgId: place.orgId,
    projectId: place.projectId,
    environmentId: place.environmentId,
    secretId: row.id,
    name: row.name,
    currentVersion: row.current_version,
    deleted: row.deleted_at !== null,
    tags: row.tags,
  };
}

/**
 * The error for stored state that does not verify. The message reaches the client (it names
 * the secret it asked for, nothing else) and, through the error handler, the server log, with
 * the row id on `cause` so an operator can find the row.
 */
export function integrityFailure(name: string, secretId: string, detail: string): CrateError {
  return new CrateError(
    'ERR_INTEGRITY',
    `the stored state of secret ${name} does not verify (${detail}): it was changed outside the ` +
      'server, so none of it is served; the server log names the row',
    { cause: new Error(`secrets row ${secretId}: ${detail}`) },
  );
}

/** Throws ERR_INTEGRITY unless the row's state MAC verifies (a null MAC never does). */
export function assertStateIntact(deks: OrgDeks, place: SecretPlace, row: SecretStateRow): void {
  if (!verifySecretStateMac(deks.macKeys.lookup, row.state_mac, stateOf(place, row))) {
    throw integrityFailure(
      row.name,
      row.id,
      row.state_mac === null ? 'it has no state MAC' : 'its state MAC does not match',
    );
  }
}

/** The MAC of the state a write leaves the row in, under the org's newest integrity key. */
export function stateMac(deks: OrgDeks, place: SecretPlace, row: StateColumns): Buffer {
  const key = deks.macKeys.active;
  if (!key) {
    throw new CrateError(
      'ERR_INTEGRITY',
      'this organization has no integrity key, so no secret of it can be written; the server ' +
        'log of its start-up says why',
      { cause: new Error(`organization ${place.orgId} has no row in org_mac_keys`) },
    );
  }
  return computeSecretStateMac(key, stateOf(place, row));
}

/** Rows updated per statement when adopting (well under the 65,535 parameter limit). */
const ADOPT_BATCH = 1000;

export interface Adoption {
  orgId: string;
  secrets: number;
}

/**
 * The first start after the upgrade that introduced state MACs: for each org listed in
 * secret_mac_adoption (the orgs that existed then), creates its integrity key if it has none
 * and MACs every secret that has no MAC yet, as stored, then removes the org from the list,
 * all in one transaction per org. The list row is locked, so servers starting together adopt
 * each org once. An org not in the list is never adopted: a secret of it without a valid MAC
 * is refused from then on. Needs the master key, which is why a migration cannot do it.
 */
export async function adoptSecretsWithoutMac(
  db: Kysely<Database>,
  keyring: Keyring,
): Promise<Adoption[]> {
  const pending = await db.selectFrom('secret_mac_adoption').select('org_id').execute();
  const adopted: Adoption[] = [];
  for (const { org_id: orgId } of pending) {
    const count = await db.transaction().execute(async (trx) => {
      const marker = await trx
        .selectFrom('secret_mac_adoption')
        .select('org_id')
        .where('org_id', '=', orgId)
        .forUpdate()
        .executeTakeFirst();
      if (!marker) return undefined; // another server adopted it meanwhile
      let keys = await listOrgMacKeys(trx, orgId);
      if (keys.length === 0) {
        await insertOrgMacKey(trx, generateOrgMacKey(keyring, orgId));
        keys = await listOrgMacKeys(trx, orgId);
      }
      const newest = keys.at(-1)!;
      const key = unwrapOrgMacKey(keyring, newest.wrapped_key, {
        orgId,
        macKeyVersion: newest.version,
      });
      try {
        const rows = await trx
          .selectFrom('secrets')
          .select([
            'id',
            'project_id',
            'environment_id',
            'name',
            'current_version',
            'deleted_at',
            'tags',
          ])
          .where('org_id', '=', orgId)
          .where('state_mac', 'is', null)
          .forUpdate()
          .execute();
        for (let start = 0; start < rows.length; start += ADOPT_BATCH) {
          const values = rows.slice(start, start + ADOPT_BATCH).map((row) => {
            const mac = computeSecretStateMac(
              { version: newest.version, key },
              stateOf({ orgId, projectId: row.project_id, environmentId: row.environment_id }, row),
            );
            return sql`(${row.id}, ${mac}::bytea)`;
          });
          await sql`
            update secrets as s set state_mac = v.mac
              from (values ${sql.join(values)}) as v(id, mac)
             where s.id = v.id`.execute(trx);
        }
        await trx.deleteFrom('secret_mac_adoption').where('org_id', '=', orgId).execute();
        return rows.length;
      } finally {
        // Best effort: JavaScript gives no guarantee that no other copy of the bytes exists.
        zeroize(key);
      }
    });
    if (count !== undefined) adopted.push({ orgId, secrets: count });
  }
  return adopted;
}
