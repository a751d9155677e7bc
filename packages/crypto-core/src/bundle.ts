import { createHash, createPublicKey, KeyObject, randomBytes } from 'node:crypto';
import {
  AEAD_KEY_BYTES,
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  aeadDecrypt,
  aeadEncrypt,
} from './aead.js';
import { CrateError, decryptError } from './errors.js';
import { encodeAad, encodeLengthPrefixed } from './lib/aad.js';
import { asBuffer, assertBytes, assertInteger } from './lib/assert.js';
import { decodeBase64, decodeBase64url, encodeBase64, encodeBase64url } from './lib/base64url.js';
import {
  assertRsaKeyObject,
  generateRsaKeyPair,
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
import { constantTimeEqual, zeroize } from './sensitive.js';
import { ED25519_SIGNATURE_BYTES, sign, verify } from './signing.js';

/**
 * Ephemeral-key reads. The CLI generates an RSA key pair per fetch and sends the public key
 * with a fresh nonce; the server encrypts the bundle to it (AES-256-GCM under a transient
 * key, wrapped with RSA-OAEP-SHA-256) and signs the whole envelope with the org's Ed25519 key,
 * which the CLI has pinned: anyone who sees the ephemeral public key could encrypt to it, so
 * only the signature tells the CLI that the server built this bundle.
 */
export const BUNDLE_FORMAT_VERSION = 1;
export const BUNDLE_ALGORITHM = 'RSA-OAEP-256+A256GCM+Ed25519';
export const BUNDLE_AAD_PURPOSE = 'bundle';
/** First length-prefixed part of the bytes a bundle signature covers (domain separation). */
export const BUNDLE_SIGNATURE_DOMAIN = 'crate/bundle-signature/v1';
export const BUNDLE_NONCE_BYTES = 32;
export const DEFAULT_BUNDLE_MAX_AGE_SECONDS = 300;
/** How far in the future a bundle's iat may lie (server clock ahead of the client's). */
export const BUNDLE_MAX_CLOCK_SKEW_SECONDS = 60;
export const DEFAULT_EPHEMERAL_MODULUS_BITS = 3072;
export const EPHEMERAL_MIN_MODULUS_BITS = 2048;
export const EPHEMERAL_MAX_MODULUS_BITS = 8192;
export const BUNDLE_PAYLOAD_FORMAT_VERSION = 1;

const BUNDLE_SIGNATURE_FAILED_MESSAGE = 'bundle signature is invalid';
const MAX_AGE_LIMIT_SECONDS = 86_400;

export interface BundleBinding {
  readonly orgId: string;
  readonly project: string;
  readonly environment: string;
  /** From newBundleNonce(): 32 random bytes, unpadded base64url. */
  readonly nonce: string;
}

/** The JSON the server returns; binary fields are unpadded base64url. */
export interface BundleEnvelope {
  readonly v: 1;
  readonly alg: 'RSA-OAEP-256+A256GCM+Ed25519';
  /** Id of the org signing key that made `sig`. */
  readonly kid: string;
  /** base64url SHA-256 of the ephemeral public key's SPKI DER. */
  readonly epk: string;
  readonly org: string;
  readonly project: string;
  readonly environment: string;
  readonly nonce: string;
  /** Issued at, Unix seconds. */
  readonly iat: number;
  readonly ek: string;
  readonly iv: string;
  readonly ct: string;
  readonly tag: string;
  readonly sig: string;
}

export type UnsignedBundleEnvelope = Omit<BundleEnvelope, 'sig'>;

/** The fields the AAD binds (everything but the ciphertext parts and the signature). */
type BundleHeader = Pick<
  BundleEnvelope,
  'v' | 'alg' | 'kid' | 'epk' | 'org' | 'project' | 'environment' | 'nonce' | 'iat'
>;

export interface BundleEntry {
  readonly name: string;
  readonly version: number;
  readonly value: Uint8Array;
}

export interface DecodedBundleEntry {
  readonly name: string;
  readonly version: number;
  readonly value: Buffer;
}

export interface BuildBundleOptions {
  readonly ephemeralPublicKey: KeyObject;
  readonly signingKeyId: string;
  readonly signingPrivateKey: KeyObject;
  readonly binding: BundleBinding;
  /** Usually encodeBundlePayload(...); the caller zeroes it afterwards. */
  readonly payload: Uint8Array;
  /** Unix seconds; defaults to now. */
  readonly issuedAt?: number;
}

export interface OpenBundleOptions {
  readonly ephemeralPrivateKey: KeyObject;
  /** The SPKI DER the client sent with its request (its fingerprint must match `epk`). */
  readonly ephemeralPublicKeySpki: Uint8Array;
  /** The org's pinned Ed25519 signing key. */
  readonly signingPublicKey: KeyObject;
  readonly signingKeyId: string;
  readonly binding: BundleBinding;
  /** Oldest acceptable bundle, in seconds (default 300, at most 86400). */
  readonly maxAgeSeconds?: number;
}

const BUNDLE_ENVELOPE_KEYS = [
  'alg',
  'ct',
  'ek',
  'environment',
  'epk',
  'iat',
  'iv',
  'kid',
  'nonce',
  'org',
  'project',
  'sig',
  'tag',
  'v',
] as const;

function rejectEphemeralKey(reason: string, cause?: unknown): CrateError {
  return new CrateError(
    'ERR_EPHEMERAL_KEY_REJECTED',
    `ephemeral public key rejected: ${reason}`,
    cause ? { cause } : undefined,
  );
}

function assertEphemeralKeyShape(key: KeyObject): void {
  const shape = rsaPublicShape(key);
  if (shape === undefined) {
    throw rejectEphemeralKey('not an RSA key');
  }
  if (
    shape.modulusBits < EPHEMERAL_MIN_MODULUS_BITS ||
    shape.modulusBits > EPHEMERAL_MAX_MODULUS_BITS
  ) {
    throw rejectEphemeralKey(
      `modulus is ${shape.modulusBits} bits, allowed ${EPHEMERAL_MIN_MODULUS_BITS} to ${EPHEMERAL_MAX_MODULUS_BITS}`,
    );
  }
  if (!shape.exponentIsF4) {
    throw rejectEphemeralKey('public exponent must be 65537');
  }
}

/**
 * A fresh RSA key pair (e = 65537) for one read. Generation runs on libuv's thread pool, so the
 * caller can overlap it with the rest of the request. The private key never leaves memory.
 */
export async function generateEphemeralKeyPair(
  modulusBits: number = DEFAULT_EPHEMERAL_MODULUS_BITS,
): Promise<{ publicKeySpki: Buffer; privateKey: KeyObject }> {
  const { publicKey, privateKey } = await generateRsaKeyPair(modulusBits);
  return { publicKeySpki: publicKey.export({ format: 'der', type: 'spki' }), privateKey };
}

/**
 * The SPKI DER of each key validateEphemeralPublicKey accepted (equal, byte for byte, to what
 * KeyObject.export returns for it), so buildBundle need not export the key again to compute
 * its fingerprint. Keyed by the KeyObject itself: an entry goes when the key is collected.
 */
const canonicalSpkiOf = new WeakMap<KeyObject, Buffer>();

function spkiOf(key: KeyObject): Buffer {
  return canonicalSpkiOf.get(key) ?? key.export({ format: 'der', type: 'spki' });
}

/**
 * Server side: accepts a client's ephemeral public key only if it is canonical SPKI DER of a
 * plain RSA key (not RSA-PSS, EC or Ed25519) with 2048..8192 bits and e = 65537. Anything else
 * is ERR_EPHEMERAL_KEY_REJECTED with a message naming the reason. Canonical DER is required so
 * that the fingerprint both sides compute (SHA-256 of these bytes) is the same.
 */
export function validateEphemeralPublicKey(spki: Uint8Array): KeyObject {
  assertBytes(spki, 'spki');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: asBuffer(spki), format: 'der', type: 'spki' });
  } catch (cause) {
    throw rejectEphemeralKey('not a valid SPKI DER public key', cause);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw rejectEphemeralKey(`key type is ${key.asymmetricKeyType ?? 'unknown'}, not RSA`);
  }
  assertEphemeralKeyShape(key);
  const canonical = key.export({ format: 'der', type: 'spki' });
  if (!canonical.equals(spki)) {
    throw rejectEphemeralKey('SPKI is not in canonical DER form');
  }
  canonicalSpkiOf.set(key, canonical);
  return key;
}

/** 32 random bytes, unpadded base64url (43 characters). */
export function newBundleNonce(): string {
  return encodeBase64url(randomBytes(BUNDLE_NONCE_BYTES));
}

/** True for a nonce as newBundleNonce() makes it: canonical base64url of exactly 32 bytes. */
export function isValidBundleNonce(value: unknown): value is string {
  return decodeBase64url(value)?.length === BUNDLE_NONCE_BYTES;
}

function ephemeralKeyFingerprint(spki: Uint8Array): string {
  return encodeBase64url(createHash('sha256').update(spki).digest());
}

function assertBinding(binding: BundleBinding): void {
  if (typeof binding !== 'object' || binding === null) {
    throw new TypeError('binding must be a BundleBinding');
  }
  for (const field of ['orgId', 'project', 'environment'] as const) {
    if (!isNonEmptyWellFormedString(binding[field])) {
      throw new TypeError(`binding.${field} must be a non-empty, well-formed string`);
    }
  }
  if (!isValidBundleNonce(binding.nonce)) {
    throw new RangeError('binding.nonce must be 32 bytes in canonical base64url (newBundleNonce)');
  }
}

function assertKeyId(kid: unknown, label: string): asserts kid is string {
  if (!isValidKeyId(kid)) {
    throw new TypeError(
      `${label} must be 1 to ${MAX_KEY_ID_LENGTH} characters of well-formed UTF-16`,
    );
  }
}

function assertEd25519Key(key: unknown, type: 'public' | 'private', label: string): void {
  if (!(key instanceof KeyObject) || key.type !== type || key.asymmetricKeyType !== 'ed25519') {
    throw new TypeError(`${label} must be an Ed25519 ${type} KeyObject`);
  }
}

/** AAD = context 'bundle' with fields v, alg, kid, epk, org, project, environment, nonce, iat. */
function bundleAad(envelope: BundleHeader): Buffer {
  return encodeAad(BUNDLE_AAD_PURPOSE, [
    ['v', envelope.v],
    ['alg', envelope.alg],
    ['kid', envelope.kid],
    ['epk', envelope.epk],
    ['org', envelope.org],
    ['project', envelope.project],
    ['environment', envelope.environment],
    ['nonce', envelope.nonce],
    ['iat', envelope.iat],
  ]);
}

/**
 * The bytes a bundle signature covers: lp("crate/bundle-signature/v1") followed by
 * lp(name) || lp(value) for every field but `sig`, in the order v, alg, kid, epk, org,
 * project, environment, nonce, iat, ek, iv, ct, tag. lp(x) is the u32 big-endian byte length
 * of UTF-8(x) followed by UTF-8(x); v and iat are base-10 integers; ek, iv, ct and tag are
 * their base64url strings exactly as they appear in the JSON.
 */
export function bundleSignedBytes(envelope: UnsignedBundleEnvelope): Buffer {
  return encodeLengthPrefixed([
    BUNDLE_SIGNATURE_DOMAIN,
    'v',
    envelope.v,
    'alg',
    envelope.alg,
    'kid',
    envelope.kid,
    'epk',
    envelope.epk,
    'org',
    envelope.org,
    'project',
    envelope.project,
    'environment',
    envelope.environment,
    'nonce',
    envelope.nonce,
    'iat',
    envelope.iat,
    'ek',
    envelope.ek,
    'iv',
    envelope.iv,
    'ct',
    envelope.ct,
    'tag',
    envelope.tag,
  ]);
}

/** Server side: encrypts `payload` to the client's ephemeral key and signs the envelope. */
export function buildBundle(options: BuildBundleOptions): BundleEnvelope {
  const { ephemeralPublicKey, signingKeyId, signingPrivateKey, binding, payload } = options;
  assertRsaKeyObject(ephemeralPublicKey, 'public', 'ephemeralPublicKey');
  assertEphemeralKeyShape(ephemeralPublicKey);
  assertKeyId(signingKeyId, 'signingKeyId');
  assertEd25519Key(signingPrivateKey, 'private', 'signingPrivateKey');
  assertBinding(binding);
  assertBytes(payload, 'payload');
  const issuedAt = options.issuedAt ?? Math.floor(Date.now() / 1000);
  assertInteger(issuedAt, 'issuedAt', 0, Number.MAX_SAFE_INTEGER);

  const header: BundleHeader = {
    v: BUNDLE_FORMAT_VERSION,
    alg: BUNDLE_ALGORITHM,
    kid: signingKeyId,
    epk: ephemeralKeyFingerprint(spkiOf(ephemeralPublicKey)),
    org: binding.orgId,
    project: binding.project,
    environment: binding.environment,
    nonce: binding.nonce,
    iat: issuedAt,
  };
  const contentKey = randomBytes(AEAD_KEY_BYTES);
  try {
    const { nonce, ciphertext, tag } = aeadEncrypt(contentKey, payload, bundleAad(header));
    const unsigned: UnsignedBundleEnvelope = {
      ...header,
      ek: encodeBase64url(rsaOaepWrap(ephemeralPublicKey, contentKey)),
      iv: encodeBase64url(nonce),
      ct: encodeBase64url(ciphertext),
      tag: encodeBase64url(tag),
    };
    const sig = encodeBase64url(sign(signingPrivateKey, bundleSignedBytes(unsigned)));
    return { ...unsigned, sig };
  } finally {
    // Best effort: JavaScript gives no guarantee that no other copy of the key exists.
    zeroize(contentKey);
  }
}

interface DecodedBundle {
  readonly envelope: BundleEnvelope;
  readonly wrappedKey: Buffer;
  readonly nonce: Buffer;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
  readonly signature: Buffer;
}

/** Strict structural decoding; undefined for anything that is not a well-formed bundle. */
function decodeBundle(json: unknown): DecodedBundle | undefined {
  if (!isPlainObject(json) || !hasExactKeys(json, BUNDLE_ENVELOPE_KEYS)) {
    return undefined;
  }
  const { v, alg, kid, epk, org, project, environment, nonce, iat, ek, iv, ct, tag, sig } = json;
  if (
    v !== BUNDLE_FORMAT_VERSION ||
    alg !== BUNDLE_ALGORITHM ||
    !isValidKeyId(kid) ||
    decodeBase64url(epk)?.length !== 32 ||
    !isNonEmptyWellFormedString(org) ||
    !isNonEmptyWellFormedString(project) ||
    !isNonEmptyWellFormedString(environment) ||
    !isValidBundleNonce(nonce) ||
    typeof iat !== 'number' ||
    !Number.isSafeInteger(iat) ||
    iat < 0
  ) {
    return undefined;
  }
  const wrappedKey = decodeBase64url(ek);
  const aeadNonce = decodeBase64url(iv);
  const ciphertext = decodeBase64url(ct);
  const aeadTag = decodeBase64url(tag);
  const signature = decodeBase64url(sig);
  if (
    wrappedKey === undefined ||
    wrappedKey.length === 0 ||
    aeadNonce?.length !== AEAD_NONCE_BYTES ||
    ciphertext === undefined ||
    aeadTag?.length !== AEAD_TAG_BYTES ||
    signature?.length !== ED25519_SIGNATURE_BYTES
  ) {
    return undefined;
  }
  const envelope: BundleEnvelope = Object.freeze({
    v: BUNDLE_FORMAT_VERSION,
    alg: BUNDLE_ALGORITHM,
    kid,
    epk: epk as string,
    org,
    project,
    environment,
    nonce,
    iat,
    ek: ek as string,
    iv: iv as string,
    ct: ct as string,
    tag: tag as string,
    sig: sig as string,
  });
  return { envelope, wrappedKey, nonce: aeadNonce, ciphertext, tag: aeadTag, signature };
}

/**
 * Client side. In this order: the envelope must be well-formed and carry a valid signature by
 * `signingPublicKey` over every other field (else ERR_BUNDLE_SIGNATURE, one fixed message);
 * then its epk must be the fingerprint of `ephemeralPublicKeySpki`, its org/project/environment/
 * nonce must equal `binding`, its kid must equal `signingKeyId`, and its iat must be at most
 * maxAgeSeconds old and at most 60 s in the future; then the content key is unwrapped and the
 * payload decrypted. Every failure after the signature check is the fixed ERR_DECRYPT.
 */
export function openBundle(envelope: unknown, options: OpenBundleOptions): Buffer {
  const {
    ephemeralPrivateKey,
    ephemeralPublicKeySpki,
    signingPublicKey,
    signingKeyId,
    binding,
    maxAgeSeconds = DEFAULT_BUNDLE_MAX_AGE_SECONDS,
  } = options;
  assertRsaKeyObject(ephemeralPrivateKey, 'private', 'ephemeralPrivateKey');
  assertBytes(ephemeralPublicKeySpki, 'ephemeralPublicKeySpki');
  assertEd25519Key(signingPublicKey, 'public', 'signingPublicKey');
  assertKeyId(signingKeyId, 'signingKeyId');
  assertBinding(binding);
  assertInteger(maxAgeSeconds, 'maxAgeSeconds', 1, MAX_AGE_LIMIT_SECONDS);

  const bundle = decodeBundle(envelope);
  if (
    bundle === undefined ||
    !verify(signingPublicKey, bundleSignedBytes(bundle.envelope), bundle.signature)
  ) {
    throw new CrateError('ERR_BUNDLE_SIGNATURE', BUNDLE_SIGNATURE_FAILED_MESSAGE);
  }
  const signed = bundle.envelope;

  const now = Math.floor(Date.now() / 1000);
  const bound =
    constantTimeEqual(signed.epk, ephemeralKeyFingerprint(ephemeralPublicKeySpki)) &&
    constantTimeEqual(signed.org, binding.orgId) &&
    constantTimeEqual(signed.project, binding.project) &&
    constantTimeEqual(signed.environment, binding.environment) &&
    constantTimeEqual(signed.nonce, binding.nonce) &&
    constantTimeEqual(signed.kid, signingKeyId) &&
    now - signed.iat <= maxAgeSeconds &&
    signed.iat - now <= BUNDLE_MAX_CLOCK_SKEW_SECONDS;
  if (!bound) {
    throw decryptError();
  }

  const contentKey = unwrapContentKeyOrRandom(
    ephemeralPrivateKey,
    bundle.wrappedKey,
    AEAD_KEY_BYTES,
  );
  try {
    return aeadDecrypt(contentKey, bundle.nonce, bundle.ciphertext, bundle.tag, bundleAad(signed));
  } finally {
    // Best effort: JavaScript gives no guarantee that no other copy of the key exists.
    zeroize(contentKey);
  }
}

function malformedPayload(reason: string): CrateError {
  return new CrateError('ERR_FORMAT_UNSUPPORTED', `bundle payload is malformed: ${reason}`);
}

function assertEntry(entry: BundleEntry, index: number): void {
  if (typeof entry !== 'object' || entry === null) {
    throw new TypeError(`entries[${index}] must be an object`);
  }
  if (!isNonEmptyWellFormedString(entry.name)) {
    throw new TypeError(`entries[${index}].name must be a non-empty, well-formed string`);
  }
  assertInteger(entry.version, `entries[${index}].version`, 1, Number.MAX_SAFE_INTEGER);
  assertBytes(entry.value, `entries[${index}].value`);
}

/**
 * The plaintext of a bundle: UTF-8 JSON {"v":1,"entries":[{"name","version","value"}...]},
 * value in padded standard base64. Names must be unique. The JSON string itself cannot be
 * wiped (JavaScript strings are immutable); the returned Buffer can and should be.
 */
export function encodeBundlePayload(entries: ReadonlyArray<BundleEntry>): Buffer {
  if (!Array.isArray(entries)) {
    throw new TypeError('entries must be an array');
  }
  const names = new Set<string>();
  entries.forEach((entry, index) => {
    assertEntry(entry, index);
    if (names.has(entry.name)) {
      throw new RangeError(`entries[${index}].name repeats ${JSON.stringify(entry.name)}`);
    }
    names.add(entry.name);
  });
  const json = JSON.stringify({
    v: BUNDLE_PAYLOAD_FORMAT_VERSION,
    entries: entries.map((entry) => ({
      name: entry.name,
      version: entry.version,
      value: encodeBase64(entry.value),
    })),
  });
  return Buffer.from(json, 'utf8');
}

const UTF8_STRICT = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parses a payload made by encodeBundlePayload. The payload has been authenticated by the
 * time it is decoded, so a malformed one is a server fault: ERR_FORMAT_UNSUPPORTED naming what
 * is wrong (never a value). The caller zeroes the returned values after use.
 */
export function decodeBundlePayload(bytes: Uint8Array): DecodedBundleEntry[] {
  assertBytes(bytes, 'bytes');
  let parsed: unknown;
  try {
    parsed = JSON.parse(UTF8_STRICT.decode(bytes));
  } catch {
    throw malformedPayload('not UTF-8 JSON');
  }
  if (!isPlainObject(parsed) || !hasExactKeys(parsed, ['entries', 'v'])) {
    throw malformedPayload('expected exactly the keys "v" and "entries"');
  }
  if (parsed.v !== BUNDLE_PAYLOAD_FORMAT_VERSION) {
    throw new CrateError(
      'ERR_FORMAT_UNSUPPORTED',
      `bundle payload version ${JSON.stringify(parsed.v)} is not supported`,
    );
  }
  if (!Array.isArray(parsed.entries)) {
    throw malformedPayload('"entries" is not an array');
  }
  const names = new Set<string>();
  const decoded: DecodedBundleEntry[] = [];
  try {
    for (const [index, entry] of (parsed.entries as unknown[]).entries()) {
      if (!isPlainObject(entry) || !hasExactKeys(entry, ['name', 'value', 'version'])) {
        throw malformedPayload(`entry ${index} must have exactly "name", "version" and "value"`);
      }
      const { name, version } = entry;
      if (!isNonEmptyWellFormedString(name)) {
        throw malformedPayload(`entry ${index} has an invalid name`);
      }
      if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
        throw malformedPayload(`entry ${index} has an invalid version`);
      }
      if (names.has(name)) {
        throw malformedPayload(`entry ${index} repeats a name`);
      }
      const value = decodeBase64(entry.value);
      if (value === undefined) {
        throw malformedPayload(`entry ${index} has a value that is not canonical base64`);
      }
      names.add(name);
      decoded.push({ name, version, value });
    }
  } catch (error) {
    // Best effort: JavaScript gives no guarantee that no other copy of the values exists.
    zeroize(...decoded.map((entry) => entry.value));
    throw error;
  }
  return decoded;
}
