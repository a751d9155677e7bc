import { randomBytes } from 'node:crypto';
import {
  decryptSecret,
  encryptSecret,
  generateKeyring,
  isCrateError,
  type Keyring,
  type SecretRef,
  wrapOrgDek,
} from '@crate/crypto-core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OpenDatabase } from '../src/db/database.js';
import { KeyService } from '../src/keys/key.service.js';
import { ensureAuditKey, generateOrgKeys, insertOrgKeys } from '../src/keys/org-keys.js';
import { SecretDekCache } from '../src/keys/secret-dek-cache.js';
import { UnsealState } from '../src/keys/unseal-state.js';
import { freshPglite, type TestDatabase } from './harness/database.js';
import { openMigrated } from './harness/in-process.js';

const ref = (name: string, version = 1): SecretRef => ({
  orgId: 'org_1',
  projectId: 'prj_1',
  environmentId: 'env_1',
  name,
  version,
});

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

function setup(maxEntries = 100, ttlMs = 1000) {
  let now = 0;
  const orgDek = randomBytes(32);
  const lookup = (version: number) => (version === 1 ? orgDek : undefined);
  const cache = new SecretDekCache({ maxEntries, ttlMs }, () => now);
  const stored = (name: string, value = `value of ${name}`, version = 1) => ({
    ...encryptSecret({ version: 1, key: orgDek }, Buffer.from(value), ref(name, version)),
    ref: ref(name, version),
    value,
  });
  return { cache, lookup, orgDek, stored, advance: (ms: number) => (now += ms) };
}

describe('the secret DEK cache', () => {
  it('unwraps a secret version once, then opens its value with the cached key', () => {
    const { cache, lookup, stored } = setup();
    const a = stored('A');
    for (let i = 0; i < 3; i++) {
      const value = cache.decrypt(lookup, a.wrappedDek, a.ciphertext, a.ref);
      expect(value.toString()).toBe(a.value);
      // The caller zeroes what it gets: the cache holds keys, never a value.
      value.fill(0);
    }
    expect(cache.stats).toEqual({ hits: 2, misses: 1 });
    expect(cache.size).toBe(1);
  });

  it('gives the results and the errors decryptSecret gives', () => {
    const { cache, lookup, stored } = setup();
    const a = stored('A');
    expect(
      cache
        .decrypt(lookup, a.wrappedDek, a.ciphertext, a.ref)
        .equals(decryptSecret(lookup, a.wrappedDek, a.ciphertext, a.ref)),
    ).toBe(true);
    // A tampered value still fails on a cache hit: the value's tag is checked on every read.
    const tamperedValue = Buffer.from(a.ciphertext);
    tamperedValue[tamperedValue.length - 1]! ^= 1;
    expect(
      isCrateError(
        caught(() => cache.decrypt(lookup, a.wrappedDek, tamperedValue, a.ref)),
        'ERR_DECRYPT',
      ),
    ).toBe(true);
    // A tampered wrapped DEK is another cache id: it is unwrapped, and refused.
    const tamperedDek = Buffer.from(a.wrappedDek);
    tamperedDek[tamperedDek.length - 1]! ^= 1;
    expect(
      isCrateError(
        caught(() => cache.decrypt(lookup, tamperedDek, a.ciphertext, a.ref)),
        'ERR_DECRYPT',
      ),
    ).toBe(true);
    // A row moved to another name or version misses and fails its context check.
    for (const moved of [ref('B'), ref('A', 2)]) {
      expect(
        isCrateError(
          caught(() => cache.decrypt(lookup, a.wrappedDek, a.ciphertext, moved)),
          'ERR_DECRYPT',
        ),
      ).toBe(true);
    }
    // An org DEK version the lookup does not hold is ERR_KEY_VERSION_UNKNOWN, as before.
    const b = stored('B');
    expect(
      isCrateError(
        caught(() => cache.decrypt(() => undefined, b.wrappedDek, b.ciphertext, b.ref)),
        'ERR_KEY_VERSION_UNKNOWN',
      ),
    ).toBe(true);
  });

  it('serves a key only while the org DEK cache hands out the Buffer it was unwrapped under', () => {
    const { cache, lookup, orgDek, stored } = setup();
    const a = stored('A');
    cache.decrypt(lookup, a.wrappedDek, a.ciphertext, a.ref);
    // The org DEK entry was reloaded (same key, new Buffer): the secret DEK is unwrapped again.
    const reloaded = Buffer.from(orgDek);
    cache.decrypt((v) => (v === 1 ? reloaded : undefined), a.wrappedDek, a.ciphertext, a.ref);
    expect(cache.stats).toEqual({ hits: 0, misses: 2 });
    // The org DEK entry is gone: even with the cached secret DEK, nothing opens.
    expect(
      isCrateError(
        caught(() => cache.decrypt(() => undefined, a.wrappedDek, a.ciphertext, a.ref)),
        'ERR_KEY_VERSION_UNKNOWN',
      ),
    ).toBe(true);
  });

  it('keeps at most maxEntries keys, dropping the least recently used', () => {
    const { cache, lookup, stored } = setup(2);
    const [a, b, c] = [stored('A'), stored('B'), stored('C')];
    cache.decrypt(lookup, a.wrappedDek, a.ciphertext, a.ref);
    cache.decrypt(lookup, b.wrappedDek, b.ciphertext, b.ref);
    cache.decrypt(lookup, a.wrappedDek, a.ciphertext, a.ref); // A is now the most recent
    cache.decrypt(lookup, c.wrappedDek, c.ciphertext, c.ref); // evicts B
    expect(cache.size).toBe(2);
    cache.decrypt(lookup, a.wrappedDek, a.ciphertext, a.ref);
    cache.decrypt(lookup, b.wrappedDek, b.ciphertext, b.ref);
    expect(cache.stats).toEqual({ hits: 2, misses: 4 });
  });

  it('forgets a key when its time to live has passed, used or not', () => {
    const { cache, lookup, stored, advance } = setup(100, 1000);
    const [a, b] = [stored('A'), stored('B')];
    cache.decrypt(lookup, a.wrappedDek, a.ciphertext, a.ref);
    advance(600);
    cache.decrypt(lookup, b.wrappedDek, b.ciphertext, b.ref);
    cache.decrypt(lookup, a.wrappedDek, a.ciphertext, a.ref); // a hit does not extend the TTL
    advance(500);
    cache.purgeExpired();
    expect(cache.size).toBe(1);
    cache.decrypt(lookup, a.wrappedDek, a.ciphertext, a.ref);
    expect(cache.stats).toEqual({ hits: 1, misses: 3 });
  });

  it('drops the keys unwrapped under a disposed org DEK, and everything on clear', () => {
    const { cache, lookup, orgDek, stored } = setup();
    const other = randomBytes(32);
    const a = stored('A');
    const fromOther = encryptSecret({ version: 1, key: other }, Buffer.from('x'), ref('X'));
    cache.decrypt(lookup, a.wrappedDek, a.ciphertext, a.ref);
    cache.decrypt(() => other, fromOther.wrappedDek, fromOther.ciphertext, ref('X'));
    expect(cache.size).toBe(2);
    cache.forgetUnder([orgDek]);
    expect(cache.size).toBe(1);
    cache.clear();
    expect(cache.size).toBe(0);
  });

  it('caches nothing with maxEntries 0', () => {
    const { cache, lookup, stored } = setup(0);
    const a = stored('A');
    cache.decrypt(lookup, a.wrappedDek, a.ciphertext, a.ref);
    cache.decrypt(lookup, a.wrappedDek, a.ciphertext, a.ref);
    expect(cache.stats).toEqual({ hits: 0, misses: 2 });
    expect(cache.size).toBe(0);
  });
});

describe('the secret DEK cache in the key service', () => {
  let database: TestDatabase;
  let opened: OpenDatabase;
  let keyring: Keyring;
  const orgId = 'org_dek_cache';

  beforeEach(async () => {
    database = await freshPglite();
    opened = await openMigrated(database);
    keyring = generateKeyring();
    for (const id of [orgId, 'org_second']) {
      await opened.db.insertInto('orgs').values({ id, name: id }).execute();
      await insertOrgKeys(opened.db, await generateOrgKeys(keyring, id));
    }
    await ensureAuditKey(opened.db, keyring);
  });

  afterEach(async () => {
    await opened.close();
    await database.cleanup();
  });

  const secretOf = (org: string, deks: { active: { version: number; key: Buffer } }) => {
    const at = { ...ref('A'), orgId: org };
    return { ...encryptSecret(deks.active, Buffer.from('v'), at), at };
  };

  it('is dropped, and refuses, once an unwrap fails (the unseal state)', async () => {
    const unseal = new UnsealState();
    const keys = new KeyService(opened.db, keyring, unseal);
    const stored = await keys.useOrgDeks(orgId, (deks) => {
      const s = secretOf(orgId, deks);
      expect(keys.decryptSecret(deks, s.wrappedDek, s.ciphertext, s.at).toString()).toBe('v');
      return s;
    });
    expect(keys.cacheSizes().secretDeks).toBe(1);
    // The second org's DEK is replaced by one wrapped under another master key: its unwrap
    // fails, the process records it and drops every cached key.
    const foreign = wrapOrgDek(generateKeyring().active(), randomBytes(32), {
      orgId: 'org_second',
      dekVersion: 1,
    });
    await opened.db
      .updateTable('org_deks')
      .set({ wrapped_key: foreign })
      .where('org_id', '=', 'org_second')
      .execute();
    await expect(keys.useOrgDeks('org_second', () => 'never')).rejects.toMatchObject({
      code: 'ERR_MASTER_KEY_MISMATCH',
    });
    expect(unseal.ok).toBe(false);
    expect(keys.cacheSizes()).toEqual({ orgDeks: 0, privateKeys: 0, secretDeks: 0 });
    const deks = {
      orgId,
      active: { version: 1, key: Buffer.alloc(32) },
      lookup: () => undefined,
      macKeys: { active: undefined, lookup: () => undefined },
    };
    expect(
      isCrateError(
        caught(() => keys.decryptSecret(deks, stored.wrappedDek, stored.ciphertext, stored.at)),
        'ERR_MASTER_KEY_MISMATCH',
      ),
    ).toBe(true);
  });

  it("drops an org's secret DEKs when its org DEK entry is evicted", async () => {
    const keys = new KeyService(opened.db, keyring, new UnsealState(), {
      maxEntries: 1,
      ttlMs: 60_000,
    });
    await keys.useOrgDeks(orgId, (deks) => {
      const s = secretOf(orgId, deks);
      keys.decryptSecret(deks, s.wrappedDek, s.ciphertext, s.at);
    });
    expect(keys.cacheSizes()).toMatchObject({ orgDeks: 1, secretDeks: 1 });
    await keys.useOrgDeks('org_second', () => undefined); // evicts the first org's DEKs
    expect(keys.cacheSizes()).toMatchObject({ orgDeks: 1, secretDeks: 0 });
    keys.destroy();
  });

  it('is emptied by destroy, as at shutdown', async () => {
    const keys = new KeyService(opened.db, keyring, new UnsealState());
    await keys.useOrgDeks(orgId, (deks) => {
      const s = secretOf(orgId, deks);
      keys.decryptSecret(deks, s.wrappedDek, s.ciphertext, s.at);
    });
    keys.destroy();
    expect(keys.cacheSizes()).toEqual({ orgDeks: 0, privateKeys: 0, secretDeks: 0 });
  });
});
