import { CrateError, Keyring, type VersionedKey, zeroize } from '@crate/crypto-core';

/**
 * The compact byte form of a master keyring that Shamir share files split (docs/operations.md,
 * "Master key backups"):
 *
 *   u8 format = 1 | u32be activeVersion | u8 count (1..255)
 *   | count x ( u32be version | 32-byte key )        versions ascending, distinct
 *
 * 42 bytes for one version. Share files hold one share of these bytes each, so a custodian's
 * share is short enough to print on paper. Every version is split, not only the active one:
 * during a rotation the database still holds records wrapped under the older versions.
 */
const FORMAT = 1;
const KEY_BYTES = 32;
const ENTRY_BYTES = 4 + KEY_BYTES;
const HEADER_BYTES = 1 + 4 + 1;
const MAX_VERSIONS = 255;

export function encodeKeyringBytes(keyring: Keyring): Buffer {
  const versions = keyring.versions();
  if (versions.length > MAX_VERSIONS) {
    throw new RangeError(`a keyring of more than ${MAX_VERSIONS} versions cannot be split`);
  }
  const out = Buffer.alloc(HEADER_BYTES + versions.length * ENTRY_BYTES);
  out[0] = FORMAT;
  out.writeUInt32BE(keyring.activeVersion, 1);
  out[5] = versions.length;
  versions.forEach((version, i) => {
    const at = HEADER_BYTES + i * ENTRY_BYTES;
    out.writeUInt32BE(version, at);
    keyring.require(version).copy(out, at + 4);
  });
  return out;
}

/** The inverse of encodeKeyringBytes; anything malformed is ERR_KEYRING_INVALID. */
export function decodeKeyringBytes(bytes: Buffer): Keyring {
  const invalid = (why: string) =>
    new CrateError('ERR_KEYRING_INVALID', `the recovered master key is malformed: ${why}`);
  if (bytes.length < HEADER_BYTES + ENTRY_BYTES || bytes[0] !== FORMAT) {
    throw invalid('unknown layout');
  }
  const count = bytes[5]!;
  if (count === 0 || bytes.length !== HEADER_BYTES + count * ENTRY_BYTES) {
    throw invalid('wrong length');
  }
  const keys: VersionedKey[] = [];
  try {
    let previous = 0;
    for (let i = 0; i < count; i++) {
      const at = HEADER_BYTES + i * ENTRY_BYTES;
      const version = bytes.readUInt32BE(at);
      if (version <= previous) throw invalid('versions out of order');
      previous = version;
      keys.push({ version, key: Buffer.from(bytes.subarray(at + 4, at + ENTRY_BYTES)) });
    }
    const active = bytes.readUInt32BE(1);
    if (!keys.some((entry) => entry.version === active)) {
      throw invalid('the active version is missing');
    }
    return Keyring.create(keys, active);
  } finally {
    // The keyring holds its own copies. JavaScript gives no guarantee no other copy exists.
    zeroize(...keys.map((entry) => entry.key));
  }
}
