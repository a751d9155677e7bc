import {
  constants,
  generateKeyPair,
  KeyObject,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
} from 'node:crypto';
import { promisify } from 'node:util';
import { decryptError } from '../errors.js';
import { assertBytes } from './assert.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** The only public exponent Crate accepts or generates. */
export const RSA_PUBLIC_EXPONENT = 0x10001;

/** Modulus sizes for keys Crate generates (sealing keys and ephemeral read keys). */
export const RSA_GENERATED_MODULUS_BITS: readonly number[] = [2048, 3072, 4096];

export interface RsaPublicShape {
  readonly modulusBits: number;
  readonly exponentIsF4: boolean;
}

/**
 * The modulus size and whether e = 65537, for a plain RSA key (public or private); undefined
 * for anything else, RSA-PSS-only keys included (their OID forbids encryption). Read from
 * `asymmetricKeyDetails`, which OpenSSL fills from the parsed key: nothing is exported, so no
 * private component is ever copied into a string.
 */
export function rsaPublicShape(key: KeyObject): RsaPublicShape | undefined {
  if (key.type === 'secret' || key.asymmetricKeyType !== 'rsa') {
    return undefined;
  }
  const { modulusLength, publicExponent } = key.asymmetricKeyDetails ?? {};
  if (typeof modulusLength !== 'number' || typeof publicExponent !== 'bigint') {
    return undefined;
  }
  return {
    modulusBits: modulusLength,
    exponentIsF4: publicExponent === BigInt(RSA_PUBLIC_EXPONENT),
  };
}

export function assertGeneratedModulusBits(modulusBits: unknown): asserts modulusBits is number {
  if (typeof modulusBits !== 'number' || !RSA_GENERATED_MODULUS_BITS.includes(modulusBits)) {
    throw new RangeError(`modulusBits must be one of ${RSA_GENERATED_MODULUS_BITS.join(', ')}`);
  }
}

/** A fresh RSA key pair, e = 65537, generated on libuv's thread pool (off the main thread). */
export async function generateRsaKeyPair(
  modulusBits: number,
): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> {
  assertGeneratedModulusBits(modulusBits);
  return generateKeyPairAsync('rsa', {
    modulusLength: modulusBits,
    publicExponent: RSA_PUBLIC_EXPONENT,
  });
}

export function assertRsaKeyObject(
  key: unknown,
  type: 'public' | 'private',
  label: string,
): asserts key is KeyObject {
  if (!(key instanceof KeyObject) || key.type !== type || key.asymmetricKeyType !== 'rsa') {
    throw new TypeError(`${label} must be an RSA ${type} KeyObject`);
  }
}

/** RSAES-OAEP encryption with SHA-256 and MGF1-SHA-256, empty label. */
export function rsaOaepWrap(publicKey: KeyObject, message: Uint8Array): Buffer {
  assertRsaKeyObject(publicKey, 'public', 'publicKey');
  assertBytes(message, 'message');
  return publicEncrypt(
    { key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
    message,
  );
}

/**
 * RSAES-OAEP decryption with SHA-256 and MGF1-SHA-256 (OpenSSL uses the OAEP digest for MGF1
 * unless told otherwise). Every failure (wrong length, bad padding, wrong key) is the one
 * fixed ERR_DECRYPT. The caller owns the returned key material and must zero it.
 *
 * `label` exists for the Wycheproof vectors only: every Crate format uses the empty label.
 */
export function rsaOaepUnwrap(
  privateKey: KeyObject,
  wrapped: Uint8Array,
  label?: Uint8Array,
): Buffer {
  assertRsaKeyObject(privateKey, 'private', 'privateKey');
  assertBytes(wrapped, 'wrapped');
  if (label !== undefined) {
    assertBytes(label, 'label');
  }
  try {
    return privateDecrypt(
      {
        key: privateKey,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: 'sha256',
        ...(label !== undefined && label.length > 0 ? { oaepLabel: label } : {}),
      },
      wrapped,
    );
  } catch (cause) {
    throw decryptError(cause);
  }
}

/**
 * RSA-OAEP unwrap of a content key of `keyBytes` bytes. On any failure, a wrong-length result
 * included, returns a random key instead of throwing, so that the caller's AEAD step fails
 * exactly as it would for a tampered tag (jose's defence against padding oracles). The caller
 * zeroes the returned key.
 */
export function unwrapContentKeyOrRandom(
  privateKey: KeyObject,
  wrappedKey: Uint8Array,
  keyBytes: number,
): Buffer {
  let contentKey: Buffer | undefined;
  try {
    contentKey = rsaOaepUnwrap(privateKey, wrappedKey);
  } catch {
    contentKey = undefined;
  }
  if (contentKey?.length === keyBytes) {
    return contentKey;
  }
  // Best effort: JavaScript gives no guarantee that no other copy of the bytes exists.
  contentKey?.fill(0);
  return randomBytes(keyBytes);
}
