import { describe, expect, it, vi } from 'vitest';

// Records every plaintext chunk AES-GCM hands out, so that the test can look at it afterwards.
const handedOut: Buffer[] = [];
vi.mock('node:crypto', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:crypto')>();
  return {
    ...original,
    createDecipheriv: ((...args: Parameters<typeof original.createDecipheriv>) => {
      const decipher = original.createDecipheriv(...args);
      const update = decipher.update.bind(decipher) as (data: Buffer) => Buffer;
      (decipher as unknown as { update: (data: Buffer) => Buffer }).update = (data) => {
        const chunk = update(data);
        handedOut.push(chunk);
        return chunk;
      };
      return decipher;
    }) as typeof original.createDecipheriv,
  };
});

const { aeadOpen, aeadSeal } = await import('../src/aead.js');

describe('aeadDecrypt and unauthenticated plaintext', () => {
  it('zeroes the plaintext GCM produced before a tampered tag was detected', () => {
    const key = Buffer.alloc(32, 3);
    const aad = Buffer.from('context');
    const value = Buffer.from('a secret value that must not linger');
    const sealed = aeadSeal(key, value, aad);
    sealed[sealed.length - 1]! ^= 1;
    handedOut.length = 0;
    expect(() => aeadOpen(key, sealed, aad)).toThrow(
      expect.objectContaining({ code: 'ERR_DECRYPT' }),
    );
    expect(handedOut).toHaveLength(1);
    expect(handedOut[0]!.length).toBe(value.length);
    expect(handedOut[0]!.equals(Buffer.alloc(value.length))).toBe(true);
  });

  it('returns the plaintext untouched when the tag is right', () => {
    const key = Buffer.alloc(32, 3);
    const sealed = aeadSeal(key, Buffer.from('hello'), Buffer.from('ctx'));
    expect(aeadOpen(key, sealed, Buffer.from('ctx')).toString()).toBe('hello');
  });
});
