import { pbkdf2, randomBytes } from 'node:crypto';
import {
  AEAD_KEY_BYTES,
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  aeadDecrypt,
  aeadEncrypt,
} from './aead.js';
import { CrateError, decryptError } from './errors.js';
import { assertBytes, assertInteger } from './lib/assert.js';
import { zeroize } from './sensitive.js';

/**
 * Passphrase encryption for backups and archives (PBKDF2-HMAC-SHA-256 + AES-256-GCM).
 *
 * Blob layout (all integers big-endian):
 *   magic 'CP' (0x43 0x50) | u8 formatVersion = 1 | u8 kdfId = 1 (PBKDF2-HMAC-SHA-256)
 *   | u32 iterations | 16-byte salt                       <- the 24-byte header, used as AAD
 *   | 12-byte nonce | ciphertext | 16-byte tag
 *
 * The header travels with the blob, so whoever can write the file can rewrite it.
 * Authenticating it as AAD makes any rewrite fail to decrypt, and the iteration count is
 * bounded from the header alone, BEFORE any derivation: fewer than the minimum means the blob
 * was not made under Crate's policy (a weakly protected backup must not be trusted as a
 * valid one), and billions would hold a thread-pool thread for hours.
 */

export const MIN_PBKDF2_ITERATIONS = 600_000;
export const MAX_PBKDF2_ITERATIONS = 10_000_000;
export const DEFAULT_PBKDF2_ITERATIONS = MIN_PBKDF2_ITERATIONS;

const MAGIC_0 = 0x43; // 'C'
const MAGIC_1 = 0x50; // 'P'
const FORMAT_VERSION = 1;
const KDF_PBKDF2_HMAC_SHA256 = 1;
const SALT_BYTES = 16;
const HEADER_BYTES = 2 + 1 + 1 + 4 + SALT_BYTES;
const MIN_BLOB_BYTES = HEADER_BYTES + AEAD_NONCE_BYTES + AEAD_TAG_BYTES;

export interface PassphraseOptions {
  /** PBKDF2 iterations, MIN_PBKDF2_ITERATIONS..MAX_PBKDF2_ITERATIONS; default 600,000. */
  iterations?: number;
}

export async function encryptWithPassphrase(
  plaintext: Uint8Array,
  passphrase: string | Uint8Array,
  opts: PassphraseOptions = {},
): Promise<Buffer> {
  assertBytes(plaintext, 'plaintext');
  const iterations = opts.iterations ?? DEFAULT_PBKDF2_ITERATIONS;
  assertInteger(iterations, 'iterations', MIN_PBKDF2_ITERATIONS, MAX_PBKDF2_ITERATIONS);
  const passphraseBytes = passphraseToBytes(passphrase);

  const header = Buffer.alloc(HEADER_BYTES);
  header[0] = MAGIC_0;
  header[1] = MAGIC_1;
  header[2] = FORMAT_VERSION;
  header[3] = KDF_PBKDF2_HMAC_SHA256;
  header.writeUInt32BE(iterations, 4);
  randomBytes(SALT_BYTES).copy(header, 8);

  let key: Buffer | undefined;
  try {
    key = await derive(passphraseBytes, header.subarray(8, HEADER_BYTES), iterations);
    const { nonce, ciphertext, tag } = aeadEncrypt(key, plaintext, header);
    return Buffer.concat([header, nonce, ciphertext, tag]);
  } finally {
    // The derived key and our UTF-8 copy of the passphrase. JavaScript gives no guarantee
    // that no other copy exists (and a passphrase string cannot be wiped at all).
    zeroize(key, passphraseBytes);
  }
}

/**
 * Opens a blob from encryptWithPassphrase. A wrong passphrase and any tampering fail with the
 * one ERR_DECRYPT. A header naming a format version or KDF this code does not know fails with
 * ERR_FORMAT_UNSUPPORTED; iterations outside 600,000..10,000,000 fail with
 * ERR_KDF_PARAMS_REJECTED. Both are decided from the header alone, before any key derivation.
 */
export async function decryptWithPassphrase(
  blob: Uint8Array,
  passphrase: string | Uint8Array,
): Promise<Buffer> {
  assertBytes(blob, 'blob');
  const passphraseBytes = passphraseToBytes(passphrase);
  let key: Buffer | undefined;
  try {
    if (blob.length < MIN_BLOB_BYTES || blob[0] !== MAGIC_0 || blob[1] !== MAGIC_1) {
      throw decryptError();
    }
    if (blob[2] !== FORMAT_VERSION) {
      throw new CrateError(
        'ERR_FORMAT_UNSUPPORTED',
        `passphrase-encrypted data has format version ${blob[2]}; this version of Crate reads version ${FORMAT_VERSION}`,
      );
    }
    if (blob[3] !== KDF_PBKDF2_HMAC_SHA256) {
      throw new CrateError(
        'ERR_FORMAT_UNSUPPORTED',
        `passphrase-encrypted data names key derivation function ${blob[3]}; only 1 (PBKDF2-HMAC-SHA-256) is supported`,
      );
    }
    const view = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
    const iterations = view.readUInt32BE(4);
    if (iterations < MIN_PBKDF2_ITERATIONS || iterations > MAX_PBKDF2_ITERATIONS) {
      throw new CrateError(
        'ERR_KDF_PARAMS_REJECTED',
        `passphrase-encrypted data asks for ${iterations} PBKDF2 iterations; ` +
          `accepted are ${MIN_PBKDF2_ITERATIONS} to ${MAX_PBKDF2_ITERATIONS}`,
      );
    }
    const header = view.subarray(0, HEADER_BYTES);
    const nonce = view.subarray(HEADER_BYTES, HEADER_BYTES + AEAD_NONCE_BYTES);
    const ciphertext = view.subarray(HEADER_BYTES + AEAD_NONCE_BYTES, view.length - AEAD_TAG_BYTES);
    const tag = view.subarray(view.length - AEAD_TAG_BYTES);

    key = await derive(passphraseBytes, header.subarray(8), iterations);
    return aeadDecrypt(key, nonce, ciphertext, tag, header);
  } finally {
    // JavaScript gives no guarantee that no other copy of these bytes exists.
    zeroize(key, passphraseBytes);
  }
}

/**
 * A fresh byte copy of the passphrase (so that zeroing it never touches the caller's buffer).
 * Strings are normalized to NFC first, so that the same passphrase typed on systems that
 * compose accents differently (macOS input methods often produce NFD) derives the same key.
 * Strings with lone surrogates are refused: UTF-8 encoding would silently replace them with
 * U+FFFD, making distinct passphrases equal.
 */
function passphraseToBytes(passphrase: string | Uint8Array): Buffer {
  if (typeof passphrase === 'string') {
    if (/\p{Surrogate}/u.test(passphrase)) {
      throw new TypeError('passphrase must be well-formed Unicode (it contains a lone surrogate)');
    }
    if (passphrase.length === 0) {
      throw new RangeError('passphrase must not be empty');
    }
    return Buffer.from(passphrase.normalize('NFC'), 'utf8');
  }
  assertBytes(passphrase, 'passphrase');
  if (passphrase.length === 0) {
    throw new RangeError('passphrase must not be empty');
  }
  return Buffer.from(passphrase);
}

/** PBKDF2 on the libuv thread pool, so that a 600,000-iteration derivation never blocks the event loop. */
function derive(passphrase: Uint8Array, salt: Uint8Array, iterations: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    pbkdf2(passphrase, salt, iterations, AEAD_KEY_BYTES, 'sha256', (error, key) => {
      if (error) {
        reject(error);
      } else {
        resolve(key);
      }
    });
  });
}
