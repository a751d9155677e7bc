import type { KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type BundleBinding,
  type BundleEnvelope,
  buildBundle,
  decodeBundlePayload,
  encodeBundlePayload,
  generateEphemeralKeyPair,
  generateSigningKeyPair,
  importSigningPrivateKey,
  importSigningPublicKey,
  isCrateError,
  newBundleNonce,
  type OpenBundleOptions,
  openBundle,
  validateEphemeralPublicKey,
} from '../src/index.js';

const BUNDLE_FIELDS = [
  'v',
  'alg',
  'kid',
  'epk',
  'org',
  'project',
  'environment',
  'nonce',
  'iat',
  'ek',
  'iv',
  'ct',
  'tag',
  'sig',
] as const;

let options: OpenBundleOptions;
let ephemeralPublicKey: KeyObject;
let signingPrivateKey: KeyObject;
const binding: BundleBinding = {
  orgId: 'org_1',
  project: 'web',
  environment: 'prod',
  nonce: newBundleNonce(),
};

beforeAll(async () => {
  const ephemeral = await generateEphemeralKeyPair(2048);
  const signing = generateSigningKeyPair();
  signingPrivateKey = importSigningPrivateKey(signing.privateKeyPkcs8);
  ephemeralPublicKey = validateEphemeralPublicKey(ephemeral.publicKeySpki);
  options = {
    ephemeralPrivateKey: ephemeral.privateKey,
    ephemeralPublicKeySpki: ephemeral.publicKeySpki,
    signingPublicKey: importSigningPublicKey(signing.publicKeySpki),
    signingKeyId: 'bsk_1',
    binding,
  };
});

function build(payload: Uint8Array): BundleEnvelope {
  return buildBundle({
    ephemeralPublicKey,
    signingKeyId: 'bsk_1',
    signingPrivateKey,
    binding,
    payload,
  });
}

function failsWithDecryptError(fn: () => unknown): boolean {
  try {
    fn();
  } catch (error) {
    return isCrateError(error, 'ERR_DECRYPT');
  }
  return false;
}

function failsWithSignatureError(fn: () => unknown): boolean {
  try {
    fn();
  } catch (error) {
    return isCrateError(error, 'ERR_BUNDLE_SIGNATURE');
  }
  return false;
}

const entriesArb = fc.uniqueArray(
  fc.record({
    name: fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }),
    version: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    value: fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
  }),
  { selector: (entry) => entry.name, maxLength: 8 },
);

describe('bundle properties', () => {
  it('payload encoding round-trips any list of uniquely named entries with binary values', () => {
    fc.assert(
      fc.property(entriesArb, (entries) => {
        expect(decodeBundlePayload(encodeBundlePayload(entries))).toEqual(entries);
      }),
      { numRuns: 300 },
    );
  });

  it('opens to exactly the payload that was built, for any entries', () => {
    fc.assert(
      fc.property(entriesArb, (entries) => {
        const envelope = JSON.parse(JSON.stringify(build(encodeBundlePayload(entries))));
        expect(decodeBundlePayload(openBundle(envelope, options))).toEqual(entries);
      }),
      { numRuns: 100 },
    );
  });

  it('fails with ERR_DECRYPT when opened for any other org, project, environment or nonce', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('orgId', 'project', 'environment', 'nonce' as const),
        fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }),
        (field, replacement) => {
          const value = field === 'nonce' ? newBundleNonce() : replacement;
          fc.pre(value !== binding[field]);
          const envelope = build(Buffer.from('payload'));
          const other = { ...options, binding: { ...binding, [field]: value } };
          expect(failsWithDecryptError(() => openBundle(envelope, other))).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('fails with ERR_BUNDLE_SIGNATURE when any bit of any character of any field is flipped', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.constantFrom(...BUNDLE_FIELDS),
        fc.nat(),
        fc.integer({ min: 0, max: 15 }),
        (payload, field, index, bit) => {
          const envelope = build(payload);
          const original = envelope[field];
          let flipped: string | number;
          if (typeof original === 'number') {
            flipped = original ^ (1 << (index % 31));
          } else {
            const at = index % original.length;
            flipped =
              original.slice(0, at) +
              String.fromCharCode(original.charCodeAt(at) ^ (1 << bit)) +
              original.slice(at + 1);
          }
          const tampered = { ...envelope, [field]: flipped };
          expect(failsWithSignatureError(() => openBundle(tampered, options))).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('fails with ERR_BUNDLE_SIGNATURE when any single bit of a decoded binary field is flipped', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.constantFrom('epk', 'nonce', 'ek', 'iv', 'ct', 'tag', 'sig' as const),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        (payload, field, index, bit) => {
          const envelope = build(payload);
          const bytes = Buffer.from(envelope[field], 'base64url');
          bytes[index % bytes.length]! ^= 1 << bit;
          const tampered = { ...envelope, [field]: bytes.toString('base64url') };
          expect(failsWithSignatureError(() => openBundle(tampered, options))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('fails with ERR_BUNDLE_SIGNATURE when any bit of the serialized JSON is flipped and it still parses', () => {
    let stillParsed = 0;
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        (payload, index, bit) => {
          const serialized = Buffer.from(JSON.stringify(build(payload)));
          serialized[index % serialized.length]! ^= 1 << bit;
          let parsed: unknown;
          try {
            parsed = JSON.parse(serialized.toString('utf8'));
          } catch {
            return; // Not JSON any more: the CLI's HTTP layer rejects it first.
          }
          stillParsed += 1;
          expect(failsWithSignatureError(() => openBundle(parsed, options))).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
    expect(stillParsed).toBeGreaterThan(100);
  });
});
