import {
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import {
  AEAD_KEY_BYTES,
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  aeadDecrypt,
  aeadEncrypt,
} from './aead.js';
import { CrateError, decryptError } from './errors.js';
import { encodeAad } from './lib/aad.js';
import { asBuffer, assertBytes } from './lib/assert.js';
import { decodeBase64url, encodeBase64url } from './lib/base64url.js';
import {
  assertGeneratedModulusBits,
  assertRsaKeyObject,
  generateRsaKeyPair,
  RSA_GENERATED_MODULUS_BITS,
  rsaOaepWrap,
  rsaPublicShape,
  unwrapContentKeyOrRandom,
} from './lib/rsa.js';
import {
  hasExactKeys,
  isNonEmptyWellFormedString,
  isPlainObject,
  isValidKeyId,
  MAX_KEY_ID_LENGTH,
} from './lib/wire.js';
import { zeroize } from './sensitive.js';

export { rsaOaepUnwrap } from './lib/rsa.js';
export { isValidKeyId, MAX_KEY_ID_LENGTH } from './lib/wire.js';

/**
 * Sealed writes: the CLI encrypts a value to the org's RSA sealing key so that only the server
 * (which holds the private key, itself wrapped by the master key) can open it. A fresh 32-byte
 * content key encrypts the value with AES-256-GCM; RSA-OAEP (SHA-256, MGF1-SHA-256, empty
 * label) wraps the content key. The AAD binds the seal to its destination and key id.
 */
export const SEAL_FORMAT_VERSION = 1;
export const SEAL_ALGORITHM = 'RSA-OAEP-256+A256GCM';
export const SEAL_AAD_PURPOSE = 'seal';
/** Sealing keys are RSA with e = 65537 and one of these modulus sizes (3072 by default). */
export const SEALING_MODULUS_BITS: readonly number[] = RSA_GENERATED_MODULUS_BITS;
export const DEFAULT_SEALING_MODULUS_BITS = 3072;

export interface SealingKeyPair {
  /** SubjectPublicKeyInfo, DER. */
  readonly publicKeySpki: Buffer;
  /** PKCS#8 PrivateKeyInfo, DER. Key material: wrap it, then zero it. */
  readonly privateKeyPkcs8: Buffer;
}

/** Where a sealed value is going. `project` and `environment` are slugs, as the CLI names them. */
export interface SealDestination {
  readonly orgId: string;
  readonly project: string;
  readonly environment: string;
  readonly name: string;
}

/** The JSON a client sends; binary fields are unpadded base64url. */
export interface SealEnvelope {
  readonly v: 1;
  readonly alg: 'RSA-OAEP-256+A256GCM';
  readonly kid: string;
  readonly ek: string;
  readonly iv: string;
  readonly ct: string;
  readonly tag: string;
}

const SEAL_ENVELOPE_KEYS = ['alg', 'ct', 'ek', 'iv', 'kid', 'tag', 'v'] as const;

export async function generateSealingKeyPair(
  modulusBits: number = DEFAULT_SEALING_MODULUS_BITS,
): Promise<SealingKeyPair> {
  assertGeneratedModulusBits(modulusBits);
  const { publicKey, privateKey } = await generateRsaKeyPair(modulusBits);
  return {
    publicKeySpki: publicKey.export({ format: 'der', type: 'spki' }),
    privateKeyPkcs8: privateKey.export({ format: 'der', type: 'pkcs8' }),
  };
}

/** SHA-256 of the SPKI DER bytes, exactly as given (32 bytes). */
export function spkiFingerprint(spki: Uint8Array): Buffer {
  assertBytes(spki, 'spki');
  return createHash('sha256').update(spki).digest();
}

export type FingerprintEncoding = 'hex' | 'base64url';

/** 'hex' gives "SHA256:" + 64 lowercase hex digits (for people); 'base64url' gives 43 characters. */
export function formatFingerprint(fingerprint: Uint8Array, encoding: FingerprintEncoding): string {
  assertBytes(fingerprint, 'fingerprint', 32);
  switch (encoding) {
    case 'hex':
      return `SHA256:${asBuffer(fingerprint).toString('hex')}`;
    case 'base64url':
      return encodeBase64url(fingerprint);
    default: {
      const unknown: never = encoding;
      throw new TypeError(`unknown fingerprint encoding ${String(unknown)}`);
    }
  }
}

/**
 * Checks that `key` is an RSA key Crate seals with: a TypeError when it is not an RSA KeyObject
 * of the right type at all (a programming error), ERR_FORMAT_UNSUPPORTED when it is RSA but with
 * a modulus size or exponent Crate does not use.
 */
function assertSealingKey(key: unknown, type: 'public' | 'private'): asserts key is KeyObject {
  assertRsaKeyObject(key, type, `sealing ${type} key`);
  const shape = rsaPublicShape(key);
  if (
    shape === undefined ||
    !SEALING_MODULUS_BITS.includes(shape.modulusBits) ||
    !shape.exponentIsF4
  ) {
    throw new CrateError(
      'ERR_FORMAT_UNSUPPORTED',
      `sealing ${type} key must be RSA with e = 65537 and ${SEALING_MODULUS_BITS.join(', ')} bits`,
    );
  }
}

/** Imports the org's public sealing key (SPKI DER); malformed or unsuitable -> ERR_FORMAT_UNSUPPORTED. */
export function importSealingPublicKey(spki: Uint8Array): KeyObject {
  assertBytes(spki, 'spki');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: asBuffer(spki), format: 'der', type: 'spki' });
  } catch (cause) {
    throw new CrateError('ERR_FORMAT_UNSUPPORTED', 'sealing public key is not valid SPKI DER', {
      cause,
    });
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new CrateError('ERR_FORMAT_UNSUPPORTED', 'sealing public key is not an RSA key');
  }
  assertSealingKey(key, 'public');
  return key;
}

/** Imports the org's private sealing key (PKCS#8 DER); malformed or unsuitable -> ERR_FORMAT_UNSUPPORTED. */
export function importSealingPrivateKey(pkcs8: Uint8Array): KeyObject {
  assertBytes(pkcs8, 'pkcs8');
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: asBuffer(pkcs8), format: 'der', type: 'pkcs8' });
  } catch (cause) {
    throw new CrateError('ERR_FORMAT_UNSUPPORTED', 'sealing private key is not valid PKCS#8 DER', {
      cause,
    });
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new CrateError('ERR_FORMAT_UNSUPPORTED', 'sealing private key is not an RSA key');
  }
  assertSealingKey(key, 'private');
  return key;
}

function assertDestinationField(value: unknown, label: string): asserts value is string {
  if (!isNonEmptyWellFormedString(value)) {
    throw new TypeError(`${label} must be a non-empty, well-formed string`);
  }
}

function assertDestination(dest: SealDestination): void {
  if (typeof dest !== 'object' || dest === null) {
    throw new TypeError('dest must be a SealDestination');
  }
  assertDestinationField(dest.orgId, 'dest.orgId');
  assertDestinationField(dest.project, 'dest.project');
  assertDestinationField(dest.environment, 'dest.environment');
  assertDestinationField(dest.name, 'dest.name');
}

/** AAD = context 'seal' with fields v, alg, kid, orgId, project, environment, name (in that order). */
function sealAad(kid: string, dest: SealDestination): Buffer {
  return encodeAad(SEAL_AAD_PURPOSE, [
    ['v', SEAL_FORMAT_VERSION],
    ['alg', SEAL_ALGORITHM],
    ['kid', kid],
    ['orgId', dest.orgId],
    ['project', dest.project],
    ['environment', dest.environment],
    ['name', dest.name],
  ]);
}

/** Seals `value` (any size, empty included) to the sealing key `kid` for `dest`. */
export function sealValue(
  publicKey: KeyObject | Uint8Array,
  kid: string,
  value: Uint8Array,
  dest: SealDestination,
): SealEnvelope {
  const key = publicKey instanceof Uint8Array ? importSealingPublicKey(publicKey) : publicKey;
  assertSealingKey(key, 'public');
  if (!isValidKeyId(kid)) {
    throw new TypeError(`kid must be 1 to ${MAX_KEY_ID_LENGTH} characters of well-formed UTF-16`);
  }
  assertBytes(value, 'value');
  assertDestination(dest);
  const contentKey = randomBytes(AEAD_KEY_BYTES);
  try {
    const { nonce, ciphertext, tag } = aeadEncrypt(contentKey, value, sealAad(kid, dest));
    const wrappedKey = rsaOaepWrap(key, contentKey);
    return {
      v: SEAL_FORMAT_VERSION,
      alg: SEAL_ALGORITHM,
      kid,
      ek: encodeBase64url(wrappedKey),
      iv: encodeBase64url(nonce),
      ct: encodeBase64url(ciphertext),
      tag: encodeBase64url(tag),
    };
  } finally {
    // Best effort: JavaScript gives no guarantee that no other copy of the key exists.
    zeroize(contentKey);
  }
}

interface DecodedSeal {
  readonly envelope: SealEnvelope;
  readonly wrappedKey: Buffer;
  readonly nonce: Buffer;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
}

function decodeSeal(json: unknown): DecodedSeal {
  if (!isPlainObject(json) || !hasExactKeys(json, SEAL_ENVELOPE_KEYS)) {
    throw decryptError();
  }
  const { v, alg, kid } = json;
  if (v !== SEAL_FORMAT_VERSION || alg !== SEAL_ALGORITHM || !isValidKeyId(kid)) {
    throw decryptError();
  }
  const wrappedKey = decodeBase64url(json.ek);
  const nonce = decodeBase64url(json.iv);
  const ciphertext = decodeBase64url(json.ct);
  const tag = decodeBase64url(json.tag);
  if (
    wrappedKey === undefined ||
    wrappedKey.length === 0 ||
    nonce?.length !== AEAD_NONCE_BYTES ||
    ciphertext === undefined ||
    tag?.length !== AEAD_TAG_BYTES
  ) {
    throw decryptError();
  }
  const envelope: SealEnvelope = Object.freeze({
    v: SEAL_FORMAT_VERSION,
    alg: SEAL_ALGORITHM,
    kid,
    ek: json.ek as string,
    iv: json.iv as string,
    ct: json.ct as string,
    tag: json.tag as string,
  });
  return { envelope, wrappedKey, nonce, ciphertext, tag };
}

/**
 * Validates a seal received as parsed JSON: exactly the keys v, alg, kid, ek, iv, ct, tag;
 * v = 1; the one algorithm; a valid key id; canonical unpadded base64url; a 12-byte iv and a
 * 16-byte tag. Anything else is the fixed ERR_DECRYPT. Returns a frozen copy.
 */
export function parseSealEnvelope(json: unknown): SealEnvelope {
  return decodeSeal(json).envelope;
}

/**
 * Opens a seal for `dest` with the org's private sealing key. The key id is the one the
 * envelope names (the caller chose the private key by it) and is authenticated through the
 * AAD. Every failure, malformed envelope, wrong key, wrong destination or tampered byte, is the
 * same ERR_DECRYPT: as in jose, a failed RSA-OAEP unwrap carries on with a random content key
 * so that the AES-GCM step fails the same way a tampered tag does.
 */
export function openSeal(
  privateKey: KeyObject,
  envelope: SealEnvelope,
  dest: SealDestination,
): Buffer {
  assertRsaKeyObject(privateKey, 'private', 'privateKey');
  assertDestination(dest);
  const seal = decodeSeal(envelope);
  const contentKey = unwrapContentKeyOrRandom(privateKey, seal.wrappedKey, AEAD_KEY_BYTES);
  try {
    return aeadDecrypt(
      contentKey,
      seal.nonce,
      seal.ciphertext,
      seal.tag,
      sealAad(seal.envelope.kid, dest),
    );
  } finally {
    // Best effort: JavaScript gives no guarantee that no other copy of the key exists.
    zeroize(contentKey);
  }
}
