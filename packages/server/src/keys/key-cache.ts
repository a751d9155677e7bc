/**
 * A bounded LRU cache with a time-to-live for unwrapped key material. Entries can be pinned
 * while in use: an entry evicted while pinned is disposed (its bytes zeroed) only when the last
 * user releases it, so a request never sees a key turn to zeros under its feet.
 */
interface Entry<V> {
  value: V;
  expiresAt: number;
  pins: number;
  evicted: boolean;
}

export interface KeyCacheOptions {
  maxEntries: number;
  ttlMs: number;
  now?: () => number;
}

export class KeyCache<V> {
  readonly #entries = new Map<string, Entry<V>>();
  readonly #dispose: (value: V) => void;
  readonly #maxEntries: number;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(options: KeyCacheOptions, dispose: (value: V) => void) {
    if (options.maxEntries < 1) throw new RangeError('maxEntries must be at least 1');
    this.#maxEntries = options.maxEntries;
    this.#ttlMs = options.ttlMs;
    this.#now = options.now ?? Date.now;
    this.#dispose = dispose;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Returns the cached value for `key` pinned, loading it with `load` on a miss. The caller
   * must call the returned `release` exactly once when done.
   */
  async acquire(key: string, load: () => Promise<V>): Promise<{ value: V; release: () => void }> {
    let entry = this.#fresh(key);
    if (!entry) {
      const value = await load();
      // Another caller may have loaded the same key meanwhile; keep one copy, dispose ours.
      const raced = this.#fresh(key);
      if (raced) {
        this.#dispose(value);
        entry = raced;
      } else {
        entry = { value, expiresAt: this.#now() + this.#ttlMs, pins: 0, evicted: false };
        this.#entries.set(key, entry);
        this.#evictOverflow();
      }
    }
    const pinned = entry;
    pinned.pins += 1;
    let released = false;
    return {
      value: pinned.value,
      release: () => {
        if (released) return;
        released = true;
        pinned.pins -= 1;
        if (pinned.evicted && pinned.pins === 0) this.#dispose(pinned.value);
      },
    };
  }

  /** Drops one key (e.g. after a rotation), disposing it once nobody holds it. */
  delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry) this.#evict(key, entry);
  }

  /** Evicts the entries whose time is up (disposed once nobody holds them). */
  purgeExpired(): void {
    const now = this.#now();
    for (const [key, entry] of [...this.#entries]) {
      if (entry.expiresAt <= now) this.#evict(key, entry);
    }
  }

  /** Evicts everything: at shutdown, and when the keyring changes. */
  clear(): void {
    for (const [key, entry] of [...this.#entries]) this.#evict(key, entry);
  }

  #fresh(key: string): Entry<V> | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.#now()) {
      this.#evict(key, entry);
      return undefined;
    }
    // Re-insert to mark as most recently used (Map keeps insertion order).
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry;
  }

  #evictOverflow(): void {
    for (const [key, entry] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries) break;
      this.#evict(key, entry);
    }
  }

  #evict(key: string, entry: Entry<V>): void {
    this.#entries.delete(key);
    entry.evicted = true;
    if (entry.pins === 0) this.#dispose(entry.value);
  }
}
