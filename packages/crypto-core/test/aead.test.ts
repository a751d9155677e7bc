import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  AEAD_TAG_BYTES,
  aeadDecrypt,
  aeadEncryptWithNonce,
  aeadOpen,
  aeadSeal,
  DECRYPT_FAILED_MESSAGE,
  isCrateError,
} from '../src/index.js';

interface AeadTest {
  tcId: number;
  comment: string;
  flags: string[];
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
  result: 'valid' | 'invalid' | 'acceptable';
}

interface AeadGroup {
  type: string;
  keySize: number;
  ivSize: number;
  tagSize: number;
  tests: AeadTest[];
}

interface AeadFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: AeadGroup[];
}

const vectors = JSON.parse(
  readFileSync(new URL('./fixtures/wycheproof/aes_gcm_test.json', import.meta.url), 'utf8'),
) as AeadFile;

const bytes = (value: string): Buffer => Buffer.from(value, 'hex');

function expectDecryptError(fn: () => unknown): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(isCrateError(caught, 'ERR_DECRYPT')).toBe(true);
  expect((caught as Error).message).toBe(DECRYPT_FAILED_MESSAGE);
}

function casesWhere(predicate: (group: AeadGroup, test: AeadTest) => boolean) {
  return vectors.testGroups.flatMap((group) =>
    group.tests.filter((test) => predicate(group, test)).map((test) => ({ group, test })),
  );
}

const supported = (group: AeadGroup): boolean =>
  group.keySize === 256 && group.ivSize === 96 && group.tagSize === 128;

describe('AES-256-GCM against Wycheproof aes_gcm_test.json', () => {
  it('loads the whole vector file', () => {
    expect(vectors.algorithm).toBe('AES-GCM');
    expect(vectors.testGroups.flatMap((group) => group.tests)).toHaveLength(vectors.numberOfTests);
    expect(vectors.numberOfTests).toBe(316);
  });

  it('reproduces every valid 256-bit-key, 96-bit-IV case exactly, in both directions', () => {
    const cases = casesWhere((group, test) => supported(group) && test.result === 'valid');
    expect(cases).toHaveLength(39);
    for (const { test } of cases) {
      const sealed = aeadEncryptWithNonce(
        bytes(test.key),
        bytes(test.iv),
        bytes(test.msg),
        bytes(test.aad),
      );
      expect(sealed.ciphertext.toString('hex'), `tcId ${test.tcId}`).toBe(test.ct);
      expect(sealed.tag.toString('hex'), `tcId ${test.tcId}`).toBe(test.tag);
      const opened = aeadDecrypt(
        bytes(test.key),
        bytes(test.iv),
        bytes(test.ct),
        bytes(test.tag),
        bytes(test.aad),
      );
      expect(opened.toString('hex'), `tcId ${test.tcId}`).toBe(test.msg);
    }
  });

  it('rejects every invalid 256-bit-key, 96-bit-IV case with ERR_DECRYPT', () => {
    const cases = casesWhere((group, test) => supported(group) && test.result === 'invalid');
    expect(cases).toHaveLength(27);
    for (const { test } of cases) {
      expectDecryptError(() =>
        aeadDecrypt(
          bytes(test.key),
          bytes(test.iv),
          bytes(test.ct),
          bytes(test.tag),
          bytes(test.aad),
        ),
      );
    }
  });

  it('opens every valid case and rejects every invalid one through aeadOpen (nonce || ct || tag)', () => {
    const cases = casesWhere((group) => supported(group));
    expect(cases).toHaveLength(66);
    for (const { test } of cases) {
      const sealed = Buffer.concat([bytes(test.iv), bytes(test.ct), bytes(test.tag)]);
      if (test.result === 'valid') {
        expect(aeadOpen(bytes(test.key), sealed, bytes(test.aad)).toString('hex')).toBe(test.msg);
      } else {
        expectDecryptError(() => aeadOpen(bytes(test.key), sealed, bytes(test.aad)));
      }
    }
  });

  it('fails every valid case once its AAD is extended by a byte, or dropped when it was not empty', () => {
    const cases = casesWhere((group, test) => supported(group) && test.result === 'valid');
    let withAad = 0;
    for (const { test } of cases) {
      const open = (aad: Buffer) => () =>
        aeadDecrypt(bytes(test.key), bytes(test.iv), bytes(test.ct), bytes(test.tag), aad);
      expectDecryptError(open(Buffer.concat([bytes(test.aad), Buffer.of(0)])));
      if (test.aad !== '') {
        withAad++;
        expectDecryptError(open(Buffer.alloc(0)));
      }
    }
    expect(withAad).toBeGreaterThan(10);
  });

  it('has no acceptable cases that this test would silently skip', () => {
    expect(casesWhere((_, test) => test.result === 'acceptable')).toHaveLength(0);
  });

  it('rejects every 256-bit-key case whose IV is not 96 bits, valid or not, with ERR_DECRYPT', () => {
    const cases = casesWhere((group) => group.keySize === 256 && group.ivSize !== 96);
    expect(cases).toHaveLength(39);
    expect(new Set(cases.map(({ group }) => group.ivSize)).size).toBeGreaterThanOrEqual(10);
    for (const { test } of cases) {
      expectDecryptError(() =>
        aeadDecrypt(
          bytes(test.key),
          bytes(test.iv),
          bytes(test.ct),
          bytes(test.tag),
          bytes(test.aad),
        ),
      );
      expect(() =>
        aeadEncryptWithNonce(bytes(test.key), bytes(test.iv), bytes(test.msg), bytes(test.aad)),
      ).toThrow(RangeError);
    }
  });

  it('refuses 128- and 192-bit keys as a programming error (RangeError)', () => {
    const cases = casesWhere((group) => group.keySize !== 256);
    expect(cases).toHaveLength(211);
    for (const { test } of cases) {
      expect(() =>
        aeadDecrypt(
          bytes(test.key),
          bytes(test.iv),
          bytes(test.ct),
          bytes(test.tag),
          bytes(test.aad),
        ),
      ).toThrow(RangeError);
    }
  });

  it('rejects every valid case once its tag is truncated to fewer than 128 bits', () => {
    const cases = casesWhere((group, test) => supported(group) && test.result === 'valid');
    let rejected = 0;
    for (const { test } of cases) {
      for (const tagBytes of [15, 12, 8, 4, 0]) {
        expectDecryptError(() =>
          aeadDecrypt(
            bytes(test.key),
            bytes(test.iv),
            bytes(test.ct),
            bytes(test.tag).subarray(0, tagBytes),
            bytes(test.aad),
          ),
        );
        rejected++;
      }
    }
    expect(rejected).toBe(39 * 5);
  });

  it('rejects a tag longer than 128 bits', () => {
    const [first] = casesWhere((group, test) => supported(group) && test.result === 'valid');
    const test = first!.test;
    expectDecryptError(() =>
      aeadDecrypt(
        bytes(test.key),
        bytes(test.iv),
        bytes(test.ct),
        Buffer.concat([bytes(test.tag), Buffer.of(0)]),
        bytes(test.aad),
      ),
    );
  });
});

describe('aeadOpen on nonce || ciphertext || tag', () => {
  const key = Buffer.alloc(32, 7);
  const aad = Buffer.from('context');

  it('rejects every input too short to hold a nonce and a tag with ERR_DECRYPT', () => {
    for (let length = 0; length < 12 + AEAD_TAG_BYTES; length++) {
      expectDecryptError(() => aeadOpen(key, Buffer.alloc(length), aad));
    }
  });

  it('rejects a sealed value with any number of bytes cut off the end', () => {
    const sealed = aeadSeal(key, Buffer.from('attack at dawn'), aad);
    expect(aeadOpen(key, sealed, aad).toString()).toBe('attack at dawn');
    for (let cut = 1; cut <= sealed.length; cut++) {
      expectDecryptError(() => aeadOpen(key, sealed.subarray(0, sealed.length - cut), aad));
    }
  });

  it('rejects a sealed value with bytes cut off the front', () => {
    const sealed = aeadSeal(key, Buffer.from('attack at dawn'), aad);
    for (let cut = 1; cut <= sealed.length; cut++) {
      expectDecryptError(() => aeadOpen(key, sealed.subarray(cut), aad));
    }
  });

  it('opens an empty plaintext, which is exactly a nonce and a tag', () => {
    const sealed = aeadSeal(key, Buffer.alloc(0), aad);
    expect(sealed).toHaveLength(12 + AEAD_TAG_BYTES);
    expect(aeadOpen(key, sealed, aad)).toHaveLength(0);
  });
});
