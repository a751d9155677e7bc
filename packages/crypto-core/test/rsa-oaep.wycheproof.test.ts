import { createCipheriv, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  DECRYPT_FAILED_MESSAGE,
  importSealingPrivateKey,
  isCrateError,
  openSeal,
  rsaOaepUnwrap,
  type SealEnvelope,
} from '../src/index.js';
import { unwrapContentKeyOrRandom } from '../src/lib/rsa.js';
import { documentedAad } from './lib/documented.js';

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

describe.each([2048, 3072, 4096])(
  'Wycheproof RSA-OAEP-SHA-256 ciphertexts as the wrapped key of a seal, %i-bit key',
  (keySize) => {
    const file = load(keySize);
    const group = file.testGroups[0]!;
    const privateKey = importSealingPrivateKey(Buffer.from(group.privateKeyPkcs8, 'hex'));
    const tests = group.tests;
    // The one valid, unlabelled case whose message is 32 bytes: a content key as Crate uses it.
    const contentKeyCases = tests.filter(
      (test) => test.result === 'valid' && test.label === '' && test.msg.length === 64,
    );
    const invalid = tests.filter((test) => test.result === 'invalid');
    const dest = { orgId: 'org_1', project: 'web', environment: 'prod', name: 'API_KEY' };
    const kid = 'sk_wycheproof';

    /** A seal built by hand from docs/formats.md around a given content key and wrapped key. */
    function sealAround(contentKey: Buffer, wrappedKey: Buffer, value: Buffer): SealEnvelope {
      const iv = Buffer.alloc(12, 7);
      const aad = documentedAad('seal', [
        ['v', 1],
        ['alg', 'RSA-OAEP-256+A256GCM'],
        ['kid', kid],
        ['orgId', dest.orgId],
        ['project', dest.project],
        ['environment', dest.environment],
        ['name', dest.name],
      ]);
      const cipher = createCipheriv('aes-256-gcm', contentKey, iv).setAAD(aad);
      const ct = Buffer.concat([cipher.update(value), cipher.final()]);
      return {
        v: 1,
        alg: 'RSA-OAEP-256+A256GCM',
        kid,
        ek: wrappedKey.toString('base64url'),
        iv: iv.toString('base64url'),
        ct: ct.toString('base64url'),
        tag: cipher.getAuthTag().toString('base64url'),
      };
    }

    it('holds one valid 32-byte content key case and the 19 invalid ones', () => {
      expect(contentKeyCases).toHaveLength(1);
      expect(invalid).toHaveLength(19);
      expect(createPublicKey(privateKey).asymmetricKeyDetails?.modulusLength).toBe(keySize);
    });

    it('opens a seal whose wrapped key is the valid Wycheproof ciphertext of a 32-byte key', () => {
      const test = contentKeyCases[0]!;
      const value = Buffer.from('opened through openSeal', 'utf8');
      const seal = sealAround(Buffer.from(test.msg, 'hex'), Buffer.from(test.ct, 'hex'), value);
      expect(openSeal(privateKey, seal, dest).equals(value)).toBe(true);
    });

    it.each(invalid.map((test) => [test.tcId, test.comment, test] as const))(
      'fails with the one fixed ERR_DECRYPT when the wrapped key is invalid case %i (%s)',
      (_tcId, _comment, test) => {
        const good = contentKeyCases[0]!;
        const seal = sealAround(
          Buffer.from(good.msg, 'hex'),
          Buffer.from(test.ct, 'hex'),
          Buffer.from('never opened', 'utf8'),
        );
        const error = unwrapError(() => openSeal(privateKey, seal, dest)) as Error;
        expect(isCrateError(error, 'ERR_DECRYPT')).toBe(true);
        expect(error.message).toBe(DECRYPT_FAILED_MESSAGE);
        if (test.ct === '') {
          // An empty `ek` is a malformed envelope, refused before any RSA operation.
          expect(error.cause).toBeUndefined();
          return;
        }
        // Even the local cause is the AES-GCM failure a tampered tag gives: the RSA step
        // left no trace of its own.
        const tag = Buffer.from(seal.tag, 'base64url');
        tag[0]! ^= 1;
        const genuine = sealAround(
          Buffer.from(good.msg, 'hex'),
          Buffer.from(good.ct, 'hex'),
          Buffer.from('never opened', 'utf8'),
        );
        const tampered = unwrapError(() =>
          openSeal(privateKey, { ...genuine, tag: tag.toString('base64url') }, dest),
        ) as Error;
        expect(String(error.cause)).toBe(String(tampered.cause));
      },
    );

    it('continues with a fresh random key, never throwing, for every invalid case (as jose does)', () => {
      for (const test of invalid) {
        const ct = Buffer.from(test.ct, 'hex');
        const first = unwrapContentKeyOrRandom(privateKey, ct, 32);
        const second = unwrapContentKeyOrRandom(privateKey, ct, 32);
        expect(first).toHaveLength(32);
        expect(first.equals(second), `tcId ${test.tcId}`).toBe(false);
      }
      const good = contentKeyCases[0]!;
      expect(
        unwrapContentKeyOrRandom(privateKey, Buffer.from(good.ct, 'hex'), 32).toString('hex'),
      ).toBe(good.msg);
    });
  },
);
