import { createCipheriv, createDecipheriv, KeyObject, randomBytes } from 'node:crypto';
import { decryptError } from './errors.js';
import { assertBytes } from './lib/assert.js';
import { zeroize } from './sensitive.js';

/** AES-256-GCM parameters. Crate uses one nonce size and one tag size, nothing else. */
export const AEAD_KEY_BYTES = 32;
export const AEAD_NONCE_BYTES = 12;
export const AEAD_TAG_BYTES = 16;

/**
 * An AES-256 key: 32 bytes, or a secret KeyObject of 32 bytes (see importDataKey). A KeyObject
 * is much cheaper per operation on Node 24, whose createCipheriv/createDecipheriv spend about
 * 10 µs probing a raw byte key for KeyObject/CryptoKey slots (by throwing and catching); a
 * KeyObject answers that probe from a cache. Its bytes live in OpenSSL memory that JavaScript
 * cannot zero (Node cleanses them when the object is garbage-collected), so only long-lived,
 * cached keys should be KeyObjects; one-shot keys stay Buffers and are zeroed after use.
 */
export type AeadKey = Uint8Array | KeyObject;

/** Throws RangeError/TypeError unless `key` is 32 bytes or a 32-byte secret KeyObject. */
export function assertAeadKey(key: unknown, label = 'key'): asserts key is AeadKey {
  if (key instanceof KeyObject) {
    if (key.type !== 'secret' || key.symmetricKeySize !== AEAD_KEY_BYTES) {
      throw new RangeError(`${label} must be a ${AEAD_KEY_BYTES}-byte secret KeyObject`);
    }
    return;
  }
  assertBytes(key, label, AEAD_KEY_BYTES);
}

export interface AeadParts {
  readonly nonce: Buffer;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
}

/**
 * Encrypts with AES-256-GCM under a random 96-bit nonce. `aad` is required (it may be empty
 * only at this raw layer; every Crate format passes a non-empty context).
 */
export function aeadEncrypt(key: AeadKey, plaintext: Uint8Array, aad: Uint8Array): AeadParts {
  const nonce = randomBytes(AEAD_NONCE_BYTES);
  return aeadEncryptWithNonce(key, nonce, plaintext, aad);
}

/** Exposed for known-answer tests only; production code must use aeadEncrypt (random nonce). */
export function aeadEncryptWithNonce(
  key: AeadKey,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): AeadParts {
  assertAeadKey(key);
  assertBytes(nonce, 'nonce', AEAD_NONCE_BYTES);
  assertBytes(plaintext, 'plaintext');
  assertBytes(aad, 'aad');
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: AEAD_TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { nonce: Buffer.from(nonce), ciphertext, tag: cipher.getAuthTag() };
}

/**
 * Decrypts and authenticates. Any nonce that is not 96 bits, any tag that is not 16 bytes,
 * and any authentication failure throw the same ERR_DECRYPT: these are all attacker-caused.
 * The key and aad are ours, so a wrong-sized key is a programming error (RangeError).
 */
export function aeadDecrypt(
  key: AeadKey,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  aad: Uint8Array,
): Buffer {
  assertAeadKey(key);
  assertBytes(aad, 'aad');
  assertBytes(nonce, 'nonce');
  assertBytes(ciphertext, 'ciphertext');
  assertBytes(tag, 'tag');
  if (nonce.length !== AEAD_NONCE_BYTES || tag.length !== AEAD_TAG_BYTES) {
    throw decryptError();
  }
  // GCM hands out plaintext before it has checked the tag: when the check fails, that
  // plaintext (of a tampered ciphertext under the right key: nearly the real value) is zeroed.
  let unverified: Buffer | undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: AEAD_TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    unverified = decipher.update(ciphertext);
    const rest = decipher.final();
    return rest.length === 0 ? unverified : Buffer.concat([unverified, rest]);
  } catch (cause) {
    // Best effort: JavaScript gives no guarantee that no other copy of the bytes exists.
    zeroize(unverified);
    throw decryptError(cause);
  }
}

/** nonce || ciphertext || tag, the compact form used inside Crate's envelopes. */
export function aeadSeal(key: AeadKey, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const { nonce, ciphertext, tag } = aeadEncrypt(key, plaintext, aad);
  return Buffer.concat([nonce, ciphertext, tag]);
}

/** Opens nonce || ciphertext || tag; input too short to hold a nonce and a tag fails closed. */
export function aeadOpen(key: AeadKey, sealed: Uint8Array, aad: Uint8Array): Buffer {
  assertBytes(sealed, 'sealed');
  if (sealed.length < AEAD_NONCE_BYTES + AEAD_TAG_BYTES) {
    throw decryptError();
  }
  const nonce = sealed.subarray(0, AEAD_NONCE_BYTES);
  const tag = sealed.subarray(sealed.length - AEAD_TAG_BYTES);
  const ciphertext = sealed.subarray(AEAD_NONCE_BYTES, sealed.length - AEAD_TAG_BYTES);
  return aeadDecrypt(key, nonce, ciphertext, tag, aad);
}
