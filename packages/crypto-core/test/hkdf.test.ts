import { hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HKDF_SHA256_MAX_LENGTH, hkdfSha256 } from '../src/index.js';

interface HkdfTest {
  tcId: number;
  comment: string;
  flags: string[];
  ikm: string;
  salt: string;
  info: string;
  size: number;
  okm: string;
  result: 'valid' | 'invalid' | 'acceptable';
}

interface HkdfFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: Array<{ type: string; keySize: number; tests: HkdfTest[] }>;
}

const vectors = JSON.parse(
  readFileSync(new URL('./fixtures/wycheproof/hkdf_sha256_test.json', import.meta.url), 'utf8'),
) as HkdfFile;
const tests = vectors.testGroups.flatMap((group) => group.tests);
const bytes = (value: string): Buffer => Buffer.from(value, 'hex');

describe('hkdfSha256 against Wycheproof hkdf_sha256_test.json', () => {
  it('loads the whole vector file', () => {
    expect(vectors.algorithm).toBe('HKDF-SHA-256');
    expect(tests).toHaveLength(vectors.numberOfTests);
    expect(tests).toHaveLength(86);
  });

  it('derives exactly the expected output for every valid case', () => {
    const valid = tests.filter((test) => test.result === 'valid');
    expect(valid).toHaveLength(83);
    expect(valid.some((test) => test.salt === '')).toBe(true);
    expect(valid.some((test) => test.size === HKDF_SHA256_MAX_LENGTH)).toBe(true);
    for (const test of valid) {
      const okm = hkdfSha256(bytes(test.ikm), bytes(test.salt), bytes(test.info), test.size);
      expect(okm.toString('hex'), `tcId ${test.tcId}`).toBe(test.okm);
    }
  });

  it('refuses every invalid case (more than 255 blocks of output) with a RangeError', () => {
    const invalid = tests.filter((test) => test.result !== 'valid');
    expect(invalid).toHaveLength(3);
    for (const test of invalid) {
      expect(test.flags).toContain('SizeTooLarge');
      expect(() =>
        hkdfSha256(bytes(test.ikm), bytes(test.salt), bytes(test.info), test.size),
      ).toThrow(RangeError);
    }
  });
});

describe('hkdfSha256 arguments', () => {
  it('refuses a zero, fractional or negative output length', () => {
    for (const length of [0, -1, 1.5, Number.NaN]) {
      expect(() => hkdfSha256(Buffer.alloc(32), Buffer.alloc(0), Buffer.alloc(0), length)).toThrow(
        RangeError,
      );
    }
  });

  it('refuses info longer than 1024 bytes and accepts exactly 1024', () => {
    const ikm = Buffer.alloc(32, 1);
    expect(() => hkdfSha256(ikm, Buffer.alloc(0), Buffer.alloc(1025), 32)).toThrow(RangeError);
    expect(
      hkdfSha256(ikm, Buffer.alloc(0), Buffer.alloc(1024), 32).equals(
        Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), Buffer.alloc(1024), 32)),
      ),
    ).toBe(true);
  });

  it('refuses a key given as a string', () => {
    expect(() =>
      hkdfSha256('secret' as unknown as Uint8Array, Buffer.alloc(0), Buffer.alloc(0), 32),
    ).toThrow(TypeError);
  });
});
