import {
  formatFingerprint,
  generateDataKey,
  generateSealingKeyPair,
  generateSigningKeyPair,
  type Keyring,
  spkiFingerprint,
  wrapOrgDek,
  wrapOrgMacKey,
  wrapPrivateKey,
  zeroize,
} from '@crate/crypto-core';
import type { Insertable, Kysely, Transaction } from 'kysely';
import type {
  Database,
  OrgDeksTable,
  OrgKeysTable,
  OrgMacKeysTable,
  SystemKeysTable,
} from '../db/schema.js';
import { newId } from '../lib/ids.js';
import {
  findActiveAuditKey,
  insertOrgDek,
  insertOrgKey,
  insertOrgMacKey,
  insertSystemKeyIfNoneActive,
} from './keys.repository.js';

type Db = Kysely<Database> | Transaction<Database>;

/** An org's two key pairs as rows: an RSA-3072 sealing pair and an Ed25519 signing pair. */
export interface OrgKeyPairRows {
  sealing: Insertable<OrgKeysTable>;
  signing: Insertable<OrgKeysTable>;
}

/** The rows a new org needs: DEK v1, integrity key v1 and its two key pairs. */
export interface OrgKeyRows extends OrgKeyPairRows {
  dek: Insertable<OrgDeksTable>;
  macKey: Insertable<OrgMacKeysTable>;
}

/** A fresh integrity (MAC) key v1 for the org, wrapped under the active master key version. */
export function generateOrgMacKey(keyring: Keyring, orgId: string): Insertable<OrgMacKeysTable> {
  const master = keyring.active();
  const macKey = generateDataKey();
  try {
    return {
      org_id: orgId,
      version: 1,
      wrapped_key: wrapOrgMacKey(master, macKey, { orgId, macKeyVersion: 1 }),
      master_key_version: master.version,
    };
  } finally {
    // JavaScript gives no guarantee that no copy survives; this shortens the window.
    zeroize(macKey);
  }
}

/**
 * Generates an org's keys, wrapped under the active master key version. RSA generation takes
 * a while (it runs on the libuv pool), so it happens before any transaction is opened.
 */
export async function generateOrgKeys(keyring: Keyring, orgId: string): Promise<OrgKeyRows> {
  const master = keyring.active();
  const dek = generateDataKey();
  try {
    const pairs = await generateOrgKeyPairs(keyring, orgId);
    return {
      dek: {
        org_id: orgId,
        version: 1,
        wrapped_key: wrapOrgDek(master, dek, { orgId, dekVersion: 1 }),
        master_key_version: master.version,
        status: 'active',
      },
      macKey: generateOrgMacKey(keyring, orgId),
      ...pairs,
    };
  } finally {
    // JavaScript gives no guarantee that no copy survives; this shortens the window.
    zeroize(dek);
  }
}

/**
 * A new sealing and signing key pair for an org (at creation, and at each rotation of its
 * keys), the private halves wrapped under the active master key version, both rows active.
 */
export async function generateOrgKeyPairs(
  keyring: Keyring,
  orgId: string,
): Promise<OrgKeyPairRows> {
  const master = keyring.active();
  const sealing = await generateSealingKeyPair(3072);
  const signing = generateSigningKeyPair();
  const sealingId = newId('key');
  const signingId = newId('key');
  try {
    return {
      sealing: {
        id: sealingId,
        org_id: orgId,
        kind: 'sealing',
        public_key: sealing.publicKeySpki,
        fingerprint: formatFingerprint(spkiFingerprint(sealing.publicKeySpki), 'hex'),
        wrapped_private_key: wrapPrivateKey(master, sealing.privateKeyPkcs8, {
          orgId,
          keyId: sealingId,
          keyKind: 'sealing',
        }),
        master_key_version: master.version,
        status: 'active',
      },
      signing: {
        id: signingId,
        org_id: orgId,
        kind: 'signing',
        public_key: signing.publicKeySpki,
        fingerprint: formatFingerprint(spkiFingerprint(signing.publicKeySpki), 'hex'),
        wrapped_private_key: wrapPrivateKey(master, signing.privateKeyPkcs8, {
          orgId,
          keyId: signingId,
          keyKind: 'signing',
        }),
        master_key_version: master.version,
        status: 'active',
      },
    };
  } finally {
    // JavaScript gives no guarantee that no copy survives; this shortens the window.
    zeroize(sealing.privateKeyPkcs8, signing.privateKeyPkcs8);
  }
}

export async function insertOrgKeys(db: Db, rows: OrgKeyRows): Promise<void> {
  await insertOrgDek(db, rows.dek);
  await insertOrgMacKey(db, rows.macKey);
  await insertOrgKey(db, rows.sealing);
  await insertOrgKey(db, rows.signing);
}

/** Creates the audit signing key if there is none; safe when several processes start at once. */
export async function ensureAuditKey(db: Db, keyring: Keyring): Promise<void> {
  if (await findActiveAuditKey(db)) return;
  const master = keyring.active();
  const pair = generateSigningKeyPair();
  const id = newId('key');
  try {
    const row: Insertable<SystemKeysTable> = {
      id,
      kind: 'audit',
      public_key: pair.publicKeySpki,
      fingerprint: formatFingerprint(spkiFingerprint(pair.publicKeySpki), 'hex'),
      wrapped_private_key: wrapPrivateKey(master, pair.privateKeyPkcs8, {
        orgId: 'system',
        keyId: id,
        keyKind: 'audit',
      }),
      master_key_version: master.version,
      status: 'active',
    };
    await insertSystemKeyIfNoneActive(db, row);
  } finally {
    zeroize(pair.privateKeyPkcs8);
  }
}
