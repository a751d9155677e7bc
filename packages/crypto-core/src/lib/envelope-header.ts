import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES } from '../aead.js';
import { decryptError } from '../errors.js';
import { assertBytes } from './assert.js';
import { MAX_KEY_VERSION } from './versioned-key.js';

/**
 * The 8-byte header of every at-rest envelope:
 *   0x43 0x45 ("CE") | u8 formatVersion (1) | u8 kind | u32be wrappingKeyVersion
 * followed by nonce (12) || ciphertext || tag (16). The header is authenticated (it starts
 * the AAD), so none of its bytes can be changed without the envelope failing to open.
 */
export const ENVELOPE_MAGIC = Buffer.from('CE', 'latin1');
export const ENVELOPE_FORMAT_VERSION = 1;
export const ENVELOPE_HEADER_BYTES = 8;
export const ENVELOPE_MIN_BYTES = ENVELOPE_HEADER_BYTES + AEAD_NONCE_BYTES + AEAD_TAG_BYTES;

export const ENVELOPE_KIND_CODES = {
  'org-dek': 1,
  'secret-dek': 2,
  'secret-value': 3,
  'private-key': 4,
  'org-mac-key': 5,
} as const;

export type EnvelopeKind = keyof typeof ENVELOPE_KIND_CODES;

export interface EnvelopeHeader {
  readonly formatVersion: 1;
  readonly kind: EnvelopeKind;
  /** The version of the key that wrapped the payload; 0 for secret-value (its DEK is unversioned). */
  readonly keyVersion: number;
}

const KINDS_BY_CODE: ReadonlyMap<number, EnvelopeKind> = new Map(
  Object.entries(ENVELOPE_KIND_CODES).map(([kind, code]) => [code, kind as EnvelopeKind]),
);

export function encodeEnvelopeHeader(kind: EnvelopeKind, keyVersion: number): Buffer {
  const header = Buffer.alloc(ENVELOPE_HEADER_BYTES);
  ENVELOPE_MAGIC.copy(header, 0);
  header.writeUInt8(ENVELOPE_FORMAT_VERSION, 2);
  header.writeUInt8(ENVELOPE_KIND_CODES[kind], 3);
  header.writeUInt32BE(keyVersion, 4);
  return header;
}

/**
 * Parses and checks the header. Anything off (too short to be an envelope, wrong magic,
 * unknown format version or kind, a key version of 0 on a wrapped key or non-zero on a
 * secret value) is the fixed ERR_DECRYPT: an envelope's bytes are attacker-controlled.
 */
export function parseEnvelopeHeader(blob: Uint8Array): EnvelopeHeader {
  assertBytes(blob, 'envelope');
  if (blob.length < ENVELOPE_MIN_BYTES) {
    throw decryptError();
  }
  const bytes = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (bytes[0] !== ENVELOPE_MAGIC[0] || bytes[1] !== ENVELOPE_MAGIC[1]) {
    throw decryptError();
  }
  if (bytes.readUInt8(2) !== ENVELOPE_FORMAT_VERSION) {
    throw decryptError();
  }
  const kind = KINDS_BY_CODE.get(bytes.readUInt8(3));
  if (kind === undefined) {
    throw decryptError();
  }
  const keyVersion = bytes.readUInt32BE(4);
  const versionAllowed =
    kind === 'secret-value' ? keyVersion === 0 : keyVersion >= 1 && keyVersion <= MAX_KEY_VERSION;
  if (!versionAllowed) {
    throw decryptError();
  }
  return { formatVersion: ENVELOPE_FORMAT_VERSION, kind, keyVersion };
}
