import { readFileSync } from 'node:fs';
import { combine, split } from 'shamir-secret-sharing';
import { describe, expect, it } from 'vitest';
import { combineShares, isCrateError, splitSecret } from '../src/index.js';
import { gfDiv, gfEvaluate, gfInv, gfMul } from '../src/lib/gf256.js';

interface ShamirKat {
  secretHex: string;
  threshold: number;
  shares: string[];
}

const kat = JSON.parse(
  readFileSync(new URL('./fixtures/shamir-kat.json', import.meta.url), 'utf8'),
) as ShamirKat;
const katShares = kat.shares.map((hex) => Buffer.from(hex, 'hex'));
const katSecret = Buffer.from(kat.secretHex, 'hex');

/** shamir-secret-sharing checks `constructor === Uint8Array`, so it refuses Buffers. */
function plain(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

function expectCode(fn: () => unknown, code: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(isCrateError(caught), `expected a CrateError ${code}, got ${String(caught)}`).toBe(true);
  expect((caught as { code: string }).code).toBe(code);
}

/** Reference multiplication: the textbook bit-by-bit product reduced modulo 0x11b. */
function slowMul(a: number, b: number): number {
  let product = 0;
  for (let bit = 0; bit < 8; bit++) {
    if ((b >> bit) & 1) {
      product ^= a << bit;
    }
  }
  for (let bit = 14; bit >= 8; bit--) {
    if ((product >> bit) & 1) {
      product ^= 0x11b << (bit - 8);
    }
  }
  return product;
}

describe('GF(2^8) arithmetic', () => {
  it('matches the FIPS-197 worked examples {57}·{83} = {c1} and {57}·{13} = {fe}', () => {
    expect(gfMul(0x57, 0x83)).toBe(0xc1);
    expect(gfMul(0x57, 0x13)).toBe(0xfe);
  });

  it('agrees with a textbook reduction modulo 0x11b for every pair of bytes', () => {
    for (let a = 0; a < 256; a++) {
      for (let b = 0; b < 256; b++) {
        if (gfMul(a, b) !== slowMul(a, b)) {
          expect.fail(`gfMul(${a}, ${b}) = ${gfMul(a, b)}, expected ${slowMul(a, b)}`);
        }
      }
    }
  });

  it('inverts every nonzero element, with the AES S-box example {53}^-1 = {ca}', () => {
    expect(gfInv(0x53)).toBe(0xca);
    for (let a = 1; a < 256; a++) {
      expect(gfMul(a, gfInv(a))).toBe(1);
    }
    expect(gfDiv(0xc1, 0x83)).toBe(0x57);
  });

  it('evaluates a polynomial by Horner rule with the constant term first', () => {
    // 0x57 + 0x13·x at x = 2: 0x57 xor ({13}·{02} = {26}) = 0x71
    expect(gfEvaluate(Uint8Array.of(0x57, 0x13), 2)).toBe(0x71);
    expect(gfEvaluate(Uint8Array.of(0x57, 0x13), 0)).toBe(0x57);
  });
});

describe('splitSecret and combineShares', () => {
  it('combines a hand-computed 2-of-2 split of the byte 0x57 with polynomial 0x57 + 0x13·x', () => {
    // x = 1: 0x57 ^ 0x13 = 0x44; x = 2: 0x57 ^ gfMul(0x13, 2) = 0x57 ^ 0x26 = 0x71.
    const shares = [Uint8Array.of(0x44, 0x01), Uint8Array.of(0x71, 0x02)];
    expect(combineShares(shares)).toEqual(Buffer.of(0x57));
    expect(combineShares([shares[1]!, shares[0]!])).toEqual(Buffer.of(0x57));
  });

  it('recovers the committed known-answer secret from every 3 of its 5 shares', () => {
    for (let a = 0; a < 5; a++) {
      for (let b = a + 1; b < 5; b++) {
        for (let c = b + 1; c < 5; c++) {
          const subset = [katShares[a]!, katShares[b]!, katShares[c]!];
          expect(combineShares(subset).toString('hex')).toBe(kat.secretHex);
        }
      }
    }
    expect(combineShares(katShares)).toEqual(katSecret);
  });

  it('does not recover the known-answer secret from 2 of its 3-threshold shares', () => {
    expect(combineShares([katShares[0]!, katShares[1]!])).not.toEqual(katSecret);
  });

  it('produces shares one byte longer than the secret, ending in distinct nonzero x coordinates', () => {
    const secret = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
    const shares = splitSecret(secret, 255, 2);
    expect(shares).toHaveLength(255);
    const xs = new Set(shares.map((share) => share[share.length - 1]));
    expect(xs.size).toBe(255);
    expect(xs.has(0)).toBe(false);
    for (const share of shares) {
      expect(share).toHaveLength(secret.length + 1);
    }
  });

  it('never copies the secret into a share in the clear', () => {
    const secret = Buffer.alloc(64, 0xaa);
    for (const share of splitSecret(secret, 5, 3)) {
      expect(share.subarray(0, 64).equals(secret)).toBe(false);
    }
  });

  it('splits with the largest parameters, 255 of 255, and recovers', () => {
    const secret = Buffer.from('the largest split that Vault layout allows');
    const shares = splitSecret(secret, 255, 255);
    expect(combineShares(shares)).toEqual(secret);
    expect(combineShares(shares.slice(1))).not.toEqual(secret);
  });

  it('refuses a threshold below 2, above the share count, or above 255 with a RangeError', () => {
    const secret = Buffer.alloc(16, 1);
    expect(() => splitSecret(secret, 3, 1)).toThrow(RangeError);
    expect(() => splitSecret(secret, 3, 4)).toThrow(RangeError);
    expect(() => splitSecret(secret, 256, 2)).toThrow(RangeError);
    expect(() => splitSecret(secret, 3, 2.5)).toThrow(RangeError);
    expect(() => splitSecret(secret, Number.NaN, 2)).toThrow(RangeError);
  });

  it('refuses an empty secret with a RangeError and a non-byte secret with a TypeError', () => {
    expect(() => splitSecret(new Uint8Array(0), 3, 2)).toThrow(RangeError);
    expect(() => splitSecret('secret' as unknown as Uint8Array, 3, 2)).toThrow(TypeError);
  });

  it('reports a single share as insufficient', () => {
    expectCode(() => combineShares([katShares[0]!]), 'ERR_SHARES_INSUFFICIENT');
    expectCode(() => combineShares([]), 'ERR_SHARES_INSUFFICIENT');
  });

  it('reports shares of different lengths as mismatched', () => {
    const short = katShares[1]!.subarray(1);
    expectCode(() => combineShares([katShares[0]!, short]), 'ERR_SHARES_MISMATCHED');
  });

  it('reports the same x coordinate twice as mismatched, even when the y bytes differ', () => {
    expectCode(() => combineShares([katShares[0]!, katShares[0]!]), 'ERR_SHARES_MISMATCHED');
    const forged = Buffer.from(katShares[1]!);
    forged[forged.length - 1] = katShares[0]![katShares[0]!.length - 1]!;
    expectCode(() => combineShares([katShares[0]!, forged]), 'ERR_SHARES_MISMATCHED');
  });

  it('reports a share with x coordinate 0 or without any y byte as corrupt', () => {
    const zeroX = Buffer.from(katShares[1]!);
    zeroX[zeroX.length - 1] = 0;
    expectCode(() => combineShares([katShares[0]!, zeroX]), 'ERR_SHARE_CORRUPT');
    expectCode(() => combineShares([Uint8Array.of(1), Uint8Array.of(2)]), 'ERR_SHARE_CORRUPT');
  });

  it('throws a TypeError when the shares are not byte arrays', () => {
    expect(() => combineShares('shares' as unknown as Uint8Array[])).toThrow(TypeError);
    expect(() => combineShares([katShares[0]!, 'x' as unknown as Uint8Array])).toThrow(TypeError);
  });
});

describe('interoperability with shamir-secret-sharing (npm)', () => {
  it('combines the known-answer shares with the other implementation too', async () => {
    const recovered = await combine([katShares[4]!, katShares[0]!, katShares[3]!].map(plain));
    expect(Buffer.from(recovered)).toEqual(katSecret);
  });

  it('lets the other implementation combine shares split here', async () => {
    const secret = Buffer.from('interoperable master key bytes!!');
    const shares = splitSecret(secret, 6, 4);
    const recovered = await combine([shares[5]!, shares[1]!, shares[2]!, shares[4]!].map(plain));
    expect(Buffer.from(recovered)).toEqual(secret);
  });

  it('combines here shares split by the other implementation', async () => {
    const secret = Buffer.from('split elsewhere, combined here');
    const shares = await split(plain(secret), 7, 5);
    expect(combineShares(shares.slice(2))).toEqual(secret);
  });
});
