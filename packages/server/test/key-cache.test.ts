import { describe, expect, it } from 'vitest';
import { KeyCache } from '../src/keys/key-cache.js';

function cacheWithClock(maxEntries: number, ttlMs: number) {
  let now = 0;
  const disposed: string[] = [];
  const cache = new KeyCache<Buffer>({ maxEntries, ttlMs, now: () => now }, (value) => {
    disposed.push(value.toString());
    value.fill(0);
  });
  return { cache, disposed, advance: (ms: number) => (now += ms) };
}

describe('KeyCache', () => {
  it('loads a key once and serves later requests from memory', async () => {
    const { cache } = cacheWithClock(10, 1000);
    let loads = 0;
    const load = async () => {
      loads += 1;
      return Buffer.from('k1');
    };
    (await cache.acquire('a', load)).release();
    (await cache.acquire('a', load)).release();
    expect(loads).toBe(1);
  });

  it('zeroes the least recently used key when the bound is exceeded', async () => {
    const { cache, disposed } = cacheWithClock(2, 1000);
    const a = Buffer.from('a');
    (await cache.acquire('a', async () => a)).release();
    (await cache.acquire('b', async () => Buffer.from('b'))).release();
    (await cache.acquire('a', async () => Buffer.from('unused'))).release();
    (await cache.acquire('c', async () => Buffer.from('c'))).release();
    expect(disposed).toEqual(['b']);
    expect(cache.size).toBe(2);
  });

  it('reloads and zeroes a key whose time to live has passed', async () => {
    const { cache, disposed, advance } = cacheWithClock(10, 1000);
    const first = Buffer.from('old');
    (await cache.acquire('a', async () => first)).release();
    advance(1001);
    const second = await cache.acquire('a', async () => Buffer.from('new'));
    expect(second.value.toString()).toBe('new');
    expect(disposed).toEqual(['old']);
    expect(first.every((byte) => byte === 0)).toBe(true);
    second.release();
  });

  it('zeroes expired keys on purgeExpired without waiting for a request', async () => {
    const { cache, disposed, advance } = cacheWithClock(10, 1000);
    const old = Buffer.from('old');
    (await cache.acquire('a', async () => old)).release();
    advance(600);
    const held = await cache.acquire('b', async () => Buffer.from('b'));
    advance(500);
    cache.purgeExpired();
    expect(disposed).toEqual(['old']);
    expect(old.every((byte) => byte === 0)).toBe(true);
    expect(cache.size).toBe(1);
    advance(500);
    cache.purgeExpired(); // b expired while pinned: zeroed only when released
    expect(disposed).toEqual(['old']);
    held.release();
    expect(disposed).toEqual(['old', 'b']);
  });

  it('defers zeroing an evicted key until its last user releases it', async () => {
    const { cache, disposed } = cacheWithClock(1, 1000);
    const held = await cache.acquire('a', async () => Buffer.from('a'));
    (await cache.acquire('b', async () => Buffer.from('b'))).release();
    expect(disposed).toEqual([]);
    expect(held.value.toString()).toBe('a');
    held.release();
    held.release();
    expect(disposed).toEqual(['a']);
  });

  it('zeroes every key on clear, as at shutdown', async () => {
    const { cache, disposed } = cacheWithClock(10, 1000);
    (await cache.acquire('a', async () => Buffer.from('a'))).release();
    (await cache.acquire('b', async () => Buffer.from('b'))).release();
    cache.clear();
    expect(disposed.sort()).toEqual(['a', 'b']);
    expect(cache.size).toBe(0);
  });

  it('keeps one copy when two callers load the same key at once and zeroes the other', async () => {
    const { cache, disposed } = cacheWithClock(10, 1000);
    const [x, y] = await Promise.all([
      cache.acquire('a', async () => Buffer.from('first')),
      cache.acquire('a', async () => Buffer.from('second')),
    ]);
    expect(x.value).toBe(y.value);
    expect(disposed).toHaveLength(1);
    x.release();
    y.release();
  });
});
