import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { AEAD_KEY_BYTES } from './aead.js';
import { CrateError } from './errors.js';
import { hkdfSha256 } from './hkdf.js';
import { assertBytes } from './lib/assert.js';
import {
  assertKeyVersion,
  assertVersionedKey,
  MAX_KEY_VERSION,
  type VersionedKey,
} from './lib/versioned-key.js';
import { zeroize } from './sensitive.js';

export { MAX_KEY_VERSION } from './lib/versioned-key.js';

/**
 * A set of versioned 32-byte keys, one of them active (used for new wraps), the others kept
 * to unwrap what they wrapped until a rotation has re-wrapped it. Used for the master key
 * (dual-key mode during rotation) and for an org's DEKs.
 *
 * A Keyring owns private copies of its keys: `create` copies what it is given (the caller
 * zeroes its own buffers), every derived keyring (`withNewVersion`, `withActive`, `without`)
 * copies again, and `destroy()` zeroes this keyring's copies only. Keyrings never print their
 * keys: String(), JSON.stringify and util.inspect show versions only.
 */
export class Keyring {
  readonly activeVersion: number;
  readonly #keys: ReadonlyMap<number, Buffer>;
  #destroyed = false;

  private constructor(keys: ReadonlyMap<number, Buffer>, activeVersion: number) {
    this.#keys = keys;
    this.activeVersion = activeVersion;
  }

  /**
   * Builds a keyring from distinct versions (1..2^32-1) of 32-byte keys; `activeVersion` must
   * be one of them. Wrong arguments throw TypeError/RangeError (parseMasterKeyFile reports
   * a bad key file as ERR_KEYRING_INVALID instead).
   */
  static create(keys: readonly VersionedKey[], activeVersion: number): Keyring {
    if (!Array.isArray(keys) || keys.length === 0) {
      throw new TypeError('keys must be a non-empty array of { version, key }');
    }
    assertKeyVersion(activeVersion, 'activeVersion');
    const seen = new Set<number>();
    for (const [index, entry] of keys.entries()) {
      assertVersionedKey(entry, `keys[${index}]`);
      if (seen.has(entry.version)) {
        throw new RangeError(`key version ${entry.version} appears more than once`);
      }
      seen.add(entry.version);
    }
    if (!seen.has(activeVersion)) {
      throw new RangeError(`activeVersion ${activeVersion} is not among the keys`);
    }
    const copies = new Map<number, Buffer>();
    for (const { version, key } of [...keys].sort((a, b) => a.version - b.version)) {
      copies.set(version, Buffer.from(key));
    }
    return new Keyring(copies, activeVersion);
  }

  /** The key new wraps use, with its version. The key is this keyring's copy: do not modify. */
  active(): VersionedKey {
    return { version: this.activeVersion, key: this.require(this.activeVersion) };
  }

  /** The key of `version`, or undefined when this keyring does not hold it. */
  get(version: number): Buffer | undefined {
    this.#assertAlive();
    return this.#keys.get(version);
  }

  /** The key of `version`; ERR_KEY_VERSION_UNKNOWN when this keyring does not hold it. */
  require(version: number): Buffer {
    const key = this.get(version);
    if (key === undefined) {
      throw unknownVersion(version);
    }
    return key;
  }

  /** The versions held, ascending. */
  versions(): number[] {
    return [...this.#keys.keys()];
  }

  /** A new keyring with one more, random key at version max + 1, which becomes active. */
  withNewVersion(): Keyring {
    this.#assertAlive();
    const next = Math.max(...this.#keys.keys()) + 1;
    if (next > MAX_KEY_VERSION) {
      throw new RangeError(`no key version is left after ${MAX_KEY_VERSION}`);
    }
    const key = randomBytes(AEAD_KEY_BYTES);
    try {
      return Keyring.create([...this.#entries(), { version: next, key }], next);
    } finally {
      // Best effort: JavaScript gives no guarantee that no other copy of the bytes exists.
      zeroize(key);
    }
  }

  /** A new keyring with the same keys and `version` active (ERR_KEY_VERSION_UNKNOWN if absent). */
  withActive(version: number): Keyring {
    this.require(version);
    return Keyring.create(this.#entries(), version);
  }

  /**
   * A new keyring without `version` (ERR_KEY_VERSION_UNKNOWN if absent). Dropping the active
   * version is refused with ERR_KEYRING_INVALID: make another version active first.
   */
  without(version: number): Keyring {
    this.require(version);
    if (version === this.activeVersion) {
      throw new CrateError(
        'ERR_KEYRING_INVALID',
        `key version ${version} is active and cannot be removed; make another version active first`,
      );
    }
    return Keyring.create(
      this.#entries().filter((entry) => entry.version !== version),
      this.activeVersion,
    );
  }

  /** Zeroes this keyring's keys; using it afterwards throws. Calling it again does nothing. */
  destroy(): void {
    // Best effort: JavaScript gives no guarantee that no other copy of the bytes exists.
    zeroize(...this.#keys.values());
    this.#destroyed = true;
  }

  toString(): string {
    return `Keyring(versions ${this.versions().join(', ')}; active ${this.activeVersion})`;
  }

  toJSON(): { activeVersion: number; versions: number[] } {
    return { activeVersion: this.activeVersion, versions: this.versions() };
  }

  [inspect.custom](): string {
    return this.toString();
  }

  #entries(): VersionedKey[] {
    return [...this.#keys].map(([version, key]) => ({ version, key }));
  }

  #assertAlive(): void {
    if (this.#destroyed) {
      throw new TypeError('this keyring has been destroyed');
    }
  }
}

/** Where to find the key of a version: a Keyring, or a function (undefined = not held). */
export type KeyLookup = Keyring | ((version: number) => Buffer | undefined);

/** The key of `version` from `lookup`; ERR_KEY_VERSION_UNKNOWN when it is not held. */
export function lookupKey(lookup: KeyLookup, version: number): Buffer {
  if (lookup instanceof Keyring) {
    return lookup.require(version);
  }
  if (typeof lookup !== 'function') {
    throw new TypeError('key lookup must be a Keyring or a function from version to key');
  }
  const key = lookup(version);
  if (key === undefined) {
    throw unknownVersion(version);
  }
  assertBytes(key, `key of version ${version}`, AEAD_KEY_BYTES);
  return key;
}

function unknownVersion(version: number): CrateError {
  return new CrateError('ERR_KEY_VERSION_UNKNOWN', `key version ${version} is not available`);
}

/** A keyring of one random key, version 1, active. */
export function generateKeyring(): Keyring {
  const key = randomBytes(AEAD_KEY_BYTES);
  try {
    return Keyring.create([{ version: 1, key }], 1);
  } finally {
    // Best effort: JavaScript gives no guarantee that no other copy of the bytes exists.
    zeroize(key);
  }
}

const FINGERPRINT_INFO = Buffer.from('crate/key-fingerprint/v1', 'utf8');
const FINGERPRINT_BYTES = 16;

/**
 * 'kfp_' + hex(HKDF-SHA-256(ikm = key, salt = empty, info = "crate/key-fingerprint/v1", 16)).
 * Identifies a key (e.g. "is this the master key the database was written with?") without
 * revealing it: safe to print and to store.
 */
export function keyFingerprint(key: Uint8Array): string {
  assertBytes(key, 'key');
  if (key.length === 0) {
    throw new RangeError('key must not be empty');
  }
  return `kfp_${hkdfSha256(key, Buffer.alloc(0), FINGERPRINT_INFO, FINGERPRINT_BYTES).toString('hex')}`;
}
