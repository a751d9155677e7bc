import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DECRYPT_FAILED_MESSAGE,
  decryptSecret,
  decryptValue,
  encryptSecret,
  encryptValue,
  isCrateError,
  type KeyLookup,
  Keyring,
  type PrivateKeyContext,
  type SecretRef,
  unwrapOrgDek,
  unwrapPrivateKey,
  unwrapSecretDek,
  type VersionedKey,
  wrapOrgDek,
  wrapPrivateKey,
  wrapSecretDek,
} from '../src/index.js';

/** True only for the fixed ERR_DECRYPT: not another error, not a (wrong) plaintext. */
function failsWithDecryptError(fn: () => unknown): boolean {
  try {
    fn();
  } catch (error) {
    return isCrateError(error, 'ERR_DECRYPT') && error.message === DECRYPT_FAILED_MESSAGE;
  }
  return false;
}

function flipBit(blob: Buffer, bit: number): Buffer {
  const copy = Buffer.from(blob);
  const at = bit % (copy.length * 8);
  copy[at >> 3]! ^= 1 << (at & 7);
  return copy;
}

// Any code point but lone surrogates; a small alphabet half of the time, so that a "different"
// context is often different in one character only.
const text = fc.oneof(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 16 }),
  fc.string({ unit: fc.constantFrom('a', 'b'), minLength: 1, maxLength: 3 }),
);
const keyVersion = fc.integer({ min: 1, max: 2 ** 32 - 1 });
const secretRef = fc.record({
  orgId: text,
  projectId: text,
  environmentId: text,
  name: text,
  version: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
});
const orgDekCtx = fc.record({ orgId: text, dekVersion: keyVersion });
const privateKeyCtx = fc.record({
  orgId: text,
  keyId: text,
  keyKind: fc.constantFrom('sealing', 'signing', 'audit') as fc.Arbitrary<
    PrivateKeyContext['keyKind']
  >,
});
const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => Buffer.from(bytes));
const versionedKey = fc.record({ version: keyVersion, key: key32 });
const value = fc.oneof(
  fc.constant(new Uint8Array(0)),
  fc.uint8Array({ maxLength: 256 }),
  fc.uint8Array({ minLength: 4096, maxLength: 70_000 }),
);

/**
 * Answers every version with the same key. A keyring that lacks a version reports
 * ERR_KEY_VERSION_UNKNOWN (a missing key, by contract); this lookup instead lets a blob whose
 * key-version bits were flipped reach the AEAD step, which must then reject the altered header.
 */
function everyVersion(key: Buffer): KeyLookup {
  return () => key;
}

const sameAs = <T extends object>(a: T, b: T): boolean => JSON.stringify(a) === JSON.stringify(b);

describe('envelope properties', () => {
  it('round-trips any value, empty and large included, through every tier', () => {
    fc.assert(
      fc.property(versionedKey, key32, value, secretRef, (orgDek, secretDek, plain, ref) => {
        const lookup = Keyring.create([orgDek], orgDek.version);
        const { wrappedDek, ciphertext } = encryptSecret(orgDek, plain, ref);
        expect(decryptSecret(lookup, wrappedDek, ciphertext, ref).equals(Buffer.from(plain))).toBe(
          true,
        );
        const blob = encryptValue(secretDek, plain, ref);
        expect(decryptValue(secretDek, blob, ref).equals(Buffer.from(plain))).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it('round-trips any wrapped key and private key under any context', () => {
    fc.assert(
      fc.property(
        versionedKey,
        key32,
        fc.uint8Array({ maxLength: 2500 }),
        orgDekCtx,
        privateKeyCtx,
        secretRef,
        (master, dek, pkcs8, orgCtx, keyCtx, ref) => {
          const lookup = Keyring.create([master], master.version);
          expect(unwrapOrgDek(lookup, wrapOrgDek(master, dek, orgCtx), orgCtx).equals(dek)).toBe(
            true,
          );
          const wrappedKey = wrapPrivateKey(master, pkcs8, keyCtx);
          expect(unwrapPrivateKey(lookup, wrappedKey, keyCtx).equals(Buffer.from(pkcs8))).toBe(
            true,
          );
          expect(unwrapSecretDek(lookup, wrapSecretDek(master, dek, ref), ref).equals(dek)).toBe(
            true,
          );
        },
      ),
      { numRuns: 100 },
    );
  });

  it('rejects any single flipped bit of an org DEK envelope with ERR_DECRYPT', () => {
    fc.assert(
      fc.property(versionedKey, key32, orgDekCtx, fc.nat(), (master, dek, ctx, bit) => {
        const tampered = flipBit(wrapOrgDek(master, dek, ctx), bit);
        expect(
          failsWithDecryptError(() => unwrapOrgDek(everyVersion(master.key), tampered, ctx)),
        ).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('rejects any single flipped bit of a secret DEK envelope with ERR_DECRYPT', () => {
    fc.assert(
      fc.property(versionedKey, key32, secretRef, fc.nat(), (orgDek, dek, ref, bit) => {
        const tampered = flipBit(wrapSecretDek(orgDek, dek, ref), bit);
        expect(
          failsWithDecryptError(() => unwrapSecretDek(everyVersion(orgDek.key), tampered, ref)),
        ).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('rejects any single flipped bit of a secret value envelope with ERR_DECRYPT', () => {
    fc.assert(
      fc.property(
        key32,
        fc.uint8Array({ maxLength: 300 }),
        secretRef,
        fc.nat(),
        (dek, plain, ref, bit) => {
          const tampered = flipBit(encryptValue(dek, plain, ref), bit);
          expect(failsWithDecryptError(() => decryptValue(dek, tampered, ref))).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('rejects any single flipped bit of a private key envelope with ERR_DECRYPT', () => {
    fc.assert(
      fc.property(
        versionedKey,
        fc.uint8Array({ maxLength: 300 }),
        privateKeyCtx,
        fc.nat(),
        (master, pkcs8, ctx, bit) => {
          const tampered = flipBit(wrapPrivateKey(master, pkcs8, ctx), bit);
          expect(
            failsWithDecryptError(() => unwrapPrivateKey(everyVersion(master.key), tampered, ctx)),
          ).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('rejects every single flipped bit of the header and the first bytes of each kind', () => {
    // Exhaustive over the 8 header bytes, the nonce and the start of the ciphertext.
    const master: VersionedKey = { version: 258, key: Buffer.alloc(32, 9) };
    const ref: SecretRef = {
      orgId: 'o',
      projectId: 'p',
      environmentId: 'e',
      name: 'n',
      version: 1,
    };
    const ctx = { orgId: 'o', dekVersion: 1 };
    const keyCtx: PrivateKeyContext = { orgId: 'o', keyId: 'k', keyKind: 'signing' };
    const lookup = everyVersion(master.key);
    const cases: Array<[Buffer, (blob: Buffer) => unknown]> = [
      [wrapOrgDek(master, master.key, ctx), (blob) => unwrapOrgDek(lookup, blob, ctx)],
      [wrapSecretDek(master, master.key, ref), (blob) => unwrapSecretDek(lookup, blob, ref)],
      [
        encryptValue(master.key, Buffer.from('v'), ref),
        (blob) => decryptValue(master.key, blob, ref),
      ],
      [
        wrapPrivateKey(master, Buffer.from('der'), keyCtx),
        (blob) => unwrapPrivateKey(lookup, blob, keyCtx),
      ],
    ];
    let flips = 0;
    for (const [blob, open] of cases) {
      for (let bit = 0; bit < 24 * 8; bit++) {
        expect(
          failsWithDecryptError(() => open(flipBit(blob, bit))),
          `bit ${bit}`,
        ).toBe(true);
        flips++;
      }
    }
    expect(flips).toBe(4 * 24 * 8);
  });

  it('rejects a secret opened under any different ref with ERR_DECRYPT', () => {
    fc.assert(
      fc.property(versionedKey, secretRef, secretRef, (orgDek, ref, other) => {
        fc.pre(!sameAs(ref, other));
        const lookup = Keyring.create([orgDek], orgDek.version);
        const { wrappedDek, ciphertext } = encryptSecret(orgDek, Buffer.from('v'), ref);
        expect(
          failsWithDecryptError(() => decryptSecret(lookup, wrappedDek, ciphertext, other)),
        ).toBe(true);
        expect(failsWithDecryptError(() => unwrapSecretDek(lookup, wrappedDek, other))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('rejects a wrapped org DEK or private key opened under any different context', () => {
    fc.assert(
      fc.property(
        versionedKey,
        orgDekCtx,
        orgDekCtx,
        privateKeyCtx,
        privateKeyCtx,
        (master, ctx, otherCtx, keyCtx, otherKeyCtx) => {
          const lookup = Keyring.create([master], master.version);
          if (!sameAs(ctx, otherCtx)) {
            const blob = wrapOrgDek(master, master.key, ctx);
            expect(failsWithDecryptError(() => unwrapOrgDek(lookup, blob, otherCtx))).toBe(true);
          }
          if (!sameAs(keyCtx, otherKeyCtx)) {
            const blob = wrapPrivateKey(master, Buffer.from('der'), keyCtx);
            expect(failsWithDecryptError(() => unwrapPrivateKey(lookup, blob, otherKeyCtx))).toBe(
              true,
            );
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
