import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  DECRYPT_FAILED_MESSAGE,
  importSealingPrivateKey,
  isCrateError,
  rsaOaepUnwrap,
} from '../src/index.js';

interface OaepTest {
  tcId: number;
  comment: string;
  flags: string[];
  msg: string;
  ct: string;
  label: string;
  result: 'valid' | 'invalid' | 'acceptable';
}

interface OaepGroup {
  type: string;
  keySize: number;
  sha: string;
  mgf: string;
  mgfSha: string;
  privateKeyPkcs8: string;
  tests: OaepTest[];
}

interface OaepFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: OaepGroup[];
}

function load(keySize: number): OaepFile {
  const url = new URL(
    `./fixtures/wycheproof/rsa_oaep_${keySize}_sha256_mgf1sha256_test.json`,
    import.meta.url,
  );
  return JSON.parse(readFileSync(url, 'utf8')) as OaepFile;
}

function unwrapError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe.each([2048, 3072, 4096])(
  'Wycheproof RSA-OAEP-SHA-256/MGF1-SHA-256, %i-bit key',
  (keySize) => {
    const file = load(keySize);
    const groups = file.testGroups;
    const cases = groups.flatMap((group) => group.tests.map((test) => ({ group, test })));
    const valid = cases.filter(({ test }) => test.result === 'valid');
    const invalid = cases.filter(({ test }) => test.result === 'invalid');
    const labelled = valid.filter(({ test }) => test.label.length > 0);

    it('holds the expected number of cases in each class, so that the run cannot pass vacuously', () => {
      expect(groups).toHaveLength(1);
      expect(cases).toHaveLength(file.numberOfTests);
      expect(file.numberOfTests).toBe(37);
      expect(valid).toHaveLength(18);
      expect(invalid).toHaveLength(19);
      expect(labelled).toHaveLength(8);
      expect(cases.filter(({ test }) => test.result === 'acceptable')).toHaveLength(0);
    });

    it('describes the exact parameters rsaOaepUnwrap implements', () => {
      for (const group of groups) {
        expect(group).toMatchObject({
          type: 'RsaesOaepDecrypt',
          keySize,
          sha: 'SHA-256',
          mgf: 'MGF1',
          mgfSha: 'SHA-256',
        });
      }
    });

    it('imports every group key as a sealing private key of the right size', () => {
      for (const group of groups) {
        const key = importSealingPrivateKey(Buffer.from(group.privateKeyPkcs8, 'hex'));
        expect(key.asymmetricKeyDetails?.modulusLength).toBe(keySize);
      }
    });

    it.each(valid.map(({ group, test }) => [test.tcId, test.comment, group, test] as const))(
      'valid case %i (%s) decrypts to exactly the expected message',
      (_tcId, _comment, group, test) => {
        const key = importSealingPrivateKey(Buffer.from(group.privateKeyPkcs8, 'hex'));
        const label = test.label.length > 0 ? Buffer.from(test.label, 'hex') : undefined;
        const message = rsaOaepUnwrap(key, Buffer.from(test.ct, 'hex'), label);
        expect(message.toString('hex')).toBe(test.msg);
      },
    );

    it.each(invalid.map(({ group, test }) => [test.tcId, test.comment, group, test] as const))(
      'invalid case %i (%s) fails with the one fixed ERR_DECRYPT',
      (_tcId, _comment, group, test) => {
        const key = importSealingPrivateKey(Buffer.from(group.privateKeyPkcs8, 'hex'));
        const label = test.label.length > 0 ? Buffer.from(test.label, 'hex') : undefined;
        const error = unwrapError(() => rsaOaepUnwrap(key, Buffer.from(test.ct, 'hex'), label));
        expect(isCrateError(error, 'ERR_DECRYPT')).toBe(true);
        expect((error as Error).message).toBe(DECRYPT_FAILED_MESSAGE);
      },
    );

    it.each(labelled.map(({ group, test }) => [test.tcId, group, test] as const))(
      'valid case %i, made with a non-empty label, fails under the empty label that Crate uses',
      (_tcId, group, test) => {
        const key = importSealingPrivateKey(Buffer.from(group.privateKeyPkcs8, 'hex'));
        const error = unwrapError(() => rsaOaepUnwrap(key, Buffer.from(test.ct, 'hex')));
        expect(isCrateError(error, 'ERR_DECRYPT')).toBe(true);
      },
    );
  },
);
