import { generateKeyPairSync, verify as nodeVerify, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ED25519_SIGNATURE_BYTES,
  generateSigningKeyPair,
  importSigningPrivateKey,
  importSigningPublicKey,
  isCrateError,
  sign,
  verify,
} from '../src/index.js';

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

describe('Ed25519 signing keys', () => {
  const pair = generateSigningKeyPair();
  const privateKey = importSigningPrivateKey(pair.privateKeyPkcs8);
  const publicKey = importSigningPublicKey(pair.publicKeySpki);

  it('generates DER keys that import as Ed25519 and sign 64-byte signatures that verify', () => {
    const data = Buffer.from('crate');
    const signature = sign(privateKey, data);
    expect(signature).toHaveLength(ED25519_SIGNATURE_BYTES);
    expect(verify(publicKey, data, signature)).toBe(true);
    expect(nodeVerify(null, data, publicKey, signature)).toBe(true);
  });

  it('signs and verifies empty and large messages', () => {
    for (const data of [Buffer.alloc(0), randomBytes(1 << 20)]) {
      expect(verify(publicKey, data, sign(privateKey, data))).toBe(true);
    }
  });

  it('rejects a signature over other data, by another key, or with any bit flipped', () => {
    const data = Buffer.from('payload');
    const signature = sign(privateKey, data);
    const other = importSigningPublicKey(generateSigningKeyPair().publicKeySpki);
    expect(verify(publicKey, Buffer.from('payloae'), signature)).toBe(false);
    expect(verify(other, data, signature)).toBe(false);
    for (let bit = 0; bit < signature.length * 8; bit += 37) {
      const flipped = Buffer.from(signature);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      expect(verify(publicKey, data, flipped)).toBe(false);
    }
  });

  it('returns false instead of throwing for a wrong-length signature, non-bytes or a wrong key', () => {
    const data = Buffer.from('x');
    const signature = sign(privateKey, data);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
    expect(verify(publicKey, data, signature.subarray(0, 63))).toBe(false);
    expect(verify(publicKey, data, Buffer.concat([signature, Buffer.alloc(1)]))).toBe(false);
    expect(verify(publicKey, 'x' as unknown as Uint8Array, signature)).toBe(false);
    expect(verify(publicKey, data, 'sig' as unknown as Uint8Array)).toBe(false);
    expect(verify(rsa, data, signature)).toBe(false);
    expect(verify(privateKey, data, signature)).toBe(false);
    expect(verify(null as unknown as typeof publicKey, data, signature)).toBe(false);
  });

  it('refuses to import keys that are not Ed25519 DER with ERR_FORMAT_UNSUPPORTED', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ecSpki = ec.publicKey.export({ format: 'der', type: 'spki' });
    const ecPkcs8 = ec.privateKey.export({ format: 'der', type: 'pkcs8' });
    for (const fn of [
      () => importSigningPublicKey(ecSpki),
      () => importSigningPublicKey(randomBytes(44)),
      () => importSigningPublicKey(pair.privateKeyPkcs8),
      () => importSigningPrivateKey(ecPkcs8),
      () => importSigningPrivateKey(Buffer.alloc(0)),
      () => importSigningPrivateKey(pair.publicKeySpki),
    ]) {
      expect(isCrateError(caught(fn), 'ERR_FORMAT_UNSUPPORTED')).toBe(true);
    }
  });

  it('treats a non-byte key argument or a non-private signing key as a programming error', () => {
    expect(caught(() => importSigningPublicKey('abc' as unknown as Uint8Array))).toBeInstanceOf(
      TypeError,
    );
    expect(caught(() => sign(publicKey, Buffer.from('x')))).toBeInstanceOf(TypeError);
    expect(caught(() => sign(privateKey, 'x' as unknown as Uint8Array))).toBeInstanceOf(TypeError);
  });
});
