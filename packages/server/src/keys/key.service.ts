import type { KeyObject } from 'node:crypto';
import {
  CrateError,
  importSealingPrivateKey,
  importSigningPrivateKey,
  importSigningPublicKey,
  isCrateError,
  type Keyring,
  type SecretRef,
  unwrapOrgDek,
  unwrapOrgMacKey,
  unwrapPrivateKey,
  type VersionedKey,
  zeroize,
} from '@crate/crypto-core';
import type { Kysely } from 'kysely';
import type { AuditSigner } from '../audit/audit.writer.js';
import type { Database, KeyStatus, OrgKey } from '../db/schema.js';
import { KeyCache } from './key-cache.js';
import {
  findActiveAuditKey,
  findActiveAuditKeyId,
  findActiveOrgKey,
  findOrgKey,
  listAllWrappedOrgMaterial,
  listOrgDeks,
  listOrgMacKeys,
  listSystemKeys,
} from './keys.repository.js';
import {
  DEFAULT_SECRET_DEK_CACHE_POLICY,
  SecretDekCache,
  type SecretDekCachePolicy,
} from './secret-dek-cache.js';
import { masterKeyFailure } from './unseal-guidance.js';
import type { UnsealState } from './unseal-state.js';

/** The org DEKs a request may use: the active one for new wraps, any held version for opening. */
export interface OrgDeks {
  readonly orgId: string;
  readonly active: VersionedKey;
  /** Synchronous, so it can be passed to crypto-core as a KeyLookup. */
  readonly lookup: (version: number) => Buffer | undefined;
  /**
   * The org's integrity (MAC) keys, loaded and evicted with its DEKs: the newest for new MACs
   * (undefined when the org has none, which refuses every write: see secret-integrity.ts), any
   * held version for checking one.
   */
  readonly macKeys: {
    readonly active: VersionedKey | undefined;
    readonly lookup: (version: number) => Buffer | undefined;
  };
}

export interface SealingKey {
  keyId: string;
  status: KeyStatus;
  privateKey: KeyObject;
}

export interface KeyCachePolicy {
  maxEntries: number;
  ttlMs: number;
}

/**
 * Cache policy: unwrapped org DEKs sit in a bounded LRU (default 1,000 orgs, 10 minutes
 * since load) and are zeroed on eviction, on expiry and at shutdown; a pinned entry is zeroed
 * when its last user releases it. Private keys are cached as KeyObjects (same bound): their
 * bytes live inside OpenSSL, where JavaScript cannot zero them; the PKCS#8 buffer they are
 * imported from is zeroed immediately. A miss costs one row read and one AES-GCM unwrap.
 */
export const DEFAULT_KEY_CACHE_POLICY: KeyCachePolicy = { maxEntries: 1000, ttlMs: 10 * 60_000 };

const AUDIT_SIGNER_REFRESH_MS = 60_000;
/** How often expired entries are dropped even if nobody asks for them (an idle org's keys). */
const CACHE_SWEEP_INTERVAL_MS = 30_000;

interface CachedDeks {
  activeVersion: number;
  versions: Map<number, Buffer>;
  macKeys: Map<number, Buffer>;
}

// signingKeyById's internal signal (never leaves it): the key read with the values is not a
// usable signing key of the org any more. One instance, so the hot path builds no Error.
const SIGNING_KEY_GONE = new Error('signing key no longer usable');

export class KeyService {
  readonly #db: Kysely<Database>;
  readonly #keyring: Keyring;
  readonly #unseal: UnsealState;
  readonly #deks: KeyCache<CachedDeks>;
  readonly #privateKeys: KeyCache<KeyObject>;
  readonly #secretDeks: SecretDekCache;
  /** Which org each signing key id seen so far belongs to (immutable facts, a few per org). */
  readonly #signingKeyOrgs = new Map<string, string>();
  readonly #sweeper: NodeJS.Timeout;
  #auditPublicKeys = new Map<string, KeyObject>();
  #auditSigner: { signer: AuditSigner; loadedAt: number } | undefined;

  constructor(
    db: Kysely<Database>,
    keyring: Keyring,
    unseal: UnsealState,
    policy = DEFAULT_KEY_CACHE_POLICY,
    secretDekPolicy: SecretDekCachePolicy = DEFAULT_SECRET_DEK_CACHE_POLICY,
  ) {
    this.#db = db;
    this.#keyring = keyring;
    this.#unseal = unseal;
    this.#secretDeks = new SecretDekCache(secretDekPolicy);
    this.#deks = new KeyCache<CachedDeks>(policy, (entry) => {
      this.#secretDeks.forgetUnder(entry.versions.values());
      for (const key of [...entry.versions.values(), ...entry.macKeys.values()]) zeroize(key);
      entry.versions.clear();
      entry.macKeys.clear();
    });
    this.#privateKeys = new KeyCache<KeyObject>(policy, () => {});
    this.#sweeper = setInterval(() => {
      this.#deks.purgeExpired();
      this.#privateKeys.purgeExpired();
      this.#secretDeks.purgeExpired();
    }, CACHE_SWEEP_INTERVAL_MS);
    this.#sweeper.unref();
  }

  get keyring(): Keyring {
    return this.#keyring;
  }

  /**
   * Runs `fn` with the org's unwrapped DEKs. The keys stay valid until `fn` settles; do not
   * keep references to them afterwards (they are zeroed when evicted).
   */
  async useOrgDeks<T>(orgId: string, fn: (deks: OrgDeks) => Promise<T> | T): Promise<T> {
    this.#assertUnsealed();
    for (let attempt = 1; ; attempt++) {
      const { value, release } = await this.#deks.acquire(orgId, () => this.#loadDeks(orgId));
      let missed = false;
      try {
        const active = value.versions.get(value.activeVersion)!;
        const macVersion = Math.max(0, ...value.macKeys.keys());
        const macKeys = value.macKeys;
        return await fn({
          orgId,
          active: { version: value.activeVersion, key: active },
          lookup: (version) => {
            const key = value.versions.get(version);
            if (key === undefined) missed = true;
            return key;
          },
          macKeys: {
            active:
              macVersion === 0 ? undefined : { version: macVersion, key: macKeys.get(macVersion)! },
            lookup: (version) => macKeys.get(version),
          },
        });
      } catch (error) {
        // A version this cache does not hold: an org DEK rotation (maybe in another process)
        // created it after the entry was loaded. Reload once and run `fn` again; its
        // transaction, if any, was rolled back by the throw.
        if (!missed || attempt > 1 || !isCrateError(error, 'ERR_KEY_VERSION_UNKNOWN')) throw error;
        this.#deks.delete(orgId);
      } finally {
        release();
      }
    }
  }

  /**
   * Drops the org's cached DEKs (after an org DEK rotation made a new version active), so the
   * next write wraps under the new version. Other processes pick it up when their entry expires
   * (the TTL) or at once when they meet a version they do not hold.
   */
  forgetOrgDeks(orgId: string): void {
    this.#deks.delete(orgId);
  }

  /**
   * The org's sealing private key by id (active or retired), or undefined if unknown/destroyed.
   * A caller that has just read the key's row (to check its status) passes it, saving a query.
   */
  async sealingKey(orgId: string, keyId: string, row?: OrgKey): Promise<SealingKey | undefined> {
    this.#assertUnsealed();
    row ??= await findOrgKey(this.#db, orgId, keyId);
    if (
      row?.kind !== 'sealing' ||
      row.id !== keyId ||
      row.org_id !== orgId ||
      row.wrapped_private_key === null
    ) {
      return undefined;
    }
    const privateKey = await this.#privateKey(orgId, row.id, 'sealing', row.wrapped_private_key);
    return { keyId: row.id, status: row.status, privateKey };
  }

  /** The org's active Ed25519 bundle-signing key. */
  async activeSigningKey(orgId: string): Promise<{ keyId: string; privateKey: KeyObject }> {
    this.#assertUnsealed();
    const row = await findActiveOrgKey(this.#db, orgId, 'signing');
    if (!row || row.wrapped_private_key === null) {
      throw new CrateError('ERR_INTERNAL', `organization ${orgId} has no active signing key`);
    }
    this.#signingKeyOrgs.set(row.id, orgId);
    return {
      keyId: row.id,
      privateKey: await this.#privateKey(orgId, row.id, 'signing', row.wrapped_private_key),
    };
  }

  /**
   * The org's signing private key by id, for a caller that has just read `keyId` as the org's
   * active signing key in its own query (a retrieval reads it together with the values, which
   * saves a round trip). From the private key cache; on a miss the row is read by id, checked
   * to be this org's signing key, and unwrapped.
   */
  async signingKeyById(
    orgId: string,
    keyId: string,
  ): Promise<{ keyId: string; privateKey: KeyObject }> {
    this.#assertUnsealed();
    const readRow = async () => {
      const row = await findOrgKey(this.#db, orgId, keyId);
      if (row?.kind !== 'signing' || row.wrapped_private_key === null) throw SIGNING_KEY_GONE;
      this.#signingKeyOrgs.set(keyId, orgId);
      return row.wrapped_private_key;
    };
    try {
      // The private key cache is keyed by key id alone: serve it only for the org that owns the
      // id (a row's org never changes); an id not yet seen for this org is checked in the table.
      const wrapped = this.#signingKeyOrgs.get(keyId) === orgId ? readRow : await readRow();
      return { keyId, privateKey: await this.#privateKey(orgId, keyId, 'signing', wrapped) };
    } catch (error) {
      if (error !== SIGNING_KEY_GONE) throw error;
      // A key rotation committed between the caller's read and this one and destroyed the key
      // (or the id was never this org's signing key): sign with the key active now. The bundle
      // names its key id, and a CLI meeting a new one refetches the keys and follows the vouch.
      return this.activeSigningKey(orgId);
    }
  }

  /**
   * The signer for the audit log. The audit writer asks for it on every batch; the private key
   * is unwrapped at most once a minute, but the id of the active audit key is read every time
   * (one small indexed query): if the database under a running server was swapped or restored,
   * the server must not sign entries with a key that database does not hold. A changed id is
   * unwrapped at once, so a database this master key does not open fails closed right away.
   *
   * With `deferCheck` a cached signer is returned without that query, marked
   * `checkActiveInStatement`: the audit writer then makes "this key is still the active audit
   * key" a condition of the very statement that appends the entries, and asks again without
   * `deferCheck` when that statement writes nothing. Same guarantee, one round trip fewer.
   */
  async auditSigner(options: { deferCheck?: boolean } = {}): Promise<AuditSigner> {
    this.#assertUnsealed();
    const cached = this.#auditSigner;
    if (cached && Date.now() - cached.loadedAt < AUDIT_SIGNER_REFRESH_MS) {
      if (options.deferCheck) return { ...cached.signer, checkActiveInStatement: true };
      const active = await findActiveAuditKeyId(this.#db);
      if (active === cached.signer.keyId) return cached.signer;
    }
    const row = await findActiveAuditKey(this.#db);
    if (!row || row.wrapped_private_key === null) {
      throw new CrateError('ERR_AUDIT_UNAVAILABLE', 'no active audit signing key');
    }
    const signer = {
      keyId: row.id,
      privateKey: await this.#privateKey('system', row.id, 'audit', row.wrapped_private_key),
    };
    this.#auditSigner = { signer, loadedAt: Date.now() };
    return signer;
  }

  /** Audit public keys by id (retired ones too: old entries stay verifiable). */
  async auditPublicKeys(): Promise<(keyId: string) => KeyObject | undefined> {
    const rows = await listSystemKeys(this.#db);
    for (const row of rows) {
      if (!this.#auditPublicKeys.has(row.id)) {
        this.#auditPublicKeys.set(row.id, importSigningPublicKey(row.public_key));
      }
    }
    const known = this.#auditPublicKeys;
    return (keyId) => known.get(keyId);
  }

  /**
   * Unwraps every org DEK and private key the database holds, then throws away the result.
   * Run at start-up so a wrong key file or a copied database is refused before serving.
   */
  async verifyMasterKeyOpensEverything(): Promise<{
    deks: number;
    privateKeys: number;
    macKeys: number;
  }> {
    const [deks, orgKeys, systemKeys, macKeys] = await listAllWrappedOrgMaterial(this.#db);
    for (const dek of deks) {
      const key = this.#unwrap(
        () =>
          unwrapOrgDek(this.#keyring, dek.wrapped_key, {
            orgId: dek.org_id,
            dekVersion: dek.version,
          }),
        `the DEK v${dek.version} of organization ${dek.org_id}`,
        true,
      );
      zeroize(key);
    }
    for (const mac of macKeys) {
      const key = this.#unwrap(
        () =>
          unwrapOrgMacKey(this.#keyring, mac.wrapped_key, {
            orgId: mac.org_id,
            macKeyVersion: mac.version,
          }),
        `the integrity key v${mac.version} of organization ${mac.org_id}`,
        true,
      );
      zeroize(key);
    }
    for (const key of orgKeys) {
      const der = this.#unwrap(
        () =>
          unwrapPrivateKey(this.#keyring, key.wrapped_private_key!, {
            orgId: key.org_id,
            keyId: key.id,
            keyKind: key.kind,
          }),
        `the ${key.kind} key ${key.id} of organization ${key.org_id}`,
        true,
      );
      zeroize(der);
    }
    for (const key of systemKeys) {
      const der = this.#unwrap(
        () =>
          unwrapPrivateKey(this.#keyring, key.wrapped_private_key!, {
            orgId: 'system',
            keyId: key.id,
            keyKind: 'audit',
          }),
        `the audit signing key ${key.id}`,
        true,
      );
      zeroize(der);
    }
    return {
      deks: deks.length,
      privateKeys: orgKeys.length + systemKeys.length,
      macKeys: macKeys.length,
    };
  }

  /**
   * Drops one org private key from this process's cache (after a rotation retired or destroyed
   * it). Other processes drop theirs when the entry expires; until then the row, re-read on
   * every use, already refuses a destroyed key.
   */
  forgetOrgKey(kind: 'sealing' | 'signing', keyId: string): void {
    this.#privateKeys.delete(`${kind}:${keyId}`);
  }

  /**
   * decryptSecret through the secret DEK cache (secret-dek-cache.ts): same result and errors,
   * but a secret version read before (under the same cached org DEK) skips its DEK unwrap.
   * `deks` is the argument of a running useOrgDeks callback.
   */
  decryptSecret(
    deks: OrgDeks,
    wrappedDek: Uint8Array,
    ciphertext: Uint8Array,
    ref: SecretRef,
  ): Buffer {
    this.#assertUnsealed();
    return this.#secretDeks.decrypt(deks.lookup, wrappedDek, ciphertext, ref);
  }

  /** How many entries each cache holds now (for tests and diagnostics; no key material). */
  cacheSizes(): { orgDeks: number; privateKeys: number; secretDeks: number } {
    return {
      orgDeks: this.#deks.size,
      privateKeys: this.#privateKeys.size,
      secretDeks: this.#secretDeks.size,
    };
  }

  /** Zeroes every cached key; also call on shutdown. */
  destroy(): void {
    this.#auditSigner = undefined;
    clearInterval(this.#sweeper);
    this.#secretDeks.clear();
    this.#deks.clear();
    this.#privateKeys.clear();
  }

  async #loadDeks(orgId: string): Promise<CachedDeks> {
    const [rows, macRows] = await Promise.all([
      listOrgDeks(this.#db, orgId),
      listOrgMacKeys(this.#db, orgId),
    ]);
    const active = rows.find((row) => row.status === 'active');
    if (!active) throw new CrateError('ERR_NOT_FOUND', 'no such organization');
    const versions = new Map<number, Buffer>();
    const macKeys = new Map<number, Buffer>();
    try {
      for (const row of macRows) {
        macKeys.set(
          row.version,
          this.#unwrap(
            () =>
              unwrapOrgMacKey(this.#keyring, row.wrapped_key, {
                orgId,
                macKeyVersion: row.version,
              }),
            `the integrity key v${row.version} of organization ${orgId}`,
          ),
        );
      }
      for (const row of rows) {
        versions.set(
          row.version,
          this.#unwrap(
            () => unwrapOrgDek(this.#keyring, row.wrapped_key, { orgId, dekVersion: row.version }),
            `the DEK v${row.version} of organization ${orgId}`,
          ),
        );
      }
    } catch (error) {
      for (const key of [...versions.values(), ...macKeys.values()]) zeroize(key);
      throw error;
    }
    return { activeVersion: active.version, versions, macKeys };
  }

  async #privateKey(
    orgId: string,
    keyId: string,
    keyKind: 'sealing' | 'signing' | 'audit',
    wrapped: Buffer | (() => Promise<Buffer>),
  ): Promise<KeyObject> {
    const { value, release } = await this.#privateKeys.acquire(`${keyKind}:${keyId}`, async () => {
      // A function is called on a cache miss only (the caller then need not read the row).
      if (typeof wrapped === 'function') wrapped = await wrapped();
      const blob = wrapped;
      const der = this.#unwrap(
        () => unwrapPrivateKey(this.#keyring, blob, { orgId, keyId, keyKind }),
        keyKind === 'audit'
          ? `the audit signing key ${keyId}`
          : `the ${keyKind} key ${keyId} of organization ${orgId}`,
      );
      try {
        return keyKind === 'sealing' ? importSealingPrivateKey(der) : importSigningPrivateKey(der);
      } finally {
        // JavaScript gives no guarantee no other copy exists; this shortens the window.
        zeroize(der);
      }
    });
    release();
    return value;
  }

  /**
   * Turns an unwrap failure into the fail-closed codes, records it for /healthz and drops every
   * cached key: from then on this process refuses all key use (see #assertUnsealed) until it is
   * restarted with a key file and a database that belong together. What failed is named only
   * when `detailed` (the start-up check, read by the operator); requests and /healthz get a
   * message without ids, since it may reach a client of another organization. The detailed
   * error stays on `cause`, which the server log prints.
   */
  #unwrap(fn: () => Buffer, what: string, detailed = false): Buffer {
    try {
      return fn();
    } catch (error) {
      if (isCrateError(error, 'ERR_KEY_VERSION_UNKNOWN') || isCrateError(error, 'ERR_DECRYPT')) {
        const specific = masterKeyFailure(error.code, `${what} (${error.message})`, error);
        const generic = masterKeyFailure(error.code, 'a key this database holds', specific);
        this.#unseal.fail(generic.code, generic.message);
        this.destroy();
        throw detailed ? specific : generic;
      }
      throw error;
    }
  }

  /** Once an unwrap has failed, every key use fails closed with the recorded error. */
  #assertUnsealed(): void {
    const failure = this.#unseal.error;
    if (failure) throw new CrateError(failure.code, failure.message);
  }
}
