import { randomFillSync, randomInt } from 'node:crypto';
import { CrateError } from './errors.js';
import { assertBytes, assertInteger } from './lib/assert.js';
import { gfEvaluate, gfLagrangeAtZero, gfMul } from './lib/gf256.js';
import { zeroize } from './sensitive.js';

/**
 * Shamir's secret sharing over GF(2^8) (polynomial 0x11b), byte by byte, in HashiCorp Vault's
 * share layout: the y values for every secret byte, then one byte holding the share's x
 * coordinate. `shamir-secret-sharing` on npm uses the same field and layout, so shares made by
 * either implementation combine with the other.
 *
 * Raw Shamir has no integrity: k shares of the wrong split, or one damaged share, combine into
 * a wrong secret without any error. Callers that need to know must add a check (share-file.ts
 * does, with a key check and a checksum).
 */

export const SHAMIR_MIN_THRESHOLD = 2;
export const SHAMIR_MAX_SHARES = 255;

/**
 * Splits `secret` into `shares` shares, any `threshold` of which reconstruct it and any fewer
 * reveal nothing about it. Each share is secret.length + 1 bytes.
 */
export function splitSecret(secret: Uint8Array, shares: number, threshold: number): Buffer[] {
  assertBytes(secret, 'secret');
  if (secret.length === 0) {
    throw new RangeError('secret must not be empty');
  }
  assertInteger(threshold, 'threshold', SHAMIR_MIN_THRESHOLD, SHAMIR_MAX_SHARES);
  assertInteger(shares, 'shares', threshold, SHAMIR_MAX_SHARES);

  const xs = distinctRandomCoordinates(shares);
  const result = Array.from(xs, (x) => {
    const share = Buffer.alloc(secret.length + 1);
    share[secret.length] = x;
    return share;
  });
  // coefficients[0] is a secret byte and the others determine it from any share: together they
  // are as sensitive as the secret. Zeroed in `finally`; JavaScript gives no guarantee that the
  // engine kept no other copy.
  const coefficients = new Uint8Array(threshold);
  try {
    for (let byte = 0; byte < secret.length; byte++) {
      coefficients[0] = secret[byte] ?? 0;
      // A fresh uniformly random polynomial of degree < threshold for every byte.
      randomFillSync(coefficients, 1);
      for (let j = 0; j < shares; j++) {
        const share = result[j]!;
        share[byte] = gfEvaluate(coefficients, xs[j]!);
      }
    }
  } finally {
    zeroize(coefficients);
  }
  return result;
}

/**
 * Reconstructs the secret from shares by Lagrange interpolation at x = 0. Every share given is
 * used. Fewer shares than the split's threshold cannot be detected here and yield an unrelated
 * value: use share-file.ts when a wrong result must be impossible.
 *
 * Errors (the shares come from people and files, so these are CrateErrors, not TypeErrors):
 * fewer than two shares -> ERR_SHARES_INSUFFICIENT; unequal lengths or a repeated x
 * coordinate -> ERR_SHARES_MISMATCHED; a share shorter than two bytes or with x = 0 ->
 * ERR_SHARE_CORRUPT.
 */
export function combineShares(shares: readonly Uint8Array[]): Buffer {
  if (!Array.isArray(shares)) {
    throw new TypeError('shares must be an array');
  }
  shares.forEach((share, i) => {
    assertBytes(share, `shares[${i}]`);
  });
  if (shares.length < SHAMIR_MIN_THRESHOLD) {
    throw new CrateError('ERR_SHARES_INSUFFICIENT', 'at least 2 shares are needed to recover');
  }
  const shareLength = shares[0]!.length;
  for (const share of shares) {
    if (share.length < 2) {
      throw new CrateError('ERR_SHARE_CORRUPT', 'a share is too short to hold any secret byte');
    }
    if (share.length !== shareLength) {
      throw new CrateError('ERR_SHARES_MISMATCHED', 'the shares have different lengths');
    }
  }

  const secretLength = shareLength - 1;
  const xs = new Uint8Array(shares.length);
  const seen = new Set<number>();
  shares.forEach((share, i) => {
    const x = share[secretLength]!;
    if (x === 0) {
      throw new CrateError('ERR_SHARE_CORRUPT', 'a share has the invalid x coordinate 0');
    }
    if (seen.has(x)) {
      throw new CrateError('ERR_SHARES_MISMATCHED', 'two shares have the same x coordinate');
    }
    seen.add(x);
    xs[i] = x;
  });

  const basis = gfLagrangeAtZero(xs);
  const secret = Buffer.alloc(secretLength);
  for (let byte = 0; byte < secretLength; byte++) {
    let value = 0;
    for (let j = 0; j < shares.length; j++) {
      value ^= gfMul(basis[j]!, shares[j]![byte]!);
    }
    secret[byte] = value;
  }
  return secret;
}

/** `count` distinct x coordinates drawn uniformly from 1..255 (a partial Fisher-Yates shuffle). */
function distinctRandomCoordinates(count: number): Uint8Array {
  const pool = new Uint8Array(SHAMIR_MAX_SHARES);
  for (let i = 0; i < pool.length; i++) {
    pool[i] = i + 1;
  }
  for (let i = 0; i < count; i++) {
    const j = randomInt(i, pool.length);
    const swap = pool[i]!;
    pool[i] = pool[j]!;
    pool[j] = swap;
  }
  return pool.slice(0, count);
}
