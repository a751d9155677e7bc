import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { importSigningPublicKey, verify } from '../src/index.js';

interface EddsaTest {
  tcId: number;
  comment: string;
  flags: string[];
  msg: string;
  sig: string;
  result: 'valid' | 'invalid' | 'acceptable';
}

interface EddsaGroup {
  type: string;
  publicKey: { curve: string; pk: string };
  publicKeyDer: string;
  tests: EddsaTest[];
}

interface EddsaFile {
  numberOfTests: number;
  testGroups: EddsaGroup[];
}

const file = JSON.parse(
  readFileSync(new URL('./fixtures/wycheproof/ed25519_test.json', import.meta.url), 'utf8'),
) as EddsaFile;
const cases = file.testGroups.flatMap((group) => group.tests.map((test) => ({ group, test })));
const valid = cases.filter(({ test }) => test.result === 'valid');
const invalid = cases.filter(({ test }) => test.result === 'invalid');

function verifyCase(group: EddsaGroup, test: EddsaTest): boolean {
  const publicKey = importSigningPublicKey(Buffer.from(group.publicKeyDer, 'hex'));
  return verify(publicKey, Buffer.from(test.msg, 'hex'), Buffer.from(test.sig, 'hex'));
}

describe('Wycheproof Ed25519 against verify (the check the audit chain and bundles use)', () => {
  it('holds the expected number of cases in each class, so that the run cannot pass vacuously', () => {
    expect(file.testGroups).toHaveLength(78);
    expect(cases).toHaveLength(file.numberOfTests);
    expect(file.numberOfTests).toBe(151);
    expect(valid).toHaveLength(88);
    expect(invalid).toHaveLength(63);
    expect(cases.filter(({ test }) => test.result === 'acceptable')).toHaveLength(0);
    expect(
      invalid.filter(({ test }) => test.flags.includes('SignatureMalleability')),
    ).not.toHaveLength(0);
  });

  it('imports every group public key as an Ed25519 signing key', () => {
    for (const group of file.testGroups) {
      expect(group.publicKey.curve).toBe('edwards25519');
      expect(importSigningPublicKey(Buffer.from(group.publicKeyDer, 'hex')).asymmetricKeyType).toBe(
        'ed25519',
      );
    }
  });

  it.each(valid.map(({ group, test }) => [test.tcId, test.comment, group, test] as const))(
    'valid case %i (%s) verifies',
    (_tcId, _comment, group, test) => {
      expect(verifyCase(group, test)).toBe(true);
    },
  );

  it.each(
    invalid.map(({ group, test }) => [test.tcId, test.flags.join(','), group, test] as const),
  )('invalid case %i (%s) returns false without throwing', (_tcId, _flags, group, test) => {
    let result: boolean | undefined;
    expect(() => {
      result = verifyCase(group, test);
    }).not.toThrow();
    expect(result).toBe(false);
  });
});
