import type { KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DECRYPT_FAILED_MESSAGE,
  generateSealingKeyPair,
  importSealingPrivateKey,
  importSealingPublicKey,
  isCrateError,
  openSeal,
  type SealDestination,
  type SealEnvelope,
  sealValue,
} from '../src/index.js';

const DEST_FIELDS = ['orgId', 'project', 'environment', 'name'] as const;
const SEAL_FIELDS = ['v', 'alg', 'kid', 'ek', 'iv', 'ct', 'tag'] as const;
const BINARY_FIELDS = ['ek', 'iv', 'ct', 'tag'] as const;

// Any code point but lone surrogates, so every generated name is valid UTF-16 text.
const text = fc.string({ unit: 'binary', minLength: 1, maxLength: 24 });
const destination = fc.record({ orgId: text, project: text, environment: text, name: text });
const kidArb = fc.string({ unit: 'binary', minLength: 1, maxLength: 16 });

let publicKey: KeyObject;
let privateKey: KeyObject;

beforeAll(async () => {
  const pair = await generateSealingKeyPair(2048);
  publicKey = importSealingPublicKey(pair.publicKeySpki);
  privateKey = importSealingPrivateKey(pair.privateKeyPkcs8);
});

function failsWithDecryptError(fn: () => unknown): boolean {
  try {
    fn();
  } catch (error) {
    return isCrateError(error, 'ERR_DECRYPT') && error.message === DECRYPT_FAILED_MESSAGE;
  }
  return false;
}

function flipCodeUnit(value: string, index: number, bit: number): string {
  const at = index % value.length;
  return (
    value.slice(0, at) +
    String.fromCharCode(value.charCodeAt(at) ^ (1 << bit)) +
    value.slice(at + 1)
  );
}

describe('seal properties', () => {
  it('opens to exactly the sealed bytes for any value, destination and key id', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), destination, kidArb, (value, dest, kid) => {
        const envelope = sealValue(publicKey, kid, value, dest);
        const roundTripped = JSON.parse(JSON.stringify(envelope)) as SealEnvelope;
        expect(openSeal(privateKey, roundTripped, dest).equals(Buffer.from(value))).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('refuses a seal opened for any other destination', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        destination,
        fc.constantFrom(...DEST_FIELDS),
        text,
        (value, dest, field, replacement) => {
          fc.pre(replacement !== dest[field]);
          const envelope = sealValue(publicKey, 'kid', value, dest);
          const other: SealDestination = { ...dest, [field]: replacement };
          expect(failsWithDecryptError(() => openSeal(privateKey, envelope, other))).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('refuses a seal whose key id was replaced by any other key id', () => {
    fc.assert(
      fc.property(kidArb, kidArb, (kid, otherKid) => {
        fc.pre(kid !== otherKid);
        const dest = { orgId: 'o', project: 'p', environment: 'e', name: 'n' };
        const envelope = sealValue(publicKey, kid, Buffer.from('v'), dest);
        expect(
          failsWithDecryptError(() => openSeal(privateKey, { ...envelope, kid: otherKid }, dest)),
        ).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('fails with ERR_DECRYPT when any single bit of the decoded ek, iv, ct or tag is flipped', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 256 }),
        destination,
        fc.constantFrom(...BINARY_FIELDS),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        (value, dest, field, index, bit) => {
          const envelope = sealValue(publicKey, 'kid', value, dest);
          const bytes = Buffer.from(envelope[field], 'base64url');
          bytes[index % bytes.length]! ^= 1 << bit;
          const tampered = { ...envelope, [field]: bytes.toString('base64url') };
          expect(failsWithDecryptError(() => openSeal(privateKey, tampered, dest))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('fails with ERR_DECRYPT when any bit of any character of any field is flipped', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.constantFrom(...SEAL_FIELDS),
        fc.nat(),
        fc.integer({ min: 0, max: 15 }),
        (value, field, index, bit) => {
          const dest = { orgId: 'org', project: 'proj', environment: 'env', name: 'NAME' };
          const envelope = sealValue(publicKey, 'sk_1', value, dest);
          const original = envelope[field];
          const flipped =
            typeof original === 'number'
              ? original ^ (1 << bit)
              : flipCodeUnit(original, index, bit);
          const tampered = { ...envelope, [field]: flipped } as SealEnvelope;
          expect(failsWithDecryptError(() => openSeal(privateKey, tampered, dest))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('fails with ERR_DECRYPT when any bit of the serialized JSON is flipped and it still parses', () => {
    let stillParsed = 0;
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        (value, index, bit) => {
          const dest = { orgId: 'org', project: 'proj', environment: 'env', name: 'NAME' };
          const serialized = Buffer.from(JSON.stringify(sealValue(publicKey, 'sk_1', value, dest)));
          serialized[index % serialized.length]! ^= 1 << bit;
          let parsed: unknown;
          try {
            parsed = JSON.parse(serialized.toString('utf8'));
          } catch {
            return; // Not JSON any more: the HTTP layer rejects it before crypto-core sees it.
          }
          stillParsed += 1;
          expect(
            failsWithDecryptError(() => openSeal(privateKey, parsed as SealEnvelope, dest)),
          ).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
    expect(stillParsed).toBeGreaterThan(100);
  });
});
