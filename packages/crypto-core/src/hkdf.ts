import { hkdfSync } from 'node:crypto';
import { assertBytes, assertInteger } from './lib/assert.js';

/** SHA-256 output size: HKDF can expand to at most 255 blocks of it. */
const SHA256_BYTES = 32;
export const HKDF_SHA256_MAX_LENGTH = 255 * SHA256_BYTES;

/** node:crypto refuses longer `info` (OpenSSL's limit); no Crate label comes close. */
export const HKDF_MAX_INFO_BYTES = 1024;

/**
 * HKDF-SHA-256 (RFC 5869), extract then expand, `length` bytes of output (1..8160).
 * An empty salt means the RFC's default (a block of zeros). Asking for more than 255 * 32
 * bytes is a programming error (RangeError), as is an `info` longer than 1024 bytes.
 */
export function hkdfSha256(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Buffer {
  assertBytes(ikm, 'ikm');
  assertBytes(salt, 'salt');
  assertBytes(info, 'info');
  assertInteger(length, 'length', 1, HKDF_SHA256_MAX_LENGTH);
  if (info.length > HKDF_MAX_INFO_BYTES) {
    throw new RangeError(`info must be at most ${HKDF_MAX_INFO_BYTES} bytes, got ${info.length}`);
  }
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}
