import { describe, expect, it } from 'vitest';
import {
  DECRYPT_FAILED_MESSAGE,
  decryptSecret,
  decryptValue,
  type ErrorCode,
  encryptSecret,
  encryptValue,
  generateDataKey,
  isCrateError,
  Keyring,
  type PrivateKeyContext,
  readEnvelopeHeader,
  rewrapOrgDek,
  rewrapPrivateKey,
  rewrapSecretDek,
  type SecretRef,
  unwrapOrgDek,
  unwrapOrgMacKey,
  unwrapPrivateKey,
  unwrapSecretDek,
  type VersionedKey,
  wrapOrgDek,
  wrapOrgMacKey,
  wrapPrivateKey,
  wrapSecretDek,
} from '../src/index.js';

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

function expectCode(fn: () => unknown, code: ErrorCode): void {
  const error = caught(fn);
  expect(isCrateError(error, code), String(error)).toBe(true);
}

function expectDecryptError(fn: () => unknown): void {
  const error = caught(fn);
  expect(isCrateError(error, 'ERR_DECRYPT'), String(error)).toBe(true);
  expect((error as Error).message).toBe(DECRYPT_FAILED_MESSAGE);
}

const sharedKey = Buffer.alloc(32, 0xa5);
const master: VersionedKey = { version: 3, key: sharedKey };
const masterKeys = Keyring.create([master], 3);
const orgDek: VersionedKey = { version: 5, key: Buffer.alloc(32, 0x5a) };
const orgDeks = Keyring.create([orgDek], 5);
const ref: SecretRef = {
  orgId: 'org_a',
  projectId: 'prj_b',
  environmentId: 'env_c',
  name: 'DATABASE_URL',
  version: 4,
};
const orgCtx = { orgId: 'org_a', dekVersion: 2 };
const keyCtx: PrivateKeyContext = { orgId: 'org_a', keyId: 'key_1', keyKind: 'sealing' };
const dataKey = Buffer.alloc(32, 0x3c);
const pkcs8 = Buffer.from('302e020100300506032b657004220420' + '11'.repeat(32), 'hex');

const refChanges: ReadonlyArray<[string, SecretRef]> = [
  ['orgId', { ...ref, orgId: 'org_z' }],
  ['projectId', { ...ref, projectId: 'prj_z' }],
  ['environmentId', { ...ref, environmentId: 'env_z' }],
  ['name', { ...ref, name: 'DATABASE_URL2' }],
  ['version', { ...ref, version: 5 }],
];

describe('envelope round trips', () => {
  it('unwraps a wrapped org DEK to the same bytes', () => {
    const blob = wrapOrgDek(master, dataKey, orgCtx);
    expect(unwrapOrgDek(masterKeys, blob, orgCtx).equals(dataKey)).toBe(true);
  });

  it('unwraps a wrapped private key of every kind to the same bytes', () => {
    for (const keyKind of ['sealing', 'signing', 'audit'] as const) {
      const blob = wrapPrivateKey(master, pkcs8, { ...keyCtx, keyKind });
      expect(unwrapPrivateKey(masterKeys, blob, { ...keyCtx, keyKind }).equals(pkcs8)).toBe(true);
    }
  });

  it('unwraps a wrapped secret DEK to the same bytes', () => {
    const blob = wrapSecretDek(orgDek, dataKey, ref);
    expect(unwrapSecretDek(orgDeks, blob, ref).equals(dataKey)).toBe(true);
  });

  it('decrypts an encrypted value, including an empty one', () => {
    for (const value of [Buffer.from('postgres://u:p@h/db'), Buffer.alloc(0)]) {
      const blob = encryptValue(dataKey, value, ref);
      expect(decryptValue(dataKey, blob, ref).equals(value)).toBe(true);
    }
  });

  it('decrypts a secret encrypted under a fresh secret DEK', () => {
    const value = Buffer.from('s3cr3t');
    const { wrappedDek, ciphertext } = encryptSecret(orgDek, value, ref);
    expect(decryptSecret(orgDeks, wrappedDek, ciphertext, ref).equals(value)).toBe(true);
    const secretDek = unwrapSecretDek(orgDeks, wrappedDek, ref);
    expect(decryptValue(secretDek, ciphertext, ref).equals(value)).toBe(true);
  });

  it('accepts a function as the key lookup', () => {
    const blob = wrapOrgDek(master, dataKey, orgCtx);
    const lookup = (version: number) => (version === 3 ? sharedKey : undefined);
    expect(unwrapOrgDek(lookup, blob, orgCtx).equals(dataKey)).toBe(true);
  });

  it('uses a fresh nonce for every wrap, so equal inputs give different blobs', () => {
    const first = wrapOrgDek(master, dataKey, orgCtx);
    const second = wrapOrgDek(master, dataKey, orgCtx);
    expect(first.equals(second)).toBe(false);
    const { wrappedDek: a } = encryptSecret(orgDek, Buffer.from('x'), ref);
    const { wrappedDek: b } = encryptSecret(orgDek, Buffer.from('x'), ref);
    expect(unwrapSecretDek(orgDeks, a, ref).equals(unwrapSecretDek(orgDeks, b, ref))).toBe(false);
  });
});

describe('envelope header', () => {
  it('lays out magic, format version, kind and key version in the first 8 bytes', () => {
    const blob = wrapOrgDek(master, dataKey, orgCtx);
    expect(blob.subarray(0, 8).toString('hex')).toBe('4345010100000003');
    expect(blob).toHaveLength(8 + 12 + 32 + 16);
    expect(readEnvelopeHeader(blob)).toEqual({ formatVersion: 1, kind: 'org-dek', keyVersion: 3 });
  });

  it('records kind and wrapping key version for every kind', () => {
    expect(readEnvelopeHeader(wrapSecretDek(orgDek, dataKey, ref))).toEqual({
      formatVersion: 1,
      kind: 'secret-dek',
      keyVersion: 5,
    });
    expect(readEnvelopeHeader(encryptValue(dataKey, Buffer.from('v'), ref))).toEqual({
      formatVersion: 1,
      kind: 'secret-value',
      keyVersion: 0,
    });
    const blob = wrapPrivateKey(master, pkcs8, keyCtx);
    expect(blob.subarray(0, 8).toString('hex')).toBe('4345010400000003');
  });

  it('rejects malformed headers with ERR_DECRYPT', () => {
    const good = wrapOrgDek(master, dataKey, orgCtx);
    const patched = (offset: number, value: number): Buffer => {
      const copy = Buffer.from(good);
      copy[offset] = value;
      return copy;
    };
    const malformed = [
      Buffer.alloc(0),
      good.subarray(0, 35),
      patched(0, 0x44), // magic
      patched(1, 0x00), // magic
      patched(2, 0), // format version
      patched(2, 2), // format version
      patched(3, 0), // kind
      patched(3, 6), // kind
      Buffer.concat([good.subarray(0, 4), Buffer.alloc(4), good.subarray(8)]), // version 0
    ];
    for (const blob of malformed) {
      expectDecryptError(() => readEnvelopeHeader(blob));
      expectDecryptError(() => unwrapOrgDek(masterKeys, blob, orgCtx));
    }
    const value = encryptValue(dataKey, Buffer.from('v'), ref);
    value[7] = 1; // a secret value's key version must be 0
    expectDecryptError(() => readEnvelopeHeader(value));
  });

  it('refuses a header that is not bytes as a programming error', () => {
    expect(() => readEnvelopeHeader('CE' as unknown as Uint8Array)).toThrow(TypeError);
  });
});

describe('opening under a different context', () => {
  it('fails for an org DEK when the org or the DEK version differs', () => {
    const blob = wrapOrgDek(master, dataKey, orgCtx);
    expectDecryptError(() => unwrapOrgDek(masterKeys, blob, { ...orgCtx, orgId: 'org_z' }));
    expectDecryptError(() => unwrapOrgDek(masterKeys, blob, { ...orgCtx, dekVersion: 3 }));
  });

  it('fails for a private key when the org, key id or key kind differs', () => {
    const blob = wrapPrivateKey(master, pkcs8, keyCtx);
    expectDecryptError(() => unwrapPrivateKey(masterKeys, blob, { ...keyCtx, orgId: 'org_z' }));
    expectDecryptError(() => unwrapPrivateKey(masterKeys, blob, { ...keyCtx, keyId: 'key_2' }));
    expectDecryptError(() => unwrapPrivateKey(masterKeys, blob, { ...keyCtx, keyKind: 'signing' }));
  });

  it('fails for a secret DEK, a value and a secret when any field of the ref differs', () => {
    const wrapped = wrapSecretDek(orgDek, dataKey, ref);
    const value = encryptValue(dataKey, Buffer.from('v'), ref);
    const secret = encryptSecret(orgDek, Buffer.from('v'), ref);
    for (const [field, other] of refChanges) {
      expect(other, field).not.toEqual(ref);
      expectDecryptError(() => unwrapSecretDek(orgDeks, wrapped, other));
      expectDecryptError(() => decryptValue(dataKey, value, other));
      expectDecryptError(() => decryptSecret(orgDeks, secret.wrappedDek, secret.ciphertext, other));
    }
  });

  it('fails when the ciphertext of one secret version is paired with the DEK of another', () => {
    const v4 = encryptSecret(orgDek, Buffer.from('four'), ref);
    const v5 = encryptSecret(orgDek, Buffer.from('five'), { ...ref, version: 5 });
    expectDecryptError(() => decryptSecret(orgDeks, v5.wrappedDek, v4.ciphertext, ref));
    expectDecryptError(() => decryptSecret(orgDeks, v4.wrappedDek, v5.ciphertext, ref));
  });

  it('fails for a secret DEK when the header names another org DEK version holding the same key', () => {
    const twin = Keyring.create([orgDek, { version: 6, key: orgDek.key }], 5);
    const blob = wrapSecretDek(orgDek, dataKey, ref);
    blob.writeUInt32BE(6, 4);
    expectDecryptError(() => unwrapSecretDek(twin, blob, ref));
  });

  it('fails under the right version number but the wrong key', () => {
    const blob = wrapOrgDek(master, dataKey, orgCtx);
    const impostor = Keyring.create([{ version: 3, key: Buffer.alloc(32, 0x01) }], 3);
    expectDecryptError(() => unwrapOrgDek(impostor, blob, orgCtx));
    expectDecryptError(() =>
      decryptValue(Buffer.alloc(32), encryptValue(dataKey, Buffer.from('v'), ref), ref),
    );
  });
});

describe('opening a blob as another kind', () => {
  // Every blob below is sealed under the same key bytes, so only the kind tells them apart.
  const sameKey = Keyring.create([{ version: 3, key: sharedKey }], 3);
  const secretRefCtx: SecretRef = { ...ref, orgId: 'org_a' };
  const blobs = {
    'org-dek': wrapOrgDek(master, dataKey, orgCtx),
    'private-key': wrapPrivateKey(master, dataKey, keyCtx),
    'org-mac-key': wrapOrgMacKey(master, dataKey, { orgId: orgCtx.orgId, macKeyVersion: 1 }),
    'secret-dek': wrapSecretDek({ version: 3, key: sharedKey }, dataKey, secretRefCtx),
    'secret-value': encryptValue(sharedKey, dataKey, secretRefCtx),
  };
  const openers = {
    'org-dek': (blob: Buffer) => unwrapOrgDek(sameKey, blob, orgCtx),
    'private-key': (blob: Buffer) => unwrapPrivateKey(sameKey, blob, keyCtx),
    'org-mac-key': (blob: Buffer) =>
      unwrapOrgMacKey(sameKey, blob, { orgId: orgCtx.orgId, macKeyVersion: 1 }),
    'secret-dek': (blob: Buffer) => unwrapSecretDek(sameKey, blob, secretRefCtx),
    'secret-value': (blob: Buffer) => decryptValue(sharedKey, blob, secretRefCtx),
  };
  const kinds = Object.keys(blobs) as Array<keyof typeof blobs>;

  it('opens each blob as its own kind', () => {
    for (const kind of kinds) {
      expect(openers[kind](blobs[kind]).equals(dataKey), kind).toBe(true);
    }
  });

  it('fails with ERR_DECRYPT for every pair of different kinds', () => {
    let pairs = 0;
    for (const blobKind of kinds) {
      for (const openerKind of kinds) {
        if (blobKind !== openerKind) {
          expectDecryptError(() => openers[openerKind](blobs[blobKind]));
          pairs++;
        }
      }
    }
    expect(pairs).toBe(20);
  });

  it('fails when the kind byte is rewritten to match the opener', () => {
    const forged = Buffer.from(blobs['org-dek']);
    forged[3] = 4; // org-dek -> private-key, same key version 3
    expect(readEnvelopeHeader(forged).kind).toBe('private-key');
    expectDecryptError(() => openers['private-key'](forged));
  });
});

describe('key versions', () => {
  it('reports a version the keyring does not hold as ERR_KEY_VERSION_UNKNOWN, naming it', () => {
    const blob = wrapOrgDek(master, dataKey, orgCtx);
    const other = Keyring.create([{ version: 4, key: sharedKey }], 4);
    const error = caught(() => unwrapOrgDek(other, blob, orgCtx));
    expect(isCrateError(error, 'ERR_KEY_VERSION_UNKNOWN')).toBe(true);
    expect((error as Error).message).toContain('3');
  });

  it('reports a version a lookup function does not hold as ERR_KEY_VERSION_UNKNOWN', () => {
    const { wrappedDek, ciphertext } = encryptSecret(orgDek, Buffer.from('v'), ref);
    expectCode(
      () => decryptSecret(() => undefined, wrappedDek, ciphertext, ref),
      'ERR_KEY_VERSION_UNKNOWN',
    );
    expectCode(() => unwrapSecretDek(() => undefined, wrappedDek, ref), 'ERR_KEY_VERSION_UNKNOWN');
  });

  it('treats a lookup returning a key of the wrong size as a programming error', () => {
    const blob = wrapOrgDek(master, dataKey, orgCtx);
    expect(() => unwrapOrgDek(() => Buffer.alloc(16), blob, orgCtx)).toThrow(RangeError);
  });
});

describe('rewrapping', () => {
  const newMaster: VersionedKey = { version: 4, key: Buffer.alloc(32, 0x44) };
  const both = Keyring.create([master, newMaster], 4);
  const onlyNew = Keyring.create([newMaster], 4);

  it('rewraps an org DEK under the new master key while the old blob still opens with the old key', () => {
    const old = wrapOrgDek(master, dataKey, orgCtx);
    const rewrapped = rewrapOrgDek(both, newMaster, old, orgCtx);
    expect(readEnvelopeHeader(rewrapped).keyVersion).toBe(4);
    expect(unwrapOrgDek(onlyNew, rewrapped, orgCtx).equals(dataKey)).toBe(true);
    expect(unwrapOrgDek(masterKeys, old, orgCtx).equals(dataKey)).toBe(true);
    expectCode(() => unwrapOrgDek(onlyNew, old, orgCtx), 'ERR_KEY_VERSION_UNKNOWN');
  });

  it('rewraps a private key under the new master key while the old blob still opens', () => {
    const old = wrapPrivateKey(master, pkcs8, keyCtx);
    const rewrapped = rewrapPrivateKey(masterKeys, newMaster, old, keyCtx);
    expect(unwrapPrivateKey(onlyNew, rewrapped, keyCtx).equals(pkcs8)).toBe(true);
    expect(unwrapPrivateKey(masterKeys, old, keyCtx).equals(pkcs8)).toBe(true);
  });

  it('rewraps a secret DEK under a new org DEK and the value still decrypts', () => {
    const newOrgDek: VersionedKey = { version: 6, key: generateDataKey() };
    const { wrappedDek, ciphertext } = encryptSecret(orgDek, Buffer.from('value'), ref);
    const rewrapped = rewrapSecretDek(orgDeks, newOrgDek, wrappedDek, ref);
    expect(readEnvelopeHeader(rewrapped).keyVersion).toBe(6);
    const newOnly = Keyring.create([newOrgDek], 6);
    expect(decryptSecret(newOnly, rewrapped, ciphertext, ref).toString()).toBe('value');
    expect(decryptSecret(orgDeks, wrappedDek, ciphertext, ref).toString()).toBe('value');
  });

  it('refuses to rewrap a blob under the wrong context', () => {
    const old = wrapOrgDek(master, dataKey, orgCtx);
    expectDecryptError(() => rewrapOrgDek(both, newMaster, old, { ...orgCtx, orgId: 'org_z' }));
    const wrapped = wrapSecretDek(orgDek, dataKey, ref);
    expectDecryptError(() =>
      rewrapSecretDek(orgDeks, { version: 6, key: sharedKey }, wrapped, { ...ref, version: 9 }),
    );
  });
});

describe('envelope arguments', () => {
  it('refuses data keys that are not 32 bytes', () => {
    expect(() => wrapOrgDek(master, Buffer.alloc(31), orgCtx)).toThrow(RangeError);
    expect(() => wrapSecretDek(orgDek, Buffer.alloc(33), ref)).toThrow(RangeError);
    expect(() => encryptValue(Buffer.alloc(16), Buffer.from('v'), ref)).toThrow(RangeError);
    expect(() => decryptValue(Buffer.alloc(16), Buffer.alloc(64), ref)).toThrow(RangeError);
  });

  it('refuses wrapping keys with a bad version or size', () => {
    for (const version of [0, -1, 1.5, 2 ** 32]) {
      expect(() => wrapOrgDek({ version, key: sharedKey }, dataKey, orgCtx)).toThrow(RangeError);
    }
    expect(() => wrapOrgDek({ version: 1, key: Buffer.alloc(16) }, dataKey, orgCtx)).toThrow(
      RangeError,
    );
    expect(() =>
      wrapOrgDek({ version: 1, key: 'k'.repeat(32) as unknown as Buffer }, dataKey, orgCtx),
    ).toThrow(TypeError);
  });

  it('refuses a context with a bad field before looking at the blob', () => {
    expect(() => unwrapOrgDek(masterKeys, Buffer.alloc(0), { orgId: '', dekVersion: 1 })).toThrow(
      TypeError,
    );
  });

  it('generates 32-byte data keys that differ', () => {
    const a = generateDataKey();
    const b = generateDataKey();
    expect(a).toHaveLength(32);
    expect(a.equals(b)).toBe(false);
  });
});
