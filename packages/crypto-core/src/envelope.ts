import { createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import { AEAD_KEY_BYTES, type AeadKey, aeadOpen, aeadSeal, assertAeadKey } from './aead.js';
import {
  type OrgDekContext,
  type OrgMacKeyContext,
  orgDekContext,
  orgMacKeyContext,
  type PrivateKeyContext,
  privateKeyContext,
  type SecretRef,
  secretDekContext,
  secretValueContext,
} from './context.js';
import { decryptError } from './errors.js';
import { type KeyLookup, lookupKey } from './keyring.js';
import { encodeLengthPrefixed } from './lib/aad.js';
import { assertBytes } from './lib/assert.js';
import {
  ENVELOPE_HEADER_BYTES,
  type EnvelopeHeader,
  type EnvelopeKind,
  encodeEnvelopeHeader,
  parseEnvelopeHeader,
} from './lib/envelope-header.js';
import { assertVersionedKey, type VersionedKey } from './lib/versioned-key.js';
import { zeroize } from './sensitive.js';

/**
 * The three at-rest tiers (master key → org DEK → secret DEK → value) plus the org private
 * keys the master key wraps. Every blob is one binary envelope:
 *
 *   "CE" | u8 formatVersion (1) | u8 kind | u32be wrappingKeyVersion | nonce (12) | ciphertext | tag (16)
 *
 * sealed with AES-256-GCM under AAD = the 8 header bytes || the kind's context (context.ts),
 * which for a wrapped key ends with lp(masterKeyVersion | orgDekVersion) || lp(version).
 * Opening anything malformed, tampered, of another kind, under a wrong key or a wrong context
 * throws the one fixed ERR_DECRYPT; a key version the lookup does not hold throws
 * ERR_KEY_VERSION_UNKNOWN (the operator is missing a key, nothing was tampered with).
 */

export {
  ENVELOPE_FORMAT_VERSION,
  ENVELOPE_HEADER_BYTES,
  ENVELOPE_KIND_CODES,
  ENVELOPE_MIN_BYTES,
  type EnvelopeHeader,
  type EnvelopeKind,
} from './lib/envelope-header.js';
export type { VersionedKey } from './lib/versioned-key.js';

/** The field a wrapped key's context ends with: the version of the key that wraps it. */
const WRAPPING_KEY_FIELD: Readonly<Record<EnvelopeKind, string | undefined>> = {
  'org-dek': 'masterKeyVersion',
  'org-mac-key': 'masterKeyVersion',
  'private-key': 'masterKeyVersion',
  'secret-dek': 'orgDekVersion',
  'secret-value': undefined,
};

/** 32 fresh random bytes: an org DEK or a secret DEK. The caller zeroes it after use. */
export function generateDataKey(): Buffer {
  return randomBytes(AEAD_KEY_BYTES);
}

/**
 * A data key (org DEK or secret DEK) as a secret KeyObject, for keys a process caches and uses
 * many times: AES-GCM under a KeyObject costs a fraction of the same operation under raw bytes
 * on Node 24 (see AeadKey). The bytes are copied into OpenSSL memory, which JavaScript cannot
 * zero; Node cleanses it when the object is garbage-collected. The caller zeroes `bytes`.
 */
export function importDataKey(bytes: Uint8Array): KeyObject {
  assertBytes(bytes, 'data key', AEAD_KEY_BYTES);
  return createSecretKey(bytes);
}

/** The header of an envelope, without opening it (e.g. to see which key version wrapped it). */
export function readEnvelopeHeader(blob: Uint8Array): EnvelopeHeader {
  return parseEnvelopeHeader(blob);
}

export function wrapOrgDek(master: VersionedKey, orgDek: Uint8Array, ctx: OrgDekContext): Buffer {
  assertBytes(orgDek, 'orgDek', AEAD_KEY_BYTES);
  return sealEnvelope('org-dek', master, orgDek, orgDekContext(ctx));
}

export function unwrapOrgDek(masterKeys: KeyLookup, blob: Uint8Array, ctx: OrgDekContext): Buffer {
  return openDataKey('org-dek', resolver(masterKeys), blob, orgDekContext(ctx));
}

/**
 * An org's integrity (MAC) key: 32 random bytes that key the HMAC over each secret's stored
 * state (integrity.ts), wrapped by the master key like the org DEK but under its own kind and
 * context, so neither can be opened as the other.
 */
export function wrapOrgMacKey(
  master: VersionedKey,
  macKey: Uint8Array,
  ctx: OrgMacKeyContext,
): Buffer {
  assertBytes(macKey, 'macKey', AEAD_KEY_BYTES);
  return sealEnvelope('org-mac-key', master, macKey, orgMacKeyContext(ctx));
}

export function unwrapOrgMacKey(
  masterKeys: KeyLookup,
  blob: Uint8Array,
  ctx: OrgMacKeyContext,
): Buffer {
  return openDataKey('org-mac-key', resolver(masterKeys), blob, orgMacKeyContext(ctx));
}

/** Master key rotation: the org MAC key inside `blob`, wrapped again under `newMaster`. */
export function rewrapOrgMacKey(
  masterKeys: KeyLookup,
  newMaster: VersionedKey,
  blob: Uint8Array,
  ctx: OrgMacKeyContext,
): Buffer {
  assertVersionedKey(newMaster, 'newMaster');
  const macKey = unwrapOrgMacKey(masterKeys, blob, ctx);
  try {
    return wrapOrgMacKey(newMaster, macKey, ctx);
  } finally {
    // Best effort: JavaScript gives no guarantee that no other copy of the bytes exists.
    zeroize(macKey);
  }
}

/** Wraps an org's private key (PKCS#8 DER of its sealing, signing or audit key). */
export function wrapPrivateKey(
  master: VersionedKey,
  pkcs8Der: Uint8Array,
  ctx: PrivateKeyContext,
): Buffer {
  assertBytes(pkcs8Der, 'pkcs8Der');
  return sealEnvelope('private-key', master, pkcs8Der, privateKeyContext(ctx));
}

export function unwrapPrivateKey(
  masterKeys: KeyLookup,
  blob: Uint8Array,
  ctx: PrivateKeyContext,
): Buffer {
  return openEnvelope('private-key', resolver(masterKeys), blob, privateKeyContext(ctx));
}

export function wrapSecretDek(orgDek: VersionedKey, secretDek: Uint8Array, ref: SecretRef): Buffer {
  assertBytes(secretDek, 'secretDek', AEAD_KEY_BYTES);
  return sealEnvelope('secret-dek', orgDek, secretDek, secretDekContext(ref));
}

export function unwrapSecretDek(orgDeks: KeyLookup, blob: Uint8Array, ref: SecretRef): Buffer {
  return openDataKey('secret-dek', resolver(orgDeks), blob, secretDekContext(ref));
}

/** Encrypts one secret value under its secret DEK (wrapping key version 0 in the header). */
export function encryptValue(secretDek: AeadKey, value: Uint8Array, ref: SecretRef): Buffer {
  assertAeadKey(secretDek, 'secretDek');
  assertBytes(value, 'value');
  const context = secretValueContext(ref);
  const header = encodeEnvelopeHeader('secret-value', 0);
  const sealed = aeadSeal(secretDek, value, envelopeAad('secret-value', header, context, 0));
  return Buffer.concat([header, sealed]);
}

/** Opens one secret value with its (unwrapped) secret DEK: 32 bytes or importDataKey's KeyObject. */
export function decryptValue(secretDek: AeadKey, blob: Uint8Array, ref: SecretRef): Buffer {
  assertAeadKey(secretDek, 'secretDek');
  return openEnvelope('secret-value', () => secretDek, blob, secretValueContext(ref));
}

/** A fresh secret DEK wraps nothing but this value; it is zeroed before returning. */
export function encryptSecret(
  orgDek: VersionedKey,
  value: Uint8Array,
  ref: SecretRef,
): { wrappedDek: Buffer; ciphertext: Buffer } {
  const secretDek = generateDataKey();
  try {
    return {
      wrappedDek: wrapSecretDek(orgDek, secretDek, ref),
      ciphertext: encryptValue(secretDek, value, ref),
    };
  } finally {
    // Best effort: JavaScript gives no guarantee that no other copy of the bytes exists.
    zeroize(secretDek);
  }
}

export function decryptSecret(
  orgDeks: KeyLookup,
  wrappedDek: Uint8Array,
  ciphertext: Uint8Array,
  ref: SecretRef,
): Buffer {
  const secretDek = unwrapSecretDek(orgDeks, wrappedDek, ref);
  try {
    return decryptValue(secretDek, ciphertext, ref);
  } finally {
    // Best effort: JavaScript gives no guarantee that no other copy of the bytes exists.
    zeroize(secretDek);
  }
}

/** Org DEK rotation: the secret DEK inside `blob`, wrapped again under `newOrgDek`. */
export function rewrapSecretDek(
  orgDeks: KeyLookup,
  newOrgDek: VersionedKey,
  blob: Uint8Array,
  ref: SecretRef,
): Buffer {
  assertVersionedKey(newOrgDek, 'newOrgDek');
  const secretDek = unwrapSecretDek(orgDeks, blob, ref);
  try {
    return wrapSecretDek(newOrgDek, secretDek, ref);
  } finally {
    // Best effort: JavaScript gives no guarantee that no other copy of the bytes exists.
    zeroize(secretDek);
  }
}

/** Master key rotation: the org DEK inside `blob`, wrapped again under `newMaster`. */
export function rewrapOrgDek(
  masterKeys: KeyLookup,
  newMaster: VersionedKey,
  blob: Uint8Array,
  ctx: OrgDekContext,
): Buffer {
  assertVersionedKey(newMaster, 'newMaster');
  const orgDek = unwrapOrgDek(masterKeys, blob, ctx);
  try {
    return wrapOrgDek(newMaster, orgDek, ctx);
  } finally {
    // Best effort: JavaScript gives no guarantee that no other copy of the bytes exists.
    zeroize(orgDek);
  }
}

/** Master key rotation: the private key inside `blob`, wrapped again under `newMaster`. */
export function rewrapPrivateKey(
  masterKeys: KeyLookup,
  newMaster: VersionedKey,
  blob: Uint8Array,
  ctx: PrivateKeyContext,
): Buffer {
  assertVersionedKey(newMaster, 'newMaster');
  const pkcs8Der = unwrapPrivateKey(masterKeys, blob, ctx);
  try {
    return wrapPrivateKey(newMaster, pkcs8Der, ctx);
  } finally {
    // Best effort: JavaScript gives no guarantee that no other copy of the bytes exists.
    zeroize(pkcs8Der);
  }
}

function sealEnvelope(
  kind: EnvelopeKind,
  wrappingKey: VersionedKey,
  plaintext: Uint8Array,
  context: Buffer,
): Buffer {
  assertVersionedKey(wrappingKey, 'wrapping key');
  const header = encodeEnvelopeHeader(kind, wrappingKey.version);
  const aad = envelopeAad(kind, header, context, wrappingKey.version);
  return Buffer.concat([header, aeadSeal(wrappingKey.key, plaintext, aad)]);
}

/** The key of a wrapping key version, from a lookup (ERR_KEY_VERSION_UNKNOWN when not held). */
function resolver(keys: KeyLookup): (version: number) => AeadKey {
  return (version) => lookupKey(keys, version);
}

function openEnvelope(
  kind: EnvelopeKind,
  keyFor: (version: number) => AeadKey,
  blob: Uint8Array,
  context: Buffer,
): Buffer {
  const header = parseEnvelopeHeader(blob);
  if (header.kind !== kind) {
    throw decryptError();
  }
  const key = keyFor(header.keyVersion);
  const aad = envelopeAad(
    kind,
    blob.subarray(0, ENVELOPE_HEADER_BYTES),
    context,
    header.keyVersion,
  );
  return aeadOpen(key, blob.subarray(ENVELOPE_HEADER_BYTES), aad);
}

/** Opens a wrapped DEK, which is always exactly 32 bytes. */
function openDataKey(
  kind: EnvelopeKind,
  keyFor: (version: number) => AeadKey,
  blob: Uint8Array,
  context: Buffer,
): Buffer {
  const dataKey = openEnvelope(kind, keyFor, blob, context);
  if (dataKey.length !== AEAD_KEY_BYTES) {
    zeroize(dataKey);
    throw decryptError();
  }
  return dataKey;
}

function envelopeAad(
  kind: EnvelopeKind,
  header: Uint8Array,
  context: Buffer,
  keyVersion: number,
): Buffer {
  const field = WRAPPING_KEY_FIELD[kind];
  const wrappingKeyField = field === undefined ? [] : [encodeLengthPrefixed([field, keyVersion])];
  return Buffer.concat([header, context, ...wrappingKeyField]);
}
