import { createPublicKey, type KeyObject } from 'node:crypto';
import {
  CrateError,
  decryptSecret,
  importSealingPrivateKey,
  importSigningPrivateKey,
  importSigningPublicKey,
  isCrateError,
  type Keyring,
  unwrapOrgDek,
  unwrapPrivateKey,
  zeroize,
} from '@crate/crypto-core';
import { sql, type Transaction } from 'kysely';
import { verifyChain } from '../audit/audit.service.js';
import type { Database } from '../db/schema.js';

const PAGE = 1000;

export interface RestoredCounts {
  orgs: number;
  orgDeks: number;
  privateKeys: number;
  secrets: number;
  secretVersions: number;
  auditChains: number;
  auditEntries: number;
}

function failed(what: string, cause?: unknown): CrateError {
  return new CrateError(
    'ERR_DECRYPT',
    `verification after restore failed: ${what} does not open under the destination key; nothing was restored`,
    { cause },
  );
}

/**
 * Proves, inside the restore transaction and before it commits, that the destination master
 * key opens everything: every org DEK; every private key, whose public half must equal the
 * stored public key; every version of every secret (the value is decrypted and discarded);
 * and every audit chain verifies (links, hashes, signatures, head rows).
 */
export async function verifyRestored(
  trx: Transaction<Database>,
  keyring: Keyring,
): Promise<RestoredCounts> {
  const deks = new Map<string, Map<number, Buffer>>();
  try {
    const dekRows = await trx
      .selectFrom('org_deks')
      .select(['org_id', 'version', 'wrapped_key'])
      .where('status', '!=', 'destroyed')
      .execute();
    for (const row of dekRows) {
      const what = `DEK v${row.version} of organization ${row.org_id}`;
      const key = attempt(what, () =>
        unwrapOrgDek(keyring, row.wrapped_key, { orgId: row.org_id, dekVersion: row.version }),
      );
      const versions = deks.get(row.org_id) ?? new Map<number, Buffer>();
      versions.set(row.version, key);
      deks.set(row.org_id, versions);
    }

    let privateKeys = 0;
    const orgKeys = await trx
      .selectFrom('org_keys')
      .select(['org_id', 'id', 'kind', 'public_key', 'wrapped_private_key'])
      .where('wrapped_private_key', 'is not', null)
      .execute();
    const systemKeys = await trx
      .selectFrom('system_keys')
      .select(['id', 'public_key', 'wrapped_private_key'])
      .where('wrapped_private_key', 'is not', null)
      .execute();
    for (const row of [
      ...orgKeys,
      ...systemKeys.map((key) => ({ ...key, org_id: 'system', kind: 'audit' as const })),
    ]) {
      const what = `${row.kind} key ${row.id}`;
      const der = attempt(what, () =>
        unwrapPrivateKey(keyring, row.wrapped_private_key!, {
          orgId: row.org_id,
          keyId: row.id,
          keyKind: row.kind,
        }),
      );
      let privateKey: KeyObject;
      try {
        privateKey =
          row.kind === 'sealing' ? importSealingPrivateKey(der) : importSigningPrivateKey(der);
      } finally {
        // JavaScript gives no guarantee that no other copy exists.
        zeroize(der);
      }
      const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
      if (!spki.equals(row.public_key)) throw failed(`${what} (its public key does not match)`);
      privateKeys += 1;
    }

    let secretVersions = 0;
    let after: { secretId: string; version: number } | undefined;
    for (;;) {
      let query = trx
        .selectFrom('secret_versions as v')
        .innerJoin('secrets as s', 's.id', 'v.secret_id')
        .select([
          'v.secret_id',
          'v.version',
          'v.wrapped_dek',
          'v.ciphertext',
          's.org_id',
          's.project_id',
          's.environment_id',
          's.name',
        ])
        .orderBy('v.secret_id')
        .orderBy('v.version')
        .limit(PAGE);
      if (after) {
        const { secretId, version } = after;
        query = query.where((eb) =>
          eb.or([
            eb('v.secret_id', '>', secretId),
            eb.and([eb('v.secret_id', '=', secretId), eb('v.version', '>', version)]),
          ]),
        );
      }
      const page = await query.execute();
      for (const row of page) {
        const versions = deks.get(row.org_id);
        const value = attempt(`${row.name} v${row.version} (secret ${row.secret_id})`, () =>
          decryptSecret((v) => versions?.get(v), row.wrapped_dek, row.ciphertext, {
            orgId: row.org_id,
            projectId: row.project_id,
            environmentId: row.environment_id,
            name: row.name,
            version: row.version,
          }),
        );
        zeroize(value);
        secretVersions += 1;
      }
      if (page.length < PAGE) break;
      const last = page.at(-1)!;
      after = { secretId: last.secret_id, version: last.version };
    }

    const publicKeys = new Map(
      (await trx.selectFrom('system_keys').select(['id', 'public_key']).execute()).map((row) => [
        row.id,
        importSigningPublicKey(row.public_key),
      ]),
    );
    const chains = await sql<{ chain: string }>`
      select chain from audit_chain_heads union select distinct chain from audit_entries
      order by chain`.execute(trx);
    let auditEntries = 0;
    for (const { chain } of chains.rows) {
      const result = await verifyChain(trx, (id) => publicKeys.get(id), chain);
      if (!result.ok) {
        throw new CrateError(
          'ERR_AUDIT_CHAIN_BROKEN',
          `verification after restore failed: the audit chain ${chain} breaks at seq ${result.firstBroken.seq} ` +
            `(${result.firstBroken.reason}); nothing was restored`,
        );
      }
      auditEntries += result.count;
    }

    const counts = await sql<{ orgs: number; secrets: number }>`
      select (select count(*)::int from orgs) as orgs, (select count(*)::int from secrets) as secrets`.execute(
      trx,
    );
    return {
      orgs: counts.rows[0]!.orgs,
      orgDeks: dekRows.length,
      privateKeys,
      secrets: counts.rows[0]!.secrets,
      secretVersions,
      auditChains: chains.rows.length,
      auditEntries,
    };
  } finally {
    for (const versions of deks.values()) zeroize(...versions.values());
  }
}

function attempt<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (isCrateError(error, 'ERR_DECRYPT') || isCrateError(error, 'ERR_KEY_VERSION_UNKNOWN')) {
      throw failed(what, error);
    }
    throw error;
  }
}
