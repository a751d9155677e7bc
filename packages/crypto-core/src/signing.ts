import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
} from 'node:crypto';
import { CrateError } from './errors.js';
import { asBuffer, assertBytes } from './lib/assert.js';

/** Ed25519 (RFC 8032, PureEdDSA): bundle signatures and the audit chain. */
export const ED25519_SIGNATURE_BYTES = 64;

export interface SigningKeyPair {
  /** SubjectPublicKeyInfo, DER. */
  readonly publicKeySpki: Buffer;
  /** PKCS#8 PrivateKeyInfo, DER. Key material: wrap it, then zero it. */
  readonly privateKeyPkcs8: Buffer;
}

export function generateSigningKeyPair(): SigningKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    publicKeySpki: publicKey.export({ format: 'der', type: 'spki' }),
    privateKeyPkcs8: privateKey.export({ format: 'der', type: 'pkcs8' }),
  };
}

function rejectKey(kind: string): CrateError {
  return new CrateError('ERR_FORMAT_UNSUPPORTED', `${kind} is not an Ed25519 key in DER form`);
}

/** Imports a PKCS#8 DER Ed25519 private key; anything else is ERR_FORMAT_UNSUPPORTED. */
export function importSigningPrivateKey(pkcs8: Uint8Array): KeyObject {
  assertBytes(pkcs8, 'pkcs8');
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: asBuffer(pkcs8), format: 'der', type: 'pkcs8' });
  } catch (cause) {
    throw new CrateError('ERR_FORMAT_UNSUPPORTED', 'signing private key is not valid PKCS#8 DER', {
      cause,
    });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw rejectKey('signing private key');
  }
  return key;
}

/** Imports an SPKI DER Ed25519 public key; anything else is ERR_FORMAT_UNSUPPORTED. */
export function importSigningPublicKey(spki: Uint8Array): KeyObject {
  assertBytes(spki, 'spki');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: asBuffer(spki), format: 'der', type: 'spki' });
  } catch (cause) {
    throw new CrateError('ERR_FORMAT_UNSUPPORTED', 'signing public key is not valid SPKI DER', {
      cause,
    });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw rejectKey('signing public key');
  }
  return key;
}

function isEd25519Key(key: unknown, type: 'public' | 'private'): key is KeyObject {
  return key instanceof KeyObject && key.type === type && key.asymmetricKeyType === 'ed25519';
}

/** Signs `data` (any length) and returns the 64-byte signature. */
export function sign(privateKey: KeyObject, data: Uint8Array): Buffer {
  if (!isEd25519Key(privateKey, 'private')) {
    throw new TypeError('privateKey must be an Ed25519 private KeyObject');
  }
  assertBytes(data, 'data');
  return nodeSign(null, data, privateKey);
}

/**
 * True only for a valid signature by `publicKey` over `data`. Returns false, and never
 * throws, for anything else: a wrong-length or non-canonical signature (OpenSSL rejects
 * S >= L, so signatures are not malleable), a key that is not an Ed25519 public key, or
 * arguments that are not byte arrays. Failing closed this way is what the audit chain and the
 * bundle check rely on.
 */
export function verify(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  if (
    !isEd25519Key(publicKey, 'public') ||
    !(data instanceof Uint8Array) ||
    !(signature instanceof Uint8Array) ||
    signature.length !== ED25519_SIGNATURE_BYTES
  ) {
    return false;
  }
  try {
    return nodeVerify(null, data, publicKey, signature);
  } catch {
    return false;
  }
}
