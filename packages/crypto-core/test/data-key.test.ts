import { createSecretKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  aeadDecrypt,
  aeadEncryptWithNonce,
  buildBundle,
  decryptSecret,
  decryptValue,
  encryptSecret,
  encryptValue,
  generateEphemeralKeyPair,
  generateSigningKeyPair,
  importDataKey,
  importSigningPrivateKey,
  importSigningPublicKey,
  isCrateError,
  newBundleNonce,
  openBundle,
  type SecretRef,
  unwrapSecretDek,
  validateEphemeralPublicKey,
} from '../src/index.js';

const ref: SecretRef = {
  orgId: 'org_1',
  projectId: 'prj_1',
  environmentId: 'env_1',
  name: 'DATABASE_URL',
  version: 3,
};

describe('AES-GCM under a KeyObject (the fast path for cached keys)', () => {
  it('produces the same bytes as the raw key and opens what the raw key sealed', () => {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const aad = Buffer.from('context');
    const plaintext = randomBytes(100);
    const raw = aeadEncryptWithNonce(key, nonce, plaintext, aad);
    const viaKeyObject = aeadEncryptWithNonce(importDataKey(key), nonce, plaintext, aad);
    expect(viaKeyObject.ciphertext.equals(raw.ciphertext)).toBe(true);
    expect(viaKeyObject.tag.equals(raw.tag)).toBe(true);
    const opened = aeadDecrypt(importDataKey(key), nonce, raw.ciphertext, raw.tag, aad);
    expect(opened.equals(plaintext)).toBe(true);
  });

  it('still fails closed with ERR_DECRYPT on a tampered tag', () => {
    const key = importDataKey(randomBytes(32));
    const nonce = randomBytes(12);
    const { ciphertext, tag } = aeadEncryptWithNonce(key, nonce, randomBytes(10), Buffer.from('a'));
    tag[0]! ^= 1;
    let error: unknown;
    try {
      aeadDecrypt(key, nonce, ciphertext, tag, Buffer.from('a'));
    } catch (caught) {
      error = caught;
    }
    expect(isCrateError(error, 'ERR_DECRYPT')).toBe(true);
  });

  it('refuses a KeyObject that is not a 32-byte secret key', () => {
    const nonce = randomBytes(12);
    const aad = Buffer.from('a');
    expect(() => aeadEncryptWithNonce(createSecretKey(randomBytes(16)), nonce, aad, aad)).toThrow(
      RangeError,
    );
    const { publicKey } = generateKeyPairSync('ed25519');
    expect(() => aeadEncryptWithNonce(publicKey, nonce, aad, aad)).toThrow(RangeError);
  });
});

describe('importDataKey', () => {
  it('copies the bytes: zeroing the source afterwards leaves the key intact', () => {
    const bytes = randomBytes(32);
    const dek = { version: 1, key: randomBytes(32) };
    const { wrappedDek, ciphertext } = encryptSecret(dek, Buffer.from('value'), ref);
    const secretDek = unwrapSecretDek(() => dek.key, wrappedDek, ref);
    bytes.set(secretDek);
    const key = importDataKey(bytes);
    bytes.fill(0);
    expect(decryptValue(key, ciphertext, ref).toString()).toBe('value');
  });

  it('opens exactly what decryptSecret opens, and a value sealed under it opens with the bytes', () => {
    const dek = { version: 2, key: randomBytes(32) };
    const { wrappedDek, ciphertext } = encryptSecret(dek, Buffer.from('s3cret'), ref);
    const lookup = (version: number) => (version === 2 ? dek.key : undefined);
    const secretDek = unwrapSecretDek(lookup, wrappedDek, ref);
    const key = importDataKey(secretDek);
    expect(
      decryptValue(key, ciphertext, ref).equals(decryptSecret(lookup, wrappedDek, ciphertext, ref)),
    ).toBe(true);
    const sealed = encryptValue(key, Buffer.from('other'), ref);
    expect(decryptValue(secretDek, sealed, ref).toString()).toBe('other');
    // The context still binds: another version of the same secret does not open.
    let error: unknown;
    try {
      decryptValue(key, ciphertext, { ...ref, version: 4 });
    } catch (caught) {
      error = caught;
    }
    expect(isCrateError(error, 'ERR_DECRYPT')).toBe(true);
  });

  it('refuses anything but 32 bytes', () => {
    expect(() => importDataKey(randomBytes(31))).toThrow(RangeError);
    expect(() => importDataKey('x'.repeat(32) as unknown as Uint8Array)).toThrow(TypeError);
  });
});

describe('bundle fingerprint of a validated ephemeral key', () => {
  it('is the fingerprint of the SPKI the client sent (the bundle opens and binds)', async () => {
    const ephemeral = await generateEphemeralKeyPair(2048);
    const key = validateEphemeralPublicKey(ephemeral.publicKeySpki);
    const signing = generateSigningKeyPair();
    const binding = {
      orgId: 'org_1',
      project: 'web',
      environment: 'prod',
      nonce: newBundleNonce(),
    };
    const payload = Buffer.from('{"v":1,"entries":[]}');
    const envelope = buildBundle({
      ephemeralPublicKey: key,
      signingKeyId: 'key_1',
      signingPrivateKey: importSigningPrivateKey(signing.privateKeyPkcs8),
      binding,
      payload,
    });
    const opened = openBundle(JSON.parse(JSON.stringify(envelope)), {
      ephemeralPrivateKey: ephemeral.privateKey,
      ephemeralPublicKeySpki: ephemeral.publicKeySpki,
      signingPublicKey: importSigningPublicKey(signing.publicKeySpki),
      signingKeyId: 'key_1',
      binding,
    });
    expect(opened.equals(payload)).toBe(true);
  });
});
