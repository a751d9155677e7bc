import { randomBytes } from 'node:crypto';
import { generateKeyring, Keyring } from '@crate/crypto-core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OpenDatabase } from '../src/db/database.js';
import { KeyService } from '../src/keys/key.service.js';
import { ensureAuditKey, generateOrgKeys, insertOrgKeys } from '../src/keys/org-keys.js';
import { UnsealState } from '../src/keys/unseal-state.js';
import { freshPglite, type TestDatabase } from './harness/database.js';
import { openMigrated } from './harness/in-process.js';

describe('the key service', () => {
  let database: TestDatabase;
  let opened: OpenDatabase;
  let keyring: Keyring;
  const orgId = 'org_keys_test';

  beforeEach(async () => {
    database = await freshPglite();
    opened = await openMigrated(database);
    keyring = generateKeyring();
    await opened.db.insertInto('orgs').values({ id: orgId, name: 'keys' }).execute();
    await insertOrgKeys(opened.db, await generateOrgKeys(keyring, orgId));
    await ensureAuditKey(opened.db, keyring);
  });

  afterEach(async () => {
    await opened.close();
    await database.cleanup();
  });

  it('opens every wrapped key with the master key that wrapped them', async () => {
    const keys = new KeyService(opened.db, keyring, new UnsealState());
    expect(await keys.verifyMasterKeyOpensEverything()).toEqual({
      deks: 1,
      privateKeys: 3,
      macKeys: 1,
    });
  });

  it('fails closed with ERR_MASTER_KEY_MISMATCH under another master key and records it for /healthz', async () => {
    const unseal = new UnsealState();
    const keys = new KeyService(opened.db, generateKeyring(), unseal);
    await expect(keys.verifyMasterKeyOpensEverything()).rejects.toMatchObject({
      code: 'ERR_MASTER_KEY_MISMATCH',
      message: expect.stringContaining('does not belong to this database'),
    });
    expect(unseal.ok).toBe(false);
    expect(unseal.error?.code).toBe('ERR_MASTER_KEY_MISMATCH');
    await expect(keys.useOrgDeks(orgId, () => 'never')).rejects.toMatchObject({
      code: 'ERR_MASTER_KEY_MISMATCH',
    });
  });

  it('names the missing version when the key file lacks the one that wrapped the keys', async () => {
    const unseal = new UnsealState();
    const onlyV2 = Keyring.create([{ version: 2, key: randomBytes(32) }], 2);
    const keys = new KeyService(opened.db, onlyV2, unseal);
    await expect(keys.verifyMasterKeyOpensEverything()).rejects.toMatchObject({
      code: 'ERR_MASTER_KEY_VERSION_MISSING',
    });
    expect(unseal.error?.code).toBe('ERR_MASTER_KEY_VERSION_MISSING');
  });

  it('fails closed when a wrapped org DEK was tampered with in the database', async () => {
    const row = await opened.db
      .selectFrom('org_deks')
      .select('wrapped_key')
      .executeTakeFirstOrThrow();
    const tampered = Buffer.from(row.wrapped_key);
    tampered[tampered.length - 1]! ^= 1;
    await opened.db.updateTable('org_deks').set({ wrapped_key: tampered }).execute();
    const keys = new KeyService(opened.db, keyring, new UnsealState());
    await expect(keys.useOrgDeks(orgId, () => 'never')).rejects.toMatchObject({
      code: 'ERR_MASTER_KEY_MISMATCH',
    });
  });

  it('hands out the active org DEK and zeroes it when the service is destroyed', async () => {
    const keys = new KeyService(opened.db, keyring, new UnsealState());
    const seen = await keys.useOrgDeks(orgId, (deks) => {
      expect(deks.active.version).toBe(1);
      expect(deks.lookup(1)).toBe(deks.active.key);
      expect(deks.lookup(2)).toBeUndefined();
      return deks.active.key;
    });
    expect(seen.some((byte: number) => byte !== 0)).toBe(true);
    keys.destroy();
    expect(seen.every((byte: number) => byte === 0)).toBe(true);
  });

  it('finds the sealing and signing private keys and nothing for an unknown key id', async () => {
    const keys = new KeyService(opened.db, keyring, new UnsealState());
    const sealingRow = await opened.db
      .selectFrom('org_keys')
      .select('id')
      .where('kind', '=', 'sealing')
      .executeTakeFirstOrThrow();
    const sealing = await keys.sealingKey(orgId, sealingRow.id);
    expect(sealing).toMatchObject({ keyId: sealingRow.id, status: 'active' });
    expect(sealing?.privateKey.asymmetricKeyType).toBe('rsa');
    expect((await keys.activeSigningKey(orgId)).privateKey.asymmetricKeyType).toBe('ed25519');
    expect(await keys.sealingKey(orgId, 'key_unknown')).toBeUndefined();
    expect(await keys.sealingKey('org_other', sealingRow.id)).toBeUndefined();
  });

  it("finds the signing key by id (read with the values) only as this org's signing key, else signs with the active one", async () => {
    const keys = new KeyService(opened.db, keyring, new UnsealState());
    const active = await keys.activeSigningKey(orgId);
    const byId = await keys.signingKeyById(orgId, active.keyId);
    expect(byId.privateKey).toBe(active.privateKey); // the cached KeyObject
    // Not cached yet: read by id, checked and unwrapped.
    const fresh = new KeyService(opened.db, keyring, new UnsealState());
    const loaded = await fresh.signingKeyById(orgId, active.keyId);
    expect(loaded.privateKey.asymmetricKeyType).toBe('ed25519');
    const sealingRow = await opened.db
      .selectFrom('org_keys')
      .select('id')
      .where('kind', '=', 'sealing')
      .executeTakeFirstOrThrow();
    // An id that is not (or no longer, after a rotation destroyed it between the caller's read
    // and this one) a usable signing key of this org: the org's active key signs instead, and
    // the answer names that key, never the requested one.
    for (const stale of [sealingRow.id, 'key_destroyed_meanwhile']) {
      const signer = await fresh.signingKeyById(orgId, stale);
      expect(signer.keyId).toBe(active.keyId);
      expect(signer.privateKey.asymmetricKeyType).toBe('ed25519');
    }
    // Another org's id is never served for this one: org_other has no keys at all.
    await expect(fresh.signingKeyById('org_other', active.keyId)).rejects.toMatchObject({
      code: 'ERR_INTERNAL',
    });
    keys.destroy();
    fresh.destroy();
  });
});
