import fc from 'fast-check';
import { combine, split } from 'shamir-secret-sharing';
import { describe, expect, it } from 'vitest';
import { combineShares, splitSecret } from '../src/index.js';

/** A split with k <= n <= 12 and a subset of the share positions, shuffled. */
const splitParameters = fc
  .integer({ min: 2, max: 12 })
  .chain((threshold) =>
    fc.record({
      threshold: fc.constant(threshold),
      shares: fc.integer({ min: threshold, max: 12 }),
    }),
  )
  .chain(({ threshold, shares }) =>
    fc.record({
      threshold: fc.constant(threshold),
      shares: fc.constant(shares),
      order: fc.shuffledSubarray(
        Array.from({ length: shares }, (_, i) => i),
        { minLength: shares, maxLength: shares },
      ),
    }),
  );

// At least 16 bytes: k-1 shares combine to an unrelated value, which equals the secret with
// probability 2^-8 per byte, so a one-byte secret would make "does not reconstruct" flaky.
const secrets = fc.uint8Array({ minLength: 16, maxLength: 64 });

function plain(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

describe('Shamir properties', () => {
  it('reconstructs the secret from any threshold-sized subset of the shares, in any order', () => {
    fc.assert(
      fc.property(secrets, splitParameters, (secret, { threshold, shares, order }) => {
        const all = splitSecret(secret, shares, threshold);
        const chosen = order.slice(0, threshold).map((i) => all[i]!);
        expect(combineShares(chosen)).toEqual(Buffer.from(secret));
      }),
      { numRuns: 200 },
    );
  });

  it('reconstructs the secret from more shares than the threshold as well', () => {
    fc.assert(
      fc.property(secrets, splitParameters, (secret, { threshold, shares, order }) => {
        const all = splitSecret(secret, shares, threshold);
        expect(combineShares(order.map((i) => all[i]!))).toEqual(Buffer.from(secret));
      }),
      { numRuns: 100 },
    );
  });

  it('does not reconstruct the secret from any subset one share short of the threshold', () => {
    fc.assert(
      fc.property(secrets, splitParameters, (secret, { threshold, shares, order }) => {
        const all = splitSecret(secret, shares, threshold);
        const chosen = order.slice(0, threshold - 1).map((i) => all[i]!);
        if (chosen.length < 2) {
          // A 2-of-n split one share short is a single share, which combineShares refuses.
          expect(() => combineShares(chosen)).toThrow(
            expect.objectContaining({ code: 'ERR_SHARES_INSUFFICIENT' }),
          );
        } else {
          expect(combineShares(chosen)).not.toEqual(Buffer.from(secret));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('splits the same secret into different shares every time', () => {
    fc.assert(
      fc.property(secrets, (secret) => {
        const first = splitSecret(secret, 3, 2);
        const second = splitSecret(secret, 3, 2);
        expect(first.map((s) => s.toString('hex'))).not.toEqual(
          second.map((s) => s.toString('hex')),
        );
      }),
      { numRuns: 50 },
    );
  });

  it('interoperates with shamir-secret-sharing in both directions for any split', async () => {
    await fc.assert(
      fc.asyncProperty(secrets, splitParameters, async (secret, { threshold, shares, order }) => {
        const ours = splitSecret(secret, shares, threshold);
        const chosenOurs = order.slice(0, threshold).map((i) => plain(ours[i]!));
        expect(Buffer.from(await combine(chosenOurs))).toEqual(Buffer.from(secret));

        const theirs = await split(plain(secret), shares, threshold);
        const chosenTheirs = order.slice(0, threshold).map((i) => theirs[i]!);
        expect(combineShares(chosenTheirs)).toEqual(Buffer.from(secret));
      }),
      { numRuns: 100 },
    );
  });
});
