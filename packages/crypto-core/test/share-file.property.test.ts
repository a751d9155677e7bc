import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createShareFiles,
  encodeShareFile,
  isCrateError,
  parseShareFile,
  recoverFromShareFiles,
  type ShareFile,
} from '../src/index.js';
import { documentedShareChecksum, flipBit } from './lib/documented.js';

/** The code of the CrateError `fn` throws; a test fails when it returns instead. */
function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (isCrateError(error)) {
      return error.code;
    }
    throw error;
  }
  throw new Error('expected a CrateError, but the call returned');
}

/** k <= n <= 10, the files of the split in a random order, and a 16..64-byte secret. */
const splits = fc
  .record({
    secret: fc.uint8Array({ minLength: 16, maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
    threshold: fc.integer({ min: 2, max: 10 }),
    extra: fc.integer({ min: 0, max: 4 }),
    label: fc.option(fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }), {
      nil: undefined,
    }),
  })
  .chain(({ secret, threshold, extra, label }) => {
    const shares = Math.min(threshold + extra, 10);
    const indexes = Array.from({ length: shares }, (_, i) => i);
    return fc.shuffledSubarray(indexes, { minLength: shares, maxLength: shares }).map((order) => {
      const files = createShareFiles(secret, {
        shares,
        threshold,
        ...(label === undefined ? {} : { label }),
      });
      return { secret, threshold, shares, files: order.map((i) => files[i]!) };
    });
  });

/** What a share holder hands over: the file as text, read back. */
const roundTrip = (file: ShareFile): ShareFile => parseShareFile(encodeShareFile(file));

describe('share file properties', () => {
  it('recovers the secret from any threshold-sized subset of the files, read back from text', () => {
    fc.assert(
      fc.property(splits, ({ secret, threshold, files }) => {
        const chosen = files.slice(0, threshold).map(roundTrip);
        expect(recoverFromShareFiles(chosen).equals(secret)).toBe(true);
        expect(recoverFromShareFiles(files).equals(secret)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('reports any subset one file short of the threshold as insufficient', () => {
    fc.assert(
      fc.property(splits, ({ threshold, files }) => {
        expect(errorCode(() => recoverFromShareFiles(files.slice(0, threshold - 1)))).toBe(
          'ERR_SHARES_INSUFFICIENT',
        );
      }),
      { numRuns: 150 },
    );
  });

  it('reports a file of another split of the same secret among the files as mismatched', () => {
    fc.assert(
      fc.property(splits, fc.nat(), ({ secret, threshold, shares, files }, at) => {
        const other = createShareFiles(secret, { shares, threshold });
        const chosen = files.slice(0, threshold);
        const position = at % threshold;
        chosen[position] = other[position]!;
        expect(errorCode(() => recoverFromShareFiles(chosen))).toBe('ERR_SHARES_MISMATCHED');
      }),
      { numRuns: 100 },
    );
  });

  it('reports a file given twice as mismatched instead of counting it twice', () => {
    fc.assert(
      fc.property(splits, fc.nat(), fc.nat(), ({ threshold, files }, from, to) => {
        const chosen = files.slice(0, threshold);
        chosen[to % threshold] = chosen[(to + 1 + (from % (threshold - 1))) % threshold]!;
        expect(errorCode(() => recoverFromShareFiles(chosen))).toBe('ERR_SHARES_MISMATCHED');
      }),
      { numRuns: 100 },
    );
  });

  it('never returns a wrong key when any byte of a share is altered and the checksum recomputed', () => {
    fc.assert(
      fc.property(
        splits,
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        ({ threshold, files }, which, at, delta) => {
          const chosen = files.slice(0, threshold);
          const victim = chosen[which % threshold]!;
          const raw = Buffer.from(victim.share, 'base64');
          // Any byte but the x coordinate (changing that one is caught as mismatched or corrupt too).
          raw[at % (raw.length - 1)]! ^= delta;
          const altered = { ...victim, share: raw.toString('base64') };
          chosen[which % threshold] = { ...altered, checksum: documentedShareChecksum(altered) };
          expect(errorCode(() => recoverFromShareFiles(chosen))).toBe('ERR_SHARE_CORRUPT');
        },
      ),
      { numRuns: 150 },
    );
  });

  it('refuses a share file with any single bit of its serialized text flipped', () => {
    fc.assert(
      fc.property(splits, fc.nat(), fc.nat(), ({ files }, which, bit) => {
        const text = Buffer.from(encodeShareFile(files[which % files.length]!), 'utf8');
        expect(['ERR_SHARE_CORRUPT', 'ERR_FORMAT_UNSUPPORTED']).toContain(
          errorCode(() => parseShareFile(flipBit(text, bit))),
        );
      }),
      { numRuns: 500 },
    );
  });

  it('refuses every one of the single-bit flips of one labelled share file', () => {
    const file = createShareFiles(Buffer.alloc(32, 0x42), {
      shares: 5,
      threshold: 3,
      label: 'prod master key, 2025-03 — ops',
    })[2]!;
    const text = Buffer.from(encodeShareFile(file), 'utf8');
    const codes = new Map<string, number>();
    for (let bit = 0; bit < text.length * 8; bit++) {
      const code = errorCode(() => parseShareFile(flipBit(text, bit)));
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    expect([...codes.keys()].sort()).toEqual(['ERR_FORMAT_UNSUPPORTED', 'ERR_SHARE_CORRUPT']);
    expect([...codes.values()].reduce((a, b) => a + b)).toBe(text.length * 8);
  });
});
