import { createHash } from 'node:crypto';
import { AEAD_KEY_BYTES } from './aead.js';
import { CrateError } from './errors.js';
import { Keyring } from './keyring.js';
import { encodeLengthPrefixed, type LengthPrefixedValue } from './lib/aad.js';
import { decodeBase64, encodeBase64 } from './lib/base64url.js';
import { MAX_KEY_VERSION, type VersionedKey } from './lib/versioned-key.js';
import { hasExactKeys, isPlainObject } from './lib/wire.js';
import { constantTimeEqual, zeroize } from './sensitive.js';

/**
 * The master key file: UTF-8 JSON, exactly
 *   {"format":"crate-master-key","formatVersion":1,"active":2,
 *    "keys":[{"version":1,"key":"<base64 of 32 bytes>"},{"version":2,"key":"…"}],
 *    "checksum":"<32 hex digits>"}
 * Whitespace between tokens is free; everything else is checked strictly. Error messages name
 * what is wrong and never quote the file (it holds keys): in particular JSON.parse's own
 * message, which quotes the text, is dropped.
 *
 * `checksum` (SHA-256 over the other members, truncated to 128 bits) catches a damaged file: a
 * flipped bit in a key would otherwise load as a different, valid key, and one in "active"
 * could silently move new wraps to another version. It is not a MAC (anyone who can write the
 * file can recompute it, and could replace the keys anyway). serializeMasterKeyFile always
 * writes it; a file without it (written by hand) is accepted, since removing the member is
 * not something a damaged byte can do: a changed member name is an unknown member.
 */
export const MASTER_KEY_FILE_FORMAT = 'crate-master-key';
export const MASTER_KEY_FILE_FORMAT_VERSION = 1;

const TOP_LEVEL_FIELDS = ['active', 'format', 'formatVersion', 'keys'];
const TOP_LEVEL_FIELDS_WITH_CHECKSUM = ['active', 'checksum', 'format', 'formatVersion', 'keys'];
const KEY_FIELDS = ['key', 'version'];
const CHECKSUM_DOMAIN = 'crate/master-key-file/v1';
const CHECKSUM_HEX = /^[0-9a-f]{32}$/;

export function parseMasterKeyFile(text: string | Uint8Array): Keyring {
  const document = parseJson(decodeText(text));
  if (!isPlainObject(document)) {
    throw invalid('it must hold a JSON object');
  }
  if (document.format !== MASTER_KEY_FILE_FORMAT) {
    throw invalid(`"format" must be "${MASTER_KEY_FILE_FORMAT}"`);
  }
  if (document.formatVersion !== MASTER_KEY_FILE_FORMAT_VERSION) {
    throw invalid(`"formatVersion" must be ${MASTER_KEY_FILE_FORMAT_VERSION} (the only one known)`);
  }
  if (
    !hasExactKeys(document, TOP_LEVEL_FIELDS) &&
    !hasExactKeys(document, TOP_LEVEL_FIELDS_WITH_CHECKSUM)
  ) {
    throw invalid(
      `the top-level object must have exactly the fields ${TOP_LEVEL_FIELDS.join(', ')} (and optionally checksum)`,
    );
  }
  const active = document.active;
  if (!isKeyVersion(active)) {
    throw invalid(`"active" must be an integer from 1 to ${MAX_KEY_VERSION}`);
  }
  if (!Array.isArray(document.keys) || document.keys.length === 0) {
    throw invalid('"keys" must be a non-empty array');
  }
  const keys: VersionedKey[] = [];
  try {
    for (const [index, entry] of document.keys.entries()) {
      keys.push(parseKeyEntry(entry, index));
      const version = keys.at(-1)?.version;
      if (keys.filter((other) => other.version === version).length > 1) {
        throw invalid(`key version ${version} appears more than once`);
      }
    }
    if (!keys.some((entry) => entry.version === active)) {
      throw invalid(`the active version ${active} is not among the keys`);
    }
    if (Object.hasOwn(document, 'checksum')) {
      const checksum = document.checksum;
      if (typeof checksum !== 'string' || !CHECKSUM_HEX.test(checksum)) {
        throw invalid('"checksum" must be 32 lowercase hex digits');
      }
      if (!constantTimeEqual(computeChecksum(active, keys), checksum)) {
        throw invalid(
          '"checksum" does not match: the file is damaged (restore it from a backup; do not edit it by hand)',
        );
      }
    }
    return Keyring.create(keys, active);
  } finally {
    // The Keyring holds its own copies. Best effort: JavaScript gives no guarantee that no
    // other copy of the bytes exists, and the base64 strings JSON.parse made cannot be wiped.
    zeroize(...keys.map((entry) => entry.key));
  }
}

/**
 * The key file for `keyring`: keys in ascending version order, then the checksum; 2-space
 * indented, final newline.
 */
export function serializeMasterKeyFile(keyring: Keyring): string {
  if (!(keyring instanceof Keyring)) {
    throw new TypeError('keyring must be a Keyring');
  }
  const entries: VersionedKey[] = keyring
    .versions()
    .map((version) => ({ version, key: keyring.require(version) }));
  const document = {
    format: MASTER_KEY_FILE_FORMAT,
    formatVersion: MASTER_KEY_FILE_FORMAT_VERSION,
    active: keyring.activeVersion,
    keys: entries.map(({ version, key }) => ({ version, key: encodeBase64(key) })),
    checksum: computeChecksum(keyring.activeVersion, entries),
  };
  return `${JSON.stringify(document, null, 2)}\n`;
}

/**
 * hex(SHA-256(lp("crate/master-key-file/v1") || lp("format") || lp(format)
 *   || lp("formatVersion") || lp(1) || lp("active") || lp(active)
 *   || for each key in ascending version order: lp("version") || lp(version) || lp("key") || lp(base64 key)
 * )[0..16])
 */
function computeChecksum(active: number, keys: readonly VersionedKey[]): string {
  const parts: LengthPrefixedValue[] = [
    CHECKSUM_DOMAIN,
    'format',
    MASTER_KEY_FILE_FORMAT,
    'formatVersion',
    MASTER_KEY_FILE_FORMAT_VERSION,
    'active',
    active,
  ];
  for (const { version, key } of [...keys].sort((a, b) => a.version - b.version)) {
    parts.push('version', version, 'key', encodeBase64(key));
  }
  return createHash('sha256').update(encodeLengthPrefixed(parts)).digest('hex').slice(0, 32);
}

function parseKeyEntry(entry: unknown, index: number): VersionedKey {
  const where = `keys[${index}]`;
  if (!isPlainObject(entry) || !hasExactKeys(entry, KEY_FIELDS)) {
    throw invalid(`${where} must be an object with exactly the fields "version" and "key"`);
  }
  if (!isKeyVersion(entry.version)) {
    throw invalid(`${where}.version must be an integer from 1 to ${MAX_KEY_VERSION}`);
  }
  const key = decodeBase64(entry.key);
  if (key === undefined) {
    throw invalid(`${where}.key must be canonical padded base64`);
  }
  if (key.length !== AEAD_KEY_BYTES) {
    const length = key.length;
    zeroize(key);
    throw invalid(`${where}.key must decode to ${AEAD_KEY_BYTES} bytes, not ${length}`);
  }
  return { version: entry.version, key };
}

function decodeText(text: string | Uint8Array): string {
  if (typeof text === 'string') {
    return text;
  }
  if (!(text instanceof Uint8Array)) {
    throw new TypeError('the master key file must be given as a string or bytes');
  }
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(text);
  } catch {
    throw invalid('it is not valid UTF-8');
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // No cause: V8's message quotes part of the text, which may be key material.
    throw invalid('it is not valid JSON');
  }
}

function isKeyVersion(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= MAX_KEY_VERSION;
}

function invalid(reason: string): CrateError {
  return new CrateError('ERR_KEYRING_INVALID', `the master key file is invalid: ${reason}`);
}
