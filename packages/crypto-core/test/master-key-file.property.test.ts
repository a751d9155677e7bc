import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isCrateError,
  Keyring,
  parseMasterKeyFile,
  serializeMasterKeyFile,
  unwrapOrgDek,
  wrapOrgDek,
} from '../src/index.js';
import { documentedMasterKeyChecksum, flipBit } from './lib/documented.js';

/** 1..5 distinct versions of random keys, one of them active. */
const keyrings = fc
  .uniqueArray(fc.integer({ min: 1, max: 2 ** 32 - 1 }), { minLength: 1, maxLength: 5 })
  .chain((versions) =>
    fc.record({
      keys: fc.tuple(
        ...versions.map((version) =>
          fc
            .uint8Array({ minLength: 32, maxLength: 32 })
            .map((key) => ({ version, key: Buffer.from(key) })),
        ),
      ),
      active: fc.constantFrom(...versions),
    }),
  )
  .map(({ keys, active }) => Keyring.create(keys, active));

function sameKeyring(a: Keyring, b: Keyring): boolean {
  return (
    a.activeVersion === b.activeVersion &&
    a.versions().join() === b.versions().join() &&
    a.versions().every((version) => a.require(version).equals(b.require(version)))
  );
}

function refusal(input: Uint8Array | string): string {
  try {
    parseMasterKeyFile(input);
  } catch (error) {
    if (isCrateError(error)) {
      return error.code;
    }
    throw error;
  }
  return 'accepted';
}

describe('master key file properties', () => {
  it('round-trips any keyring through serialize and parse, byte for byte', () => {
    fc.assert(
      fc.property(keyrings, (ring) => {
        const text = serializeMasterKeyFile(ring);
        const parsed = parseMasterKeyFile(text);
        expect(sameKeyring(parsed, ring)).toBe(true);
        expect(serializeMasterKeyFile(parsed)).toBe(text);
      }),
      { numRuns: 200 },
    );
  });

  it('writes the checksum exactly as documented', () => {
    fc.assert(
      fc.property(keyrings, (ring) => {
        const document = JSON.parse(serializeMasterKeyFile(ring));
        expect(document.checksum).toBe(documentedMasterKeyChecksum(document.active, document.keys));
      }),
      { numRuns: 100 },
    );
  });

  it('refuses a key file with any single bit flipped as ERR_KEYRING_INVALID', () => {
    fc.assert(
      fc.property(keyrings, fc.nat(), (ring, bit) => {
        const bytes = Buffer.from(serializeMasterKeyFile(ring), 'utf8');
        expect(refusal(flipBit(bytes, bit))).toBe('ERR_KEYRING_INVALID');
      }),
      { numRuns: 500 },
    );
  });

  it('refuses every one of the single-bit flips of a two-version key file', () => {
    const ring = Keyring.create(
      [
        { version: 2, key: Buffer.alloc(32, 0x22) },
        { version: 3, key: Buffer.alloc(32, 0x33) },
      ],
      3,
    );
    const bytes = Buffer.from(serializeMasterKeyFile(ring), 'utf8');
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      expect(refusal(flipBit(bytes, bit)), `bit ${bit}`).toBe('ERR_KEYRING_INVALID');
    }
  });

  it('loads a damaged key from a file without checksum, which only the old envelopes then reveal', () => {
    // Why the checksum exists. The file without it is still accepted (hand-written files), and
    // then only the envelopes the old key wrapped reveal the damage.
    const ring = Keyring.create([{ version: 1, key: Buffer.alloc(32, 0x11) }], 1);
    const document = JSON.parse(serializeMasterKeyFile(ring));
    delete document.checksum;
    const damagedKey = Buffer.alloc(32, 0x11);
    damagedKey[0] = 0x10;
    document.keys[0].key = damagedKey.toString('base64');
    const loaded = parseMasterKeyFile(JSON.stringify(document));
    expect(loaded.require(1).equals(damagedKey)).toBe(true);
    const blob = wrapOrgDek(ring.active(), Buffer.alloc(32, 0x44), { orgId: 'o', dekVersion: 1 });
    expect(() => unwrapOrgDek(loaded, blob, { orgId: 'o', dekVersion: 1 })).toThrow(
      expect.objectContaining({ code: 'ERR_DECRYPT' }),
    );
  });
});
