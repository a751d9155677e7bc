import { createHash, createHmac, randomBytes } from 'node:crypto';
import { CrateError, type ErrorCode } from './errors.js';
import { encodeLengthPrefixed, isWellFormedString, type LengthPrefixedValue } from './lib/aad.js';
import { assertBytes, assertInteger } from './lib/assert.js';
import { decodeBase64, encodeBase64 } from './lib/base64url.js';
import { constantTimeEqual, zeroize } from './sensitive.js';
import { combineShares, SHAMIR_MAX_SHARES, SHAMIR_MIN_THRESHOLD, splitSecret } from './shamir.js';

/**
 * Shamir shares of a master key, one self-describing JSON file per share holder.
 *
 * Raw Shamir shares carry no integrity, so each file adds two checks:
 * - `checksum`: SHA-256 over every other field, truncated to 128 bits. It catches a damaged
 *   file (a flipped byte, a bad copy, a truncated paste) at parse time, naming the file,
 *   before any combining. It is not a MAC: whoever edits a file on purpose can recompute it.
 * - `keyCheck`: HMAC-SHA-256 keyed with the secret over the split id, truncated to 128 bits,
 *   compared after combining. It catches what the checksum cannot: shares from a different
 *   split that happen to agree on the metadata, too few genuine shares, or a share altered
 *   deliberately (Shamir is linear, so an altered share shifts the result by an amount the
 *   forger can choose, but cannot produce the HMAC of the shifted secret without the secret).
 *   Recovery therefore never returns a wrong key.
 *
 * The keyCheck is in every file, so one share holder learns a 128-bit function of the secret:
 * that lets them test guesses of the whole secret. For a 256-bit random master key this is
 * useless (2^256 guesses); it would NOT be acceptable for a low-entropy secret such as a
 * password, which is why createShareFiles refuses secrets shorter than 16 bytes and why the
 * split is meant for random key material only.
 */

export const SHARE_FILE_FORMAT = 'crate-key-share';
export const SHARE_FILE_FORMAT_VERSION = 1;
/** createShareFiles splits key material only; see the keyCheck note above. */
export const SHARE_FILE_MIN_SECRET_BYTES = 16;
export const SHARE_FILE_MAX_LABEL_LENGTH = 256;

const KEY_CHECK_DOMAIN = 'crate/share-key-check/v1';
const CHECKSUM_DOMAIN = 'crate/share-file/v1';
const DIGEST_TRUNCATED_BYTES = 16;
const SPLIT_ID_BYTES = 16;
const HEX_128 = /^[0-9a-f]{32}$/;
// A UTF-8 byte order mark, as some editors write, is skipped; any invalid sequence is refused
// (a lenient decoder would turn a damaged byte into U+FFFD and hide where the damage is).
const UTF8_STRICT = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

export interface ShareFile {
  format: 'crate-key-share';
  formatVersion: 1;
  /** 16 random bytes, lowercase hex: the same in every file of one split. */
  splitId: string;
  threshold: number;
  shares: number;
  /** 1..shares, this file's position in the split (not the Shamir x coordinate). */
  index: number;
  /** lowercase hex, 16 bytes; see the module comment. */
  keyCheck: string;
  /** padded base64 of the Vault-layout share (y bytes || x byte). */
  share: string;
  /** lowercase hex, 16 bytes; see the module comment. */
  checksum: string;
  /** Free text shown to share holders, e.g. "crate prod master key, 2025-03". */
  label?: string;
}

export interface CreateShareFilesOptions {
  shares: number;
  threshold: number;
  label?: string;
}

const REQUIRED_KEYS = [
  'format',
  'formatVersion',
  'splitId',
  'threshold',
  'shares',
  'index',
  'keyCheck',
  'share',
  'checksum',
] as const;

/** Splits `secret` (random key material, at least 16 bytes) into `shares` files, any `threshold` of which recover it. */
export function createShareFiles(
  secret: Uint8Array,
  options: CreateShareFilesOptions,
): ShareFile[] {
  assertBytes(secret, 'secret');
  if (secret.length < SHARE_FILE_MIN_SECRET_BYTES) {
    throw new RangeError(
      `secret must be at least ${SHARE_FILE_MIN_SECRET_BYTES} bytes of key material (the key check would make a short secret guessable)`,
    );
  }
  const { shares, threshold, label } = options;
  assertInteger(threshold, 'threshold', SHAMIR_MIN_THRESHOLD, SHAMIR_MAX_SHARES);
  assertInteger(shares, 'shares', threshold, SHAMIR_MAX_SHARES);
  if (label !== undefined) {
    const problem = labelProblem(label);
    if (problem) {
      throw new TypeError(problem);
    }
  }

  const splitId = randomBytes(SPLIT_ID_BYTES).toString('hex');
  const keyCheck = computeKeyCheck(secret, splitId);
  const rawShares = splitSecret(secret, shares, threshold);
  try {
    return rawShares.map((raw, i) => {
      const unsigned: Omit<ShareFile, 'checksum'> = {
        format: SHARE_FILE_FORMAT,
        formatVersion: SHARE_FILE_FORMAT_VERSION,
        splitId,
        threshold,
        shares,
        index: i + 1,
        keyCheck,
        share: encodeBase64(raw),
        ...(label === undefined ? {} : { label }),
      };
      return { ...unsigned, checksum: computeChecksum(unsigned) };
    });
  } finally {
    // The base64 strings now hold the shares; these buffers are extra copies. JavaScript gives
    // no guarantee that no other copy exists, and strings cannot be wiped.
    zeroize(...rawShares);
  }
}

/** Pretty-printed JSON with a fixed key order and a trailing newline, for a human-handled file. */
export function encodeShareFile(file: ShareFile): string {
  const problem = shareFileProblem(file);
  if (problem) {
    throw new TypeError(`not a valid share file: ${problem.message}`);
  }
  const ordered: Record<string, unknown> = {};
  for (const key of REQUIRED_KEYS) {
    if (key === 'checksum' && file.label !== undefined) {
      ordered.label = file.label;
    }
    ordered[key] = file[key];
  }
  return `${JSON.stringify(ordered, null, 2)}\n`;
}

/**
 * Parses and checks one share file: exact fields and types, canonical base64 and hex, and the
 * checksum. Anything wrong is ERR_SHARE_CORRUPT with a message saying what (a share file is
 * not secret by itself, so the message may be specific); a newer formatVersion is
 * ERR_FORMAT_UNSUPPORTED.
 */
export function parseShareFile(text: string | Uint8Array): ShareFile {
  let decoded: string;
  if (typeof text === 'string') {
    decoded = text;
  } else if (text instanceof Uint8Array) {
    try {
      decoded = UTF8_STRICT.decode(text);
    } catch {
      throw new CrateError('ERR_SHARE_CORRUPT', 'share file is not valid UTF-8');
    }
  } else {
    throw new TypeError('a share file must be given as a string or bytes');
  }
  let value: unknown;
  try {
    value = JSON.parse(decoded);
  } catch {
    // No cause: V8's message quotes part of the text, which holds a share.
    throw new CrateError('ERR_SHARE_CORRUPT', 'share file is not valid JSON');
  }
  const problem = shareFileProblem(value);
  if (problem) {
    throw new CrateError(problem.code, problem.message);
  }
  return value as ShareFile;
}

/**
 * Recovers the secret. Each file is checked again (checksum included), then:
 * files of different splits, or two files with the same index -> ERR_SHARES_MISMATCHED;
 * fewer distinct files than the threshold -> ERR_SHARES_INSUFFICIENT; a result whose key
 * check does not match -> ERR_SHARE_CORRUPT. A wrong key is never returned.
 */
export function recoverFromShareFiles(files: readonly ShareFile[]): Buffer {
  if (!Array.isArray(files)) {
    throw new TypeError('files must be an array of share files');
  }
  files.forEach((file, i) => {
    const problem = shareFileProblem(file);
    if (problem) {
      throw new CrateError(problem.code, `share file ${i + 1}: ${problem.message}`);
    }
  });
  const first = files[0];
  if (first === undefined) {
    throw new CrateError('ERR_SHARES_INSUFFICIENT', 'no share files given');
  }
  for (const file of files) {
    if (
      file.splitId !== first.splitId ||
      file.threshold !== first.threshold ||
      file.shares !== first.shares ||
      file.keyCheck !== first.keyCheck
    ) {
      throw new CrateError(
        'ERR_SHARES_MISMATCHED',
        'the share files come from different splits (split id, threshold, share count or key check differ)',
      );
    }
  }
  const indexes = new Set<number>();
  for (const file of files) {
    if (indexes.has(file.index)) {
      throw new CrateError('ERR_SHARES_MISMATCHED', `share ${file.index} was given more than once`);
    }
    indexes.add(file.index);
  }
  if (files.length < first.threshold) {
    throw new CrateError(
      'ERR_SHARES_INSUFFICIENT',
      `${files.length} of the ${first.threshold} shares needed were given`,
    );
  }

  // Decoded shares are secret-equivalent once `threshold` of them are together.
  const raw = files.map((file) => decodeBase64(file.share)!);
  let secret: Buffer | undefined;
  try {
    secret = combineShares(raw);
    const expected = Buffer.from(first.keyCheck, 'hex');
    const actual = Buffer.from(computeKeyCheck(secret, first.splitId), 'hex');
    if (!constantTimeEqual(actual, expected)) {
      throw new CrateError(
        'ERR_SHARE_CORRUPT',
        'the recovered key does not match the key check: at least one share is damaged or altered',
      );
    }
    const recovered = secret;
    secret = undefined;
    return recovered;
  } finally {
    // A wrong result is zeroed too; JavaScript gives no guarantee that no other copy exists.
    zeroize(secret, ...raw);
  }
}

/** hex(HMAC-SHA-256(key = secret, lp("crate/share-key-check/v1") || lp(splitId))[0..16]) */
function computeKeyCheck(secret: Uint8Array, splitId: string): string {
  return createHmac('sha256', secret)
    .update(encodeLengthPrefixed([KEY_CHECK_DOMAIN, splitId]))
    .digest()
    .subarray(0, DIGEST_TRUNCATED_BYTES)
    .toString('hex');
}

/**
 * hex(SHA-256(lp("crate/share-file/v1") || for each field but checksum, in the order
 * format, formatVersion, splitId, threshold, shares, index, keyCheck, share[, label]:
 * lp(name) || lp(value))[0..16]); label contributes only when present.
 */
function computeChecksum(file: Omit<ShareFile, 'checksum'>): string {
  const parts: LengthPrefixedValue[] = [CHECKSUM_DOMAIN];
  for (const key of REQUIRED_KEYS) {
    if (key !== 'checksum') {
      parts.push(key, file[key]);
    }
  }
  if (file.label !== undefined) {
    parts.push('label', file.label);
  }
  return createHash('sha256')
    .update(encodeLengthPrefixed(parts))
    .digest()
    .subarray(0, DIGEST_TRUNCATED_BYTES)
    .toString('hex');
}

interface Problem {
  code: ErrorCode;
  message: string;
}

function corrupt(message: string): Problem {
  return { code: 'ERR_SHARE_CORRUPT', message };
}

function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

function labelProblem(label: unknown): string | undefined {
  if (
    typeof label !== 'string' ||
    label.length === 0 ||
    label.length > SHARE_FILE_MAX_LABEL_LENGTH ||
    !isWellFormedString(label)
  ) {
    return `label must be a non-empty, well-formed string of at most ${SHARE_FILE_MAX_LABEL_LENGTH} characters`;
  }
  return undefined;
}

/** Everything a share file must satisfy, checked in order; undefined when it is valid. */
function shareFileProblem(value: unknown): Problem | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return corrupt('share file must be a JSON object');
  }
  const file = value as Record<string, unknown>;
  if (file.format !== SHARE_FILE_FORMAT) {
    return corrupt(`format must be "${SHARE_FILE_FORMAT}"`);
  }
  if (isIntegerIn(file.formatVersion, 2, Number.MAX_SAFE_INTEGER)) {
    return {
      code: 'ERR_FORMAT_UNSUPPORTED',
      message: `share file format version ${file.formatVersion} is newer than this version of Crate reads (${SHARE_FILE_FORMAT_VERSION})`,
    };
  }
  if (file.formatVersion !== SHARE_FILE_FORMAT_VERSION) {
    return corrupt(`formatVersion must be ${SHARE_FILE_FORMAT_VERSION}`);
  }
  for (const key of Object.keys(file)) {
    if (!(REQUIRED_KEYS as readonly string[]).includes(key) && key !== 'label') {
      return corrupt(`unexpected field "${key}"`);
    }
  }
  for (const key of REQUIRED_KEYS) {
    if (!Object.hasOwn(file, key)) {
      return corrupt(`missing field "${key}"`);
    }
  }
  if (typeof file.splitId !== 'string' || !HEX_128.test(file.splitId)) {
    return corrupt('splitId must be 32 lowercase hex characters');
  }
  if (!isIntegerIn(file.threshold, SHAMIR_MIN_THRESHOLD, SHAMIR_MAX_SHARES)) {
    return corrupt(
      `threshold must be an integer from ${SHAMIR_MIN_THRESHOLD} to ${SHAMIR_MAX_SHARES}`,
    );
  }
  if (!isIntegerIn(file.shares, file.threshold, SHAMIR_MAX_SHARES)) {
    return corrupt(`shares must be an integer from threshold to ${SHAMIR_MAX_SHARES}`);
  }
  if (!isIntegerIn(file.index, 1, file.shares)) {
    return corrupt('index must be an integer from 1 to shares');
  }
  if (typeof file.keyCheck !== 'string' || !HEX_128.test(file.keyCheck)) {
    return corrupt('keyCheck must be 32 lowercase hex characters');
  }
  const share = decodeBase64(file.share);
  if (share === undefined || share.length < SHARE_FILE_MIN_SECRET_BYTES + 1) {
    return corrupt('share must be canonical base64 of at least 17 bytes');
  }
  const x = share[share.length - 1];
  zeroize(share);
  if (x === 0) {
    return corrupt('share has the invalid x coordinate 0');
  }
  if (file.label !== undefined) {
    const problem = labelProblem(file.label);
    if (problem) {
      return corrupt(problem);
    }
  }
  if (typeof file.checksum !== 'string' || !HEX_128.test(file.checksum)) {
    return corrupt('checksum must be 32 lowercase hex characters');
  }
  const expected = computeChecksum(file as unknown as Omit<ShareFile, 'checksum'>);
  if (!constantTimeEqual(expected, file.checksum)) {
    return corrupt('checksum does not match: the file is damaged');
  }
  return undefined;
}
