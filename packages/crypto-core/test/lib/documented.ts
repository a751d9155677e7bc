/**
 * Independent re-implementations of the derivations that docs/formats.md specifies, written
 * from the document with node:crypto only (nothing from src/), so that tests comparing them
 * with crypto-core check the code and the documentation at once.
 */
import { createHash, createHmac } from 'node:crypto';

/** docs/formats.md "Notation": lp(x) = u32be(byte length of UTF-8(x)) || UTF-8(x). */
export function lp(value: string | number): Buffer {
  const bytes = Buffer.from(String(value), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

export function lps(...values: Array<string | number>): Buffer {
  return Buffer.concat(values.map(lp));
}

/** AAD(purpose, fields) = lp("crate/aad/v1") || lp(purpose) || lp(name) || lp(value) ... */
export function documentedAad(
  purpose: string,
  fields: ReadonlyArray<readonly [string, string | number]>,
): Buffer {
  return lps('crate/aad/v1', purpose, ...fields.flat());
}

const sha256Hex128 = (input: Buffer): string =>
  createHash('sha256').update(input).digest().subarray(0, 16).toString('hex');

export interface DocumentedShareFields {
  format: string;
  formatVersion: number;
  splitId: string;
  threshold: number;
  shares: number;
  index: number;
  keyCheck: string;
  share: string;
  label?: string;
}

/** Share file `checksum`. */
export function documentedShareChecksum(file: DocumentedShareFields): string {
  const fields: Array<string | number> = [
    'format',
    file.format,
    'formatVersion',
    file.formatVersion,
    'splitId',
    file.splitId,
    'threshold',
    file.threshold,
    'shares',
    file.shares,
    'index',
    file.index,
    'keyCheck',
    file.keyCheck,
    'share',
    file.share,
  ];
  if (file.label !== undefined) {
    fields.push('label', file.label);
  }
  return sha256Hex128(lps('crate/share-file/v1', ...fields));
}

/** Share file `keyCheck`. */
export function documentedShareKeyCheck(secret: Uint8Array, splitId: string): string {
  return createHmac('sha256', secret)
    .update(lps('crate/share-key-check/v1', splitId))
    .digest()
    .subarray(0, 16)
    .toString('hex');
}

/** Master key file `checksum`; `keys` in any order (the checksum sorts them by version). */
export function documentedMasterKeyChecksum(
  active: number,
  keys: ReadonlyArray<{ version: number; key: string }>,
): string {
  const sorted = [...keys].sort((a, b) => a.version - b.version);
  return sha256Hex128(
    lps(
      'crate/master-key-file/v1',
      'format',
      'crate-master-key',
      'formatVersion',
      1,
      'active',
      active,
      ...sorted.flatMap(({ version, key }) => ['version', version, 'key', key]),
    ),
  );
}

/** A copy of `bytes` with bit `bit` (counted from the first byte's least significant bit) flipped. */
export function flipBit(bytes: Uint8Array, bit: number): Buffer {
  const copy = Buffer.from(bytes);
  const at = bit % (copy.length * 8);
  copy[at >> 3]! ^= 1 << (at & 7);
  return copy;
}
