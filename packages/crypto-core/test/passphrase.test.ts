import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DECRYPT_FAILED_MESSAGE,
  decryptWithPassphrase,
  encryptWithPassphrase,
  MAX_PBKDF2_ITERATIONS,
  MIN_PBKDF2_ITERATIONS,
} from '../src/index.js';

const HEADER_BYTES = 24;
const PASSPHRASE = 'correct horse battery staple';
const PLAINTEXT = Buffer.from('{"format":"crate-master-key","keys":[]}');

async function rejection(promise: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { code?: string; message: string };
  }
  throw new Error('expected the promise to reject');
}

function withIterations(blob: Buffer, iterations: number): Buffer {
  const copy = Buffer.from(blob);
  copy.writeUInt32BE(iterations, 4);
  return copy;
}

describe('passphrase encryption', () => {
  let blob: Buffer;

  beforeAll(async () => {
    blob = await encryptWithPassphrase(PLAINTEXT, PASSPHRASE);
  });

  it('decrypts what it encrypted with the same passphrase', async () => {
    expect(await decryptWithPassphrase(blob, PASSPHRASE)).toEqual(PLAINTEXT);
  });

  it('writes the documented header: CP, version 1, KDF 1, 600,000 iterations, 16-byte salt', () => {
    expect(blob.subarray(0, 4)).toEqual(Buffer.of(0x43, 0x50, 0x01, 0x01));
    expect(blob.readUInt32BE(4)).toBe(MIN_PBKDF2_ITERATIONS);
    expect(blob.length).toBe(HEADER_BYTES + 12 + PLAINTEXT.length + 16);
  });

  it('encrypts the same plaintext differently every time (fresh salt and nonce)', async () => {
    const again = await encryptWithPassphrase(PLAINTEXT, PASSPHRASE);
    expect(again.subarray(8, 24)).not.toEqual(blob.subarray(8, 24));
    expect(again.subarray(24)).not.toEqual(blob.subarray(24));
  });

  it('round-trips an empty plaintext and a byte-array passphrase with more iterations', async () => {
    const passphrase = Buffer.from([0x00, 0xff, 0x10, 0x80]);
    const sealed = await encryptWithPassphrase(new Uint8Array(0), passphrase, {
      iterations: 700_000,
    });
    expect(sealed.readUInt32BE(4)).toBe(700_000);
    expect(await decryptWithPassphrase(sealed, passphrase)).toEqual(Buffer.alloc(0));
    expect(passphrase).toEqual(Buffer.from([0x00, 0xff, 0x10, 0x80]));
  });

  it('round-trips any plaintext under any passphrase, text or bytes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 600 }),
        fc.oneof(
          fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
          fc.uint8Array({ minLength: 1, maxLength: 40 }),
        ),
        async (plaintext, passphrase) => {
          const sealed = await encryptWithPassphrase(plaintext, passphrase);
          expect(sealed.length).toBe(HEADER_BYTES + 12 + plaintext.length + 16);
          expect((await decryptWithPassphrase(sealed, passphrase)).equals(plaintext)).toBe(true);
        },
      ),
      // Each run costs two 600,000-iteration PBKDF2 derivations.
      { numRuns: 6 },
    );
  }, 60_000);

  it('fails with the one fixed decryption error for a wrong passphrase', async () => {
    const error = await rejection(decryptWithPassphrase(blob, 'correct horse battery stapler'));
    expect(error.code).toBe('ERR_DECRYPT');
    expect(error.message).toBe(DECRYPT_FAILED_MESSAGE);
  });

  it('treats NFC and NFD spellings of a passphrase string as the same passphrase', async () => {
    const nfc = 'Crème brûlée à la café'.normalize('NFC');
    const nfd = nfc.normalize('NFD');
    expect(nfd).not.toBe(nfc);
    const sealed = await encryptWithPassphrase(PLAINTEXT, nfd);
    expect(await decryptWithPassphrase(sealed, nfc)).toEqual(PLAINTEXT);
    // Byte passphrases are used exactly as given: the NFD bytes are a different passphrase.
    const error = await rejection(decryptWithPassphrase(sealed, Buffer.from(nfd, 'utf8')));
    expect(error.code).toBe('ERR_DECRYPT');
  });

  it.each([
    ['zero', 0],
    ['a weak 1,000', 1_000],
    ['one below the minimum', MIN_PBKDF2_ITERATIONS - 1],
    ['one above the maximum', MAX_PBKDF2_ITERATIONS + 1],
    ['an absurd 2^32-1', 0xffff_ffff],
  ])(
    'refuses a header asking for %s iterations with ERR_KDF_PARAMS_REJECTED before deriving',
    async (_, iterations) => {
      // 2^32-1 iterations would take hours: the test finishing at all shows nothing was derived.
      const error = await rejection(
        decryptWithPassphrase(withIterations(blob, iterations), PASSPHRASE),
      );
      expect(error.code).toBe('ERR_KDF_PARAMS_REJECTED');
      expect(error.message).toContain(String(iterations));
    },
  );

  it('refuses a rewritten but acceptable iteration count because the header is authenticated', async () => {
    const error = await rejection(
      decryptWithPassphrase(withIterations(blob, MIN_PBKDF2_ITERATIONS + 1), PASSPHRASE),
    );
    expect(error.code).toBe('ERR_DECRYPT');
  });

  it('refuses an unknown format version or KDF id with ERR_FORMAT_UNSUPPORTED', async () => {
    const version2 = Buffer.from(blob);
    version2[2] = 2;
    expect((await rejection(decryptWithPassphrase(version2, PASSPHRASE))).code).toBe(
      'ERR_FORMAT_UNSUPPORTED',
    );
    const kdf2 = Buffer.from(blob);
    kdf2[3] = 2;
    expect((await rejection(decryptWithPassphrase(kdf2, PASSPHRASE))).code).toBe(
      'ERR_FORMAT_UNSUPPORTED',
    );
  });

  it('refuses a wrong magic, a truncated blob and an empty blob with the fixed decryption error', async () => {
    const wrongMagic = Buffer.from(blob);
    wrongMagic[0] = 0x58;
    for (const bad of [
      wrongMagic,
      blob.subarray(0, 51),
      blob.subarray(0, blob.length - 1),
      Buffer.alloc(0),
    ]) {
      const error = await rejection(decryptWithPassphrase(bad, PASSPHRASE));
      expect(error.code).toBe('ERR_DECRYPT');
      expect(error.message).toBe(DECRYPT_FAILED_MESSAGE);
    }
  });

  it('refuses iteration options outside 600,000..10,000,000 with a RangeError', async () => {
    await expect(
      encryptWithPassphrase(PLAINTEXT, PASSPHRASE, { iterations: 100_000 }),
    ).rejects.toThrow(RangeError);
    await expect(
      encryptWithPassphrase(PLAINTEXT, PASSPHRASE, { iterations: MAX_PBKDF2_ITERATIONS + 1 }),
    ).rejects.toThrow(RangeError);
    await expect(
      encryptWithPassphrase(PLAINTEXT, PASSPHRASE, { iterations: 600_000.5 }),
    ).rejects.toThrow(RangeError);
  });

  it('refuses an empty passphrase and a passphrase with a lone surrogate as argument errors', async () => {
    await expect(encryptWithPassphrase(PLAINTEXT, '')).rejects.toThrow(RangeError);
    await expect(encryptWithPassphrase(PLAINTEXT, new Uint8Array(0))).rejects.toThrow(RangeError);
    await expect(encryptWithPassphrase(PLAINTEXT, 'pass\ud800word')).rejects.toThrow(TypeError);
    await expect(decryptWithPassphrase(blob, '')).rejects.toThrow(RangeError);
  });

  it('fails on each of the 32 single-bit flips of the magic, version and KDF bytes', async () => {
    for (let bit = 0; bit < 32; bit++) {
      const flipped = Buffer.from(blob);
      flipped[bit >> 3] = flipped[bit >> 3]! ^ (1 << (bit & 7));
      const error = await rejection(decryptWithPassphrase(flipped, PASSPHRASE));
      expect(error.code).toBe(bit < 16 ? 'ERR_DECRYPT' : 'ERR_FORMAT_UNSUPPORTED');
    }
  });

  it('fails on every single-bit flip of a blob, sampled across header, nonce, ciphertext and tag', async () => {
    const bits = blob.length * 8;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: bits - 1 }), async (bit) => {
        const flipped = Buffer.from(blob);
        const byte = bit >> 3;
        flipped[byte] = flipped[byte]! ^ (1 << (bit & 7));
        const error = await rejection(decryptWithPassphrase(flipped, PASSPHRASE));
        if (byte === 2 || byte === 3) {
          expect(error.code).toBe('ERR_FORMAT_UNSUPPORTED');
        } else if (byte >= 4 && byte < 8) {
          expect(['ERR_KDF_PARAMS_REJECTED', 'ERR_DECRYPT']).toContain(error.code);
        } else {
          expect(error.code).toBe('ERR_DECRYPT');
        }
      }),
      // Each sample costs a 600,000-iteration PBKDF2 (more if it raises the iteration count).
      { numRuns: 40 },
    );
  }, 120_000);
});
