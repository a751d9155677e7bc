import type { KeyObject } from 'node:crypto';
import {
  decryptValue,
  importDataKey,
  type KeyLookup,
  readEnvelopeHeader,
  type SecretRef,
  unwrapSecretDek,
  zeroize,
} from '@crate/crypto-core';

/**
 * A memo of unwrapSecretDek: unwrapped secret DEKs (one per secret version), so a retrieval
 * pays one AES-GCM operation per secret instead of two, under a KeyObject instead of raw bytes
 * (see AeadKey in crypto-core: about 6 us instead of 40 us per secret on Node 24).
 *
 * What it holds and why that adds no exposure class: the org DEK, already cached (KeyService),
 * unwraps every one of these keys; a secret DEK opens one value of one secret version. No
 * plaintext value is ever cached: every retrieval decrypts the stored ciphertext again.
 *
 * Exactly a memo, never a short cut around a check:
 * - the cache id is the full context of the unwrap (org, project, environment, name, version)
 *   plus the wrapped DEK's bytes, so a changed, moved or tampered wrapped DEK misses and is
 *   unwrapped (and refused) as before;
 * - an entry records the org DEK Buffer it was unwrapped under, and is used only while the
 *   org's DEK cache hands out that very Buffer for the version in the wrapped DEK's header: once
 *   the org DEK entry is evicted, expired, reloaded (an org DEK rotation) or dropped after an
 *   unseal failure, every secret DEK unwrapped under it misses;
 * - the value ciphertext is authenticated on every read, under its own context.
 *
 * Bounds: at most `maxEntries` keys (LRU), each for at most `ttlMs` from its unwrap (not
 * extended by use; `purgeExpired` runs on a timer in KeyService so an idle process does not keep
 * them). Keys are KeyObjects: the unwrapped bytes are zeroed at once after import, and the
 * KeyObject's copy lives in OpenSSL memory that JavaScript cannot zero; evicting drops the last
 * reference and Node cleanses that memory (OPENSSL_clear_free) when the object is collected.
 */
export interface SecretDekCachePolicy {
  maxEntries: number;
  ttlMs: number;
}

/** 20,000 secret versions (a few MB with their ids), 5 minutes from unwrap. */
export const DEFAULT_SECRET_DEK_CACHE_POLICY: SecretDekCachePolicy = {
  maxEntries: 20_000,
  ttlMs: 5 * 60_000,
};

interface Entry {
  readonly key: KeyObject;
  /** The org DEK (the cache's own Buffer) this key was unwrapped under, and its version. */
  readonly orgDek: Buffer;
  readonly orgDekVersion: number;
  readonly expiresAt: number;
}

export class SecretDekCache {
  readonly #entries = new Map<string, Entry>();
  /** The ids of the entries unwrapped under each org DEK, so forgetUnder touches only those. */
  readonly #byOrgDek = new Map<Buffer, Set<string>>();
  readonly #maxEntries: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** Counters for tests and diagnostics. */
  readonly stats = { hits: 0, misses: 0 };

  constructor(policy: SecretDekCachePolicy, now: () => number = Date.now) {
    if (policy.maxEntries < 0) throw new RangeError('maxEntries must not be negative');
    this.#maxEntries = policy.maxEntries;
    this.#ttlMs = policy.ttlMs;
    this.#now = now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * decryptSecret(orgDeks, wrappedDek, ciphertext, ref), unwrapping the secret DEK only when
   * this cache does not hold it for the org DEK `orgDeks` hands out now. Same results, same
   * errors (ERR_DECRYPT, ERR_KEY_VERSION_UNKNOWN) as decryptSecret.
   */
  decrypt(
    orgDeks: (version: number) => Buffer | undefined,
    wrappedDek: Uint8Array,
    ciphertext: Uint8Array,
    ref: SecretRef,
  ): Buffer {
    const id = cacheId(ref, wrappedDek);
    const hit = this.#entries.get(id);
    if (hit !== undefined) {
      if (hit.expiresAt > this.#now() && orgDeks(hit.orgDekVersion) === hit.orgDek) {
        this.#entries.delete(id);
        this.#entries.set(id, hit); // most recently used
        this.stats.hits += 1;
        return decryptValue(hit.key, ciphertext, ref);
      }
      this.#remove(id, hit);
    }
    // A miss: the unwrap checks the header, the org DEK version and the context, as always.
    this.stats.misses += 1;
    const { keyVersion } = readEnvelopeHeader(wrappedDek);
    const raw = unwrapSecretDek(orgDeks as KeyLookup, wrappedDek, ref);
    let key: KeyObject;
    try {
      key = importDataKey(raw);
    } finally {
      // Best effort: JavaScript gives no guarantee that no other copy of the bytes exists.
      zeroize(raw);
    }
    const value = decryptValue(key, ciphertext, ref);
    const orgDek = orgDeks(keyVersion);
    if (this.#maxEntries > 0 && orgDek !== undefined) {
      this.#entries.set(id, {
        key,
        orgDek,
        orgDekVersion: keyVersion,
        expiresAt: this.#now() + this.#ttlMs,
      });
      const ids = this.#byOrgDek.get(orgDek) ?? new Set<string>();
      ids.add(id);
      this.#byOrgDek.set(orgDek, ids);
      for (const [oldest, entry] of this.#entries) {
        if (this.#entries.size <= this.#maxEntries) break;
        this.#remove(oldest, entry);
      }
    }
    return value;
  }

  /** Drops every key unwrapped under one of `orgDeks` (an org DEK entry being disposed). */
  forgetUnder(orgDeks: Iterable<Buffer>): void {
    for (const orgDek of orgDeks) {
      for (const id of this.#byOrgDek.get(orgDek) ?? []) this.#entries.delete(id);
      this.#byOrgDek.delete(orgDek);
    }
  }

  /** Drops the entries whose time is up. */
  purgeExpired(): void {
    const now = this.#now();
    for (const [id, entry] of this.#entries) {
      if (entry.expiresAt <= now) this.#remove(id, entry);
    }
  }

  /** Drops everything: at shutdown and when the unseal state fails. */
  clear(): void {
    this.#entries.clear();
    this.#byOrgDek.clear();
  }

  #remove(id: string, entry: Entry): void {
    this.#entries.delete(id);
    const ids = this.#byOrgDek.get(entry.orgDek);
    ids?.delete(id);
    if (ids?.size === 0) this.#byOrgDek.delete(entry.orgDek);
  }
}

/**
 * Everything the unwrap depends on besides the org DEK: the context fields (ids carry no NUL;
 * the name, which is validated but comes last anyway) and the wrapped DEK's exact bytes.
 */
function cacheId(ref: SecretRef, wrappedDek: Uint8Array): string {
  const blob = Buffer.from(wrappedDek.buffer, wrappedDek.byteOffset, wrappedDek.byteLength);
  return `${ref.orgId}\0${ref.projectId}\0${ref.environmentId}\0${ref.version}\0${blob.toString('base64')}\0${ref.name}`;
}
