import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  type ErrorCode,
  generateKeyring,
  isCrateError,
  Keyring,
  keyFingerprint,
  MAX_KEY_VERSION,
  parseMasterKeyFile,
  serializeMasterKeyFile,
} from '../src/index.js';
import { documentedMasterKeyChecksum } from './lib/documented.js';

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

function expectCode(fn: () => unknown, code: ErrorCode, messagePart?: string): void {
  const error = caught(fn);
  expect(isCrateError(error, code), String(error)).toBe(true);
  if (messagePart !== undefined) {
    expect((error as Error).message).toContain(messagePart);
  }
}

const k1 = Buffer.alloc(32, 1);
const k2 = Buffer.alloc(32, 2);
const k7 = Buffer.alloc(32, 7);

describe('Keyring', () => {
  it('holds its keys by version with one active', () => {
    const ring = Keyring.create(
      [
        { version: 7, key: k7 },
        { version: 1, key: k1 },
        { version: 2, key: k2 },
      ],
      2,
    );
    expect(ring.activeVersion).toBe(2);
    expect(ring.active().version).toBe(2);
    expect(ring.active().key.equals(k2)).toBe(true);
    expect(ring.versions()).toEqual([1, 2, 7]);
    expect(ring.get(7)?.equals(k7)).toBe(true);
    expect(ring.get(3)).toBeUndefined();
    expect(ring.require(1).equals(k1)).toBe(true);
  });

  it('throws ERR_KEY_VERSION_UNKNOWN naming the version from require', () => {
    const ring = Keyring.create([{ version: 1, key: k1 }], 1);
    expectCode(() => ring.require(9), 'ERR_KEY_VERSION_UNKNOWN', '9');
  });

  it('keeps its own copies, so the caller may zero the keys it passed in', () => {
    const key = Buffer.from(k1);
    const ring = Keyring.create([{ version: 1, key }], 1);
    key.fill(0);
    expect(ring.require(1).equals(k1)).toBe(true);
  });

  it('refuses an empty list, duplicate versions, an absent active version, bad sizes and versions', () => {
    expect(() => Keyring.create([], 1)).toThrow(TypeError);
    expect(() =>
      Keyring.create(
        [
          { version: 1, key: k1 },
          { version: 1, key: k2 },
        ],
        1,
      ),
    ).toThrow(RangeError);
    expect(() => Keyring.create([{ version: 1, key: k1 }], 2)).toThrow(RangeError);
    expect(() => Keyring.create([{ version: 1, key: Buffer.alloc(31) }], 1)).toThrow(RangeError);
    for (const version of [0, -1, 1.5, MAX_KEY_VERSION + 1]) {
      expect(() => Keyring.create([{ version, key: k1 }], version)).toThrow(RangeError);
    }
    expect(
      Keyring.create([{ version: MAX_KEY_VERSION, key: k1 }], MAX_KEY_VERSION).activeVersion,
    ).toBe(MAX_KEY_VERSION);
  });

  it('adds a random key at max + 1 and makes it active, leaving the original unchanged', () => {
    const ring = Keyring.create(
      [
        { version: 1, key: k1 },
        { version: 7, key: k7 },
      ],
      1,
    );
    const next = ring.withNewVersion();
    expect(next.versions()).toEqual([1, 7, 8]);
    expect(next.activeVersion).toBe(8);
    expect(next.require(8)).toHaveLength(32);
    expect(next.require(8).equals(k7)).toBe(false);
    expect(next.require(7).equals(k7)).toBe(true);
    expect(ring.versions()).toEqual([1, 7]);
    expect(ring.activeVersion).toBe(1);
  });

  it('refuses to add a version after the largest one', () => {
    const ring = Keyring.create([{ version: MAX_KEY_VERSION, key: k1 }], MAX_KEY_VERSION);
    expect(() => ring.withNewVersion()).toThrow(RangeError);
  });

  it('switches the active version only to a version it holds', () => {
    const ring = Keyring.create(
      [
        { version: 1, key: k1 },
        { version: 2, key: k2 },
      ],
      2,
    );
    expect(ring.withActive(1).activeVersion).toBe(1);
    expectCode(() => ring.withActive(3), 'ERR_KEY_VERSION_UNKNOWN', '3');
  });

  it('drops an inactive version but refuses to drop the active one or an unknown one', () => {
    const ring = Keyring.create(
      [
        { version: 1, key: k1 },
        { version: 2, key: k2 },
      ],
      2,
    );
    expect(ring.without(1).versions()).toEqual([2]);
    expectCode(() => ring.without(2), 'ERR_KEYRING_INVALID', 'active');
    expectCode(() => ring.without(5), 'ERR_KEY_VERSION_UNKNOWN');
  });

  it('zeroes its keys on destroy, refuses further use, and tolerates a second destroy', () => {
    const ring = Keyring.create([{ version: 1, key: k1 }], 1);
    const derived = ring.withNewVersion();
    const held = ring.require(1);
    ring.destroy();
    expect(held.equals(Buffer.alloc(32))).toBe(true);
    expect(() => ring.get(1)).toThrow(TypeError);
    expect(() => ring.active()).toThrow(TypeError);
    expect(() => ring.withNewVersion()).toThrow(TypeError);
    expect(ring.versions()).toEqual([1]);
    expect(() => ring.destroy()).not.toThrow();
    expect(derived.require(1).equals(k1)).toBe(true);
  });

  it('never shows key material through String, JSON or inspect', () => {
    const ring = Keyring.create([{ version: 1, key: Buffer.alloc(32, 0xab) }], 1);
    const renderings = [String(ring), JSON.stringify(ring), inspect(ring), `${ring}`];
    for (const text of renderings) {
      expect(text).not.toMatch(/abab|q6ur/i);
      expect(text).toContain('1');
    }
    expect(JSON.parse(JSON.stringify(ring))).toEqual({ activeVersion: 1, versions: [1] });
  });

  it('generates a keyring of one random 32-byte key at version 1', () => {
    const a = generateKeyring();
    const b = generateKeyring();
    expect(a.versions()).toEqual([1]);
    expect(a.activeVersion).toBe(1);
    expect(a.require(1)).toHaveLength(32);
    expect(a.require(1).equals(b.require(1))).toBe(false);
  });
});

describe('keyFingerprint', () => {
  it('is HKDF-SHA-256 of the key under the documented label, as a kfp_ string', () => {
    // Cross-checked with Python's hmac module (RFC 5869 by hand).
    expect(keyFingerprint(Buffer.alloc(32))).toBe('kfp_b29a5e6b323fb81ac87b1b8ce3a2afcf');
  });

  it('is stable for a key and differs between keys', () => {
    expect(keyFingerprint(k1)).toBe(keyFingerprint(Buffer.from(k1)));
    expect(keyFingerprint(k1)).not.toBe(keyFingerprint(k2));
    expect(keyFingerprint(k1)).toMatch(/^kfp_[0-9a-f]{32}$/);
  });

  it('does not contain the key', () => {
    expect(keyFingerprint(k7)).not.toContain(k7.toString('hex').slice(0, 8));
  });

  it('refuses an empty key and a key given as a string', () => {
    expect(() => keyFingerprint(Buffer.alloc(0))).toThrow(RangeError);
    expect(() => keyFingerprint('key' as unknown as Uint8Array)).toThrow(TypeError);
  });
});

const b64 = (key: Buffer): string => key.toString('base64');

function file(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    format: 'crate-master-key',
    formatVersion: 1,
    active: 2,
    keys: [
      { version: 1, key: b64(k1) },
      { version: 2, key: b64(k2) },
    ],
    ...overrides,
  });
}

describe('master key file', () => {
  it('parses the documented layout', () => {
    const ring = parseMasterKeyFile(file());
    expect(ring.versions()).toEqual([1, 2]);
    expect(ring.activeVersion).toBe(2);
    expect(ring.require(1).equals(k1)).toBe(true);
  });

  it('round-trips through serialize and parse, from text and from bytes', () => {
    const ring = generateKeyring().withNewVersion().withNewVersion().withActive(2);
    const text = serializeMasterKeyFile(ring);
    expect(text.endsWith('\n')).toBe(true);
    for (const input of [text, Buffer.from(text, 'utf8'), new Uint8Array(Buffer.from(text))]) {
      const parsed = parseMasterKeyFile(input);
      expect(parsed.versions()).toEqual([1, 2, 3]);
      expect(parsed.activeVersion).toBe(2);
      for (const version of ring.versions()) {
        expect(parsed.require(version).equals(ring.require(version))).toBe(true);
      }
      expect(serializeMasterKeyFile(parsed)).toBe(text);
    }
  });

  it('serializes exactly the documented fields, keys in ascending order', () => {
    const ring = Keyring.create(
      [
        { version: 2, key: k2 },
        { version: 1, key: k1 },
      ],
      2,
    );
    const keys = [
      { version: 1, key: b64(k1) },
      { version: 2, key: b64(k2) },
    ];
    const text = serializeMasterKeyFile(ring);
    expect(JSON.parse(text)).toEqual({
      ...JSON.parse(file()),
      checksum: documentedMasterKeyChecksum(2, keys),
    });
    expect(Object.keys(JSON.parse(text))).toEqual([
      'format',
      'formatVersion',
      'active',
      'keys',
      'checksum',
    ]);
  });

  it('accepts a file without a checksum, and one whose keys were listed in another order', () => {
    expect(parseMasterKeyFile(file()).activeVersion).toBe(2);
    const keys = [
      { version: 2, key: b64(k2) },
      { version: 1, key: b64(k1) },
    ];
    const reordered = file({ keys, checksum: documentedMasterKeyChecksum(2, keys) });
    expect(parseMasterKeyFile(reordered).versions()).toEqual([1, 2]);
  });

  const rejections: ReadonlyArray<[string, string | Uint8Array, string]> = [
    ['a 31-byte key', file({ keys: [{ version: 2, key: b64(Buffer.alloc(31)) }] }), '32 bytes'],
    ['a 33-byte key', file({ keys: [{ version: 2, key: b64(Buffer.alloc(33)) }] }), '32 bytes'],
    [
      'a duplicate version',
      file({
        keys: [
          { version: 2, key: b64(k1) },
          { version: 2, key: b64(k2) },
        ],
      }),
      'more than once',
    ],
    ['an absent active version', file({ active: 3 }), 'active version 3'],
    ['an unknown format', file({ format: 'crate-master-key-v2' }), '"format"'],
    ['an unknown format version', file({ formatVersion: 2 }), '"formatVersion"'],
    ['an extra top-level field', file({ comment: 'hi' }), 'exactly the fields'],
    [
      'a missing top-level field',
      JSON.stringify({ format: 'crate-master-key', formatVersion: 1, active: 1 }),
      'exactly the fields',
    ],
    [
      'an extra field in a key',
      file({ keys: [{ version: 2, key: b64(k2), note: 'x' }] }),
      'keys[0]',
    ],
    ['a key without its version', file({ keys: [{ key: b64(k2) }] }), 'keys[0]'],
    [
      'base64 with a character outside the alphabet',
      file({ keys: [{ version: 2, key: `*${b64(k2).slice(1)}` }] }),
      'base64',
    ],
    [
      'base64 without its padding',
      file({ keys: [{ version: 2, key: b64(k2).replace(/=+$/, '') }] }),
      'base64',
    ],
    [
      'base64url instead of base64',
      file({ keys: [{ version: 2, key: Buffer.alloc(32, 0xfb).toString('base64url') }] }),
      'base64',
    ],
    [
      'base64 with non-zero trailing bits',
      file({ keys: [{ version: 2, key: `${b64(k2).slice(0, 42)}J=` }] }),
      'base64',
    ],
    ['a key that is not a string', file({ keys: [{ version: 2, key: 5 }] }), 'base64'],
    [
      'a fractional key version',
      file({ keys: [{ version: 1.5, key: b64(k1) }] }),
      'keys[0].version',
    ],
    [
      'a key version given as a string',
      file({ keys: [{ version: '2', key: b64(k2) }] }),
      'keys[0].version',
    ],
    ['a key version of 0', file({ keys: [{ version: 0, key: b64(k2) }] }), 'keys[0].version'],
    ['an active version of 0', file({ active: 0 }), '"active"'],
    ['a fractional active version', file({ active: 2.5 }), '"active"'],
    ['an empty key list', file({ keys: [] }), 'non-empty'],
    ['keys that are not an array', file({ keys: { version: 2, key: b64(k2) } }), 'non-empty array'],
    [
      'a checksum that does not match',
      file({ checksum: documentedMasterKeyChecksum(1, [{ version: 1, key: b64(k1) }]) }),
      'damaged',
    ],
    [
      'a checksum made for another active version',
      file({
        checksum: documentedMasterKeyChecksum(1, [
          { version: 1, key: b64(k1) },
          { version: 2, key: b64(k2) },
        ]),
      }),
      'damaged',
    ],
    [
      'a checksum in upper-case hex',
      file({
        checksum: documentedMasterKeyChecksum(2, [
          { version: 1, key: b64(k1) },
          { version: 2, key: b64(k2) },
        ]).toUpperCase(),
      }),
      '"checksum"',
    ],
    ['a checksum that is not a string', file({ checksum: 5 }), '"checksum"'],
    ['text that is not JSON', '{"format": crate', 'not valid JSON'],
    ['a JSON array', '[]', 'JSON object'],
    ['JSON null', 'null', 'JSON object'],
    ['bytes that are not UTF-8', Buffer.from([0x7b, 0xff, 0x7d]), 'UTF-8'],
  ];

  for (const [what, input, messagePart] of rejections) {
    it(`rejects a file with ${what} as ERR_KEYRING_INVALID`, () => {
      expectCode(() => parseMasterKeyFile(input), 'ERR_KEYRING_INVALID', messagePart);
    });
  }

  it('never quotes key material or file content in its error messages', () => {
    const secret = b64(Buffer.alloc(32, 0xcd));
    const broken = `{"format":"crate-master-key","formatVersion":1,"active":1,"keys":[{"version":1,"key":"${secret}"}]`;
    const error = caught(() => parseMasterKeyFile(broken)) as Error;
    expect(isCrateError(error, 'ERR_KEYRING_INVALID')).toBe(true);
    expect(error.message).not.toContain(secret.slice(0, 8));
    expect(error.message).not.toContain('crate-master-key"');
    expect(error.cause).toBeUndefined();
    const short = caught(() =>
      parseMasterKeyFile(file({ keys: [{ version: 2, key: secret.slice(0, 40) }] })),
    ) as Error;
    expect(short.message).not.toContain(secret.slice(0, 8));
  });

  it('refuses to serialize something that is not a Keyring', () => {
    expect(() => serializeMasterKeyFile({} as Keyring)).toThrow(TypeError);
  });
});
