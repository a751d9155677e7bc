// The public surface of @crate/crypto-core. Every export is named here (no `export *`), so
// that what the server and the CLI may depend on is visible in one place.

export type { AeadKey, AeadParts } from './aead.js';
export {
  AEAD_KEY_BYTES,
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  aeadDecrypt,
  aeadEncrypt,
  aeadEncryptWithNonce,
  aeadOpen,
  aeadSeal,
} from './aead.js';
export type {
  AuditChainBreak,
  AuditChainResult,
  AuditEntryBody,
  AuditOutcome,
  SignedAuditEntry,
  VerifyAuditChainOptions,
} from './audit-chain.js';
export {
  AUDIT_GENESIS_HASH,
  AUDIT_HASH_BYTES,
  canonicalAuditBytes,
  computeAuditHash,
  signAuditHash,
  verifyAuditChain,
} from './audit-chain.js';
export type {
  BuildBundleOptions,
  BundleBinding,
  BundleEntry,
  BundleEnvelope,
  DecodedBundleEntry,
  OpenBundleOptions,
  UnsignedBundleEnvelope,
} from './bundle.js';
export {
  BUNDLE_AAD_PURPOSE,
  BUNDLE_ALGORITHM,
  BUNDLE_FORMAT_VERSION,
  BUNDLE_MAX_CLOCK_SKEW_SECONDS,
  BUNDLE_NONCE_BYTES,
  BUNDLE_PAYLOAD_FORMAT_VERSION,
  BUNDLE_SIGNATURE_DOMAIN,
  buildBundle,
  bundleSignedBytes,
  DEFAULT_BUNDLE_MAX_AGE_SECONDS,
  DEFAULT_EPHEMERAL_MODULUS_BITS,
  decodeBundlePayload,
  EPHEMERAL_MAX_MODULUS_BITS,
  EPHEMERAL_MIN_MODULUS_BITS,
  encodeBundlePayload,
  generateEphemeralKeyPair,
  isValidBundleNonce,
  newBundleNonce,
  openBundle,
  validateEphemeralPublicKey,
} from './bundle.js';
export type {
  OrgDekContext,
  OrgMacKeyContext,
  PrivateKeyContext,
  PrivateKeyKind,
  SecretRef,
} from './context.js';
export {
  CONTEXT_PURPOSE,
  orgDekContext,
  orgMacKeyContext,
  PRIVATE_KEY_KINDS,
  privateKeyContext,
  secretDekContext,
  secretValueContext,
} from './context.js';
export type { EnvelopeHeader, EnvelopeKind, VersionedKey } from './envelope.js';
export {
  decryptSecret,
  decryptValue,
  ENVELOPE_FORMAT_VERSION,
  ENVELOPE_HEADER_BYTES,
  ENVELOPE_KIND_CODES,
  ENVELOPE_MIN_BYTES,
  encryptSecret,
  encryptValue,
  generateDataKey,
  importDataKey,
  readEnvelopeHeader,
  rewrapOrgDek,
  rewrapOrgMacKey,
  rewrapPrivateKey,
  rewrapSecretDek,
  unwrapOrgDek,
  unwrapOrgMacKey,
  unwrapPrivateKey,
  unwrapSecretDek,
  wrapOrgDek,
  wrapOrgMacKey,
  wrapPrivateKey,
  wrapSecretDek,
} from './envelope.js';
export type { ErrorCode } from './errors.js';
export { CrateError, DECRYPT_FAILED_MESSAGE, ERROR_CODES, isCrateError } from './errors.js';
export { HKDF_MAX_INFO_BYTES, HKDF_SHA256_MAX_LENGTH, hkdfSha256 } from './hkdf.js';
export type { SecretState } from './integrity.js';
export {
  computeSecretStateMac,
  INTEGRITY_MAC_DOMAIN,
  SECRET_STATE_MAC_BYTES,
  SECRET_STATE_MAC_FORMAT_VERSION,
  SECRET_STATE_MAC_PURPOSE,
  secretStateMacInput,
  verifySecretStateMac,
} from './integrity.js';
export type { KeyVouchStatement } from './key-vouch.js';
export { KEY_VOUCH_DOMAIN, keyVouchBytes, signKeyVouch, verifyKeyVouch } from './key-vouch.js';
export type { KeyLookup } from './keyring.js';
export { generateKeyring, Keyring, keyFingerprint, MAX_KEY_VERSION } from './keyring.js';
export {
  MASTER_KEY_FILE_FORMAT,
  MASTER_KEY_FILE_FORMAT_VERSION,
  parseMasterKeyFile,
  serializeMasterKeyFile,
} from './master-key-file.js';
export type { PassphraseOptions } from './passphrase.js';
export {
  DEFAULT_PBKDF2_ITERATIONS,
  decryptWithPassphrase,
  encryptWithPassphrase,
  MAX_PBKDF2_ITERATIONS,
  MIN_PBKDF2_ITERATIONS,
} from './passphrase.js';
export type {
  FingerprintEncoding,
  SealDestination,
  SealEnvelope,
  SealingKeyPair,
} from './seal.js';
export {
  DEFAULT_SEALING_MODULUS_BITS,
  formatFingerprint,
  generateSealingKeyPair,
  importSealingPrivateKey,
  importSealingPublicKey,
  isValidKeyId,
  MAX_KEY_ID_LENGTH,
  openSeal,
  parseSealEnvelope,
  rsaOaepUnwrap,
  SEAL_AAD_PURPOSE,
  SEAL_ALGORITHM,
  SEAL_FORMAT_VERSION,
  SEALING_MODULUS_BITS,
  sealValue,
  spkiFingerprint,
} from './seal.js';
export { constantTimeEqual, Sensitive, withZeroized, zeroize } from './sensitive.js';
export { combineShares, SHAMIR_MAX_SHARES, SHAMIR_MIN_THRESHOLD, splitSecret } from './shamir.js';
export type { CreateShareFilesOptions, ShareFile } from './share-file.js';
export {
  createShareFiles,
  encodeShareFile,
  parseShareFile,
  recoverFromShareFiles,
  SHARE_FILE_FORMAT,
  SHARE_FILE_FORMAT_VERSION,
  SHARE_FILE_MAX_LABEL_LENGTH,
  SHARE_FILE_MIN_SECRET_BYTES,
} from './share-file.js';
export type { SigningKeyPair } from './signing.js';
export {
  ED25519_SIGNATURE_BYTES,
  generateSigningKeyPair,
  importSigningPrivateKey,
  importSigningPublicKey,
  sign,
  verify,
} from './signing.js';
