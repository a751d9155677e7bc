import {
  constants,
  createHash,
  generateKeyPairSync,
  type KeyObject,
  publicEncrypt,
  randomBytes,
  webcrypto,
} from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DECRYPT_FAILED_MESSAGE,
  formatFingerprint,
  generateSealingKeyPair,
  importSealingPrivateKey,
  importSealingPublicKey,
  isCrateError,
  openSeal,
  parseSealEnvelope,
  rsaOaepUnwrap,
  type SealDestination,
  type SealEnvelope,
  sealValue,
  spkiFingerprint,
} from '../src/index.js';

const dest: SealDestination = {
  orgId: 'org_01HZX',
  project: 'billing',
  environment: 'production',
  name: 'STRIPE_KEY',
};
const kid = 'sk_2024_01';

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

function expectDecryptError(fn: () => unknown): void {
  const error = caught(fn);
  expect(isCrateError(error, 'ERR_DECRYPT')).toBe(true);
  expect((error as Error).message).toBe(DECRYPT_FAILED_MESSAGE);
}

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

/** An independent rendering of the documented AAD (docs/formats.md §4). */
function documentedSealAad(envelopeKid: string, to: SealDestination): Buffer {
  const parts = [
    'crate/aad/v1',
    'seal',
    'v',
    '1',
    'alg',
    'RSA-OAEP-256+A256GCM',
    'kid',
    envelopeKid,
    'orgId',
    to.orgId,
    'project',
    to.project,
    'environment',
    to.environment,
    'name',
    to.name,
  ];
  return Buffer.concat(
    parts.flatMap((part) => {
      const bytes = Buffer.from(part, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length);
      return [length, bytes];
    }),
  );
}

let spki: Buffer;
let pkcs8: Buffer;
let publicKey: KeyObject;
let privateKey: KeyObject;
let otherPrivateKey: KeyObject;

beforeAll(async () => {
  const pair = await generateSealingKeyPair(2048);
  spki = pair.publicKeySpki;
  pkcs8 = pair.privateKeyPkcs8;
  publicKey = importSealingPublicKey(spki);
  privateKey = importSealingPrivateKey(pkcs8);
  otherPrivateKey = importSealingPrivateKey((await generateSealingKeyPair(2048)).privateKeyPkcs8);
});

describe('sealValue and openSeal', () => {
  it.each([
    ['an empty value', Buffer.alloc(0)],
    ['a short text value', Buffer.from('sk_live_51H…', 'utf8')],
    ['binary bytes including zeros', Buffer.from([0, 255, 0, 1, 128, 0])],
    ['a 1 MiB value', randomBytes(1 << 20)],
  ])('round-trips %s', (_label, value) => {
    const envelope = sealValue(publicKey, kid, value, dest);
    expect(openSeal(privateKey, envelope, dest).equals(value)).toBe(true);
  });

  it('accepts the public key as SPKI bytes as well as a KeyObject', () => {
    const value = Buffer.from('from spki');
    expect(openSeal(privateKey, sealValue(spki, kid, value, dest), dest)).toEqual(value);
  });

  it('accepts a plain Uint8Array value and returns a Buffer', () => {
    const value = new Uint8Array([1, 2, 3]);
    const opened = openSeal(privateKey, sealValue(publicKey, kid, value, dest), dest);
    expect(Buffer.isBuffer(opened)).toBe(true);
    expect([...opened]).toEqual([1, 2, 3]);
  });

  it('round-trips with a 3072-bit key (the default) and with a 4096-bit key', async () => {
    for (const bits of [undefined, 4096]) {
      const pair = await generateSealingKeyPair(bits);
      const priv = importSealingPrivateKey(pair.privateKeyPkcs8);
      expect(priv.asymmetricKeyDetails?.modulusLength).toBe(bits ?? 3072);
      const envelope = sealValue(pair.publicKeySpki, kid, Buffer.from('v'), dest);
      expect(Buffer.from(envelope.ek, 'base64url')).toHaveLength((bits ?? 3072) / 8);
      expect(openSeal(priv, envelope, dest).toString()).toBe('v');
    }
  }, 60_000);

  it('produces exactly the documented JSON shape with unpadded base64url fields', () => {
    const envelope = sealValue(publicKey, kid, Buffer.from('abc'), dest);
    expect(Object.keys(envelope).sort()).toEqual(['alg', 'ct', 'ek', 'iv', 'kid', 'tag', 'v']);
    expect(envelope.v).toBe(1);
    expect(envelope.alg).toBe('RSA-OAEP-256+A256GCM');
    expect(envelope.kid).toBe(kid);
    for (const field of ['ek', 'iv', 'ct', 'tag'] as const) {
      expect(envelope[field]).toMatch(/^[A-Za-z0-9_-]*$/);
    }
    expect(Buffer.from(envelope.ek, 'base64url')).toHaveLength(256);
    expect(Buffer.from(envelope.iv, 'base64url')).toHaveLength(12);
    expect(Buffer.from(envelope.ct, 'base64url')).toHaveLength(3);
    expect(Buffer.from(envelope.tag, 'base64url')).toHaveLength(16);
    expect(JSON.parse(JSON.stringify(envelope))).toEqual(envelope);
  });

  it('uses a fresh content key and nonce for every seal of the same value', () => {
    const a = sealValue(publicKey, kid, Buffer.from('same'), dest);
    const b = sealValue(publicKey, kid, Buffer.from('same'), dest);
    expect(a.ek).not.toBe(b.ek);
    expect(a.iv).not.toBe(b.iv);
    expect(a.ct).not.toBe(b.ct);
  });

  it.each(['orgId', 'project', 'environment', 'name'] as const)(
    'refuses to open a seal for another destination whose %s differs',
    (field) => {
      const envelope = sealValue(publicKey, kid, Buffer.from('v'), dest);
      expectDecryptError(() =>
        openSeal(privateKey, envelope, { ...dest, [field]: `${dest[field]}x` }),
      );
    },
  );

  it('refuses a seal whose kid was changed, because the kid is bound through the AAD', () => {
    const envelope = sealValue(publicKey, kid, Buffer.from('v'), dest);
    expectDecryptError(() => openSeal(privateKey, { ...envelope, kid: 'sk_2024_02' }, dest));
  });

  it('fails with the wrong private key exactly as it fails with a tampered tag', () => {
    const envelope = sealValue(publicKey, kid, Buffer.from('v'), dest);
    const tag = Buffer.from(envelope.tag, 'base64url');
    tag[0]! ^= 1;
    const wrongKey = caught(() => openSeal(otherPrivateKey, envelope, dest)) as Error;
    const tampered = caught(() =>
      openSeal(privateKey, { ...envelope, tag: b64url(tag) }, dest),
    ) as Error;
    expect(isCrateError(wrongKey, 'ERR_DECRYPT')).toBe(true);
    expect(isCrateError(tampered, 'ERR_DECRYPT')).toBe(true);
    expect(wrongKey.message).toBe(tampered.message);
    expect(wrongKey.constructor).toBe(tampered.constructor);
  });

  it('fails the same way when the wrapped key has the wrong length or decrypts to a non-32-byte key', () => {
    const envelope = sealValue(publicKey, kid, Buffer.from('v'), dest);
    const shortKey = publicEncrypt(
      { key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      randomBytes(16),
    );
    expect(rsaOaepUnwrap(privateKey, shortKey)).toHaveLength(16);
    expectDecryptError(() => openSeal(privateKey, { ...envelope, ek: b64url(shortKey) }, dest));
    expectDecryptError(() =>
      openSeal(privateKey, { ...envelope, ek: b64url(randomBytes(255)) }, dest),
    );
    expectDecryptError(() =>
      openSeal(privateKey, { ...envelope, ek: b64url(randomBytes(256)) }, dest),
    );
  });

  it('treats wrong arguments from the caller as programming errors, not as ERR_DECRYPT', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const value = Buffer.from('v');
    expect(caught(() => sealValue(publicKey, '', value, dest))).toBeInstanceOf(TypeError);
    expect(caught(() => sealValue(publicKey, 'x'.repeat(257), value, dest))).toBeInstanceOf(
      TypeError,
    );
    expect(
      caught(() => sealValue(publicKey, kid, 'v' as unknown as Uint8Array, dest)),
    ).toBeInstanceOf(TypeError);
    expect(caught(() => sealValue(publicKey, kid, value, { ...dest, project: '' }))).toBeInstanceOf(
      TypeError,
    );
    expect(
      caught(() => sealValue(publicKey, kid, value, { ...dest, name: '\ud800' })),
    ).toBeInstanceOf(TypeError);
    expect(caught(() => sealValue(ec.publicKey, kid, value, dest))).toBeInstanceOf(TypeError);
    expect(caught(() => sealValue(privateKey, kid, value, dest))).toBeInstanceOf(TypeError);
    expect(
      caught(() => openSeal(publicKey, sealValue(publicKey, kid, value, dest), dest)),
    ).toBeInstanceOf(TypeError);
  });

  it('refuses to seal to an RSA key Crate does not use (1024-bit, or e = 3)', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
    const e3 = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).publicKey;
    for (const key of [small, e3]) {
      expect(
        isCrateError(
          caught(() => sealValue(key, kid, Buffer.from('v'), dest)),
          'ERR_FORMAT_UNSUPPORTED',
        ),
      ).toBe(true);
    }
  });
});

describe('parseSealEnvelope', () => {
  let valid: SealEnvelope;
  beforeAll(() => {
    valid = sealValue(publicKey, kid, Buffer.from('value'), dest);
  });

  it('returns a frozen copy equal to a valid envelope', () => {
    const parsed = parseSealEnvelope(JSON.parse(JSON.stringify(valid)));
    expect(parsed).toEqual(valid);
    expect(Object.isFrozen(parsed)).toBe(true);
    expect(openSeal(privateKey, parsed, dest).toString()).toBe('value');
  });

  const mutations: Array<[string, (e: Record<string, unknown>) => unknown]> = [
    ['null', () => null],
    ['an array', () => []],
    ['a JSON string', (e) => JSON.stringify(e)],
    ['an extra field', (e) => ({ ...e, value: 'plaintext' })],
    ['a missing tag', ({ tag: _tag, ...rest }) => rest],
    ['v = 2', (e) => ({ ...e, v: 2 })],
    ['v = "1"', (e) => ({ ...e, v: '1' })],
    ['another algorithm', (e) => ({ ...e, alg: 'RSA-OAEP+A256GCM' })],
    ['an empty kid', (e) => ({ ...e, kid: '' })],
    ['a kid with a lone surrogate', (e) => ({ ...e, kid: 'k\udc00' })],
    ['a kid longer than 256 characters', (e) => ({ ...e, kid: 'k'.repeat(257) })],
    ['a numeric kid', (e) => ({ ...e, kid: 7 })],
    ['padded base64url', (e) => ({ ...e, tag: `${e.tag}==` })],
    ['standard base64 characters', (e) => ({ ...e, ct: `${String(e.ct).slice(0, -1)}+` })],
    ['a non-canonical final character', (e) => ({ ...e, tag: `${String(e.tag).slice(0, -1)}B` })],
    ['an 8-byte iv', (e) => ({ ...e, iv: b64url(randomBytes(8)) })],
    ['a truncated 12-byte tag', (e) => ({ ...e, tag: b64url(randomBytes(12)) })],
    ['an empty wrapped key', (e) => ({ ...e, ek: '' })],
    ['a class instance', (e) => Object.assign(Object.create({ inherited: true }), e)],
  ];

  it.each(mutations)(
    'rejects an envelope with %s as ERR_DECRYPT, and openSeal does too',
    (_label, mutate) => {
      const input = mutate({ ...valid });
      expectDecryptError(() => parseSealEnvelope(input));
      expectDecryptError(() => openSeal(privateKey, input as SealEnvelope, dest));
    },
  );

  it('accepts an empty ciphertext (the seal of an empty value)', () => {
    const empty = sealValue(publicKey, kid, Buffer.alloc(0), dest);
    expect(empty.ct).toBe('');
    expect(parseSealEnvelope({ ...empty })).toEqual(empty);
  });
});

describe('sealing keys and fingerprints', () => {
  it('fingerprints a key as the SHA-256 of its SPKI DER, in hex and base64url', () => {
    const expected = createHash('sha256').update(spki).digest();
    const fingerprint = spkiFingerprint(spki);
    expect(fingerprint.equals(expected)).toBe(true);
    expect(formatFingerprint(fingerprint, 'hex')).toBe(`SHA256:${expected.toString('hex')}`);
    expect(formatFingerprint(fingerprint, 'hex')).toMatch(/^SHA256:[0-9a-f]{64}$/);
    expect(formatFingerprint(fingerprint, 'base64url')).toBe(expected.toString('base64url'));
    expect(formatFingerprint(fingerprint, 'base64url')).toHaveLength(43);
  });

  it('refuses to format anything but a 32-byte fingerprint', () => {
    expect(caught(() => formatFingerprint(Buffer.alloc(31), 'hex'))).toBeInstanceOf(RangeError);
    expect(caught(() => formatFingerprint(Buffer.alloc(32), 'b64' as 'hex'))).toBeInstanceOf(
      TypeError,
    );
  });

  it('generates only 2048, 3072 and 4096-bit sealing keys', async () => {
    for (const bits of [1024, 2047, 8192]) {
      await expect(generateSealingKeyPair(bits)).rejects.toBeInstanceOf(RangeError);
    }
  });

  it('refuses to import keys that are not RSA sealing keys, with ERR_FORMAT_UNSUPPORTED', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ed = generateKeyPairSync('ed25519');
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const pss = generateKeyPairSync('rsa-pss', { modulusLength: 2048 });
    const cases: Array<() => unknown> = [
      () => importSealingPublicKey(ec.publicKey.export({ format: 'der', type: 'spki' })),
      () => importSealingPublicKey(ed.publicKey.export({ format: 'der', type: 'spki' })),
      () => importSealingPublicKey(small.publicKey.export({ format: 'der', type: 'spki' })),
      () => importSealingPublicKey(pss.publicKey.export({ format: 'der', type: 'spki' })),
      () => importSealingPublicKey(randomBytes(294)),
      () => importSealingPublicKey(pkcs8),
      () => importSealingPrivateKey(ec.privateKey.export({ format: 'der', type: 'pkcs8' })),
      () => importSealingPrivateKey(small.privateKey.export({ format: 'der', type: 'pkcs8' })),
      () => importSealingPrivateKey(Buffer.from('garbage')),
      () => importSealingPrivateKey(spki),
    ];
    for (const fn of cases) {
      expect(isCrateError(caught(fn), 'ERR_FORMAT_UNSUPPORTED')).toBe(true);
    }
  });
});

describe('interoperability with an independent implementation of the documented format', () => {
  const subtle = webcrypto.subtle;

  it('a seal made by sealValue opens with WebCrypto and the documented AAD', async () => {
    const value = Buffer.from('interop value ✓', 'utf8');
    const envelope = sealValue(publicKey, kid, value, dest);
    const rsa = await subtle.importKey(
      'pkcs8',
      pkcs8,
      { name: 'RSA-OAEP', hash: 'SHA-256' },
      false,
      ['decrypt'],
    );
    const contentKey = await subtle.decrypt(
      { name: 'RSA-OAEP' },
      rsa,
      Buffer.from(envelope.ek, 'base64url'),
    );
    const aes = await subtle.importKey('raw', contentKey, 'AES-GCM', false, ['decrypt']);
    const plaintext = await subtle.decrypt(
      {
        name: 'AES-GCM',
        iv: Buffer.from(envelope.iv, 'base64url'),
        additionalData: documentedSealAad(envelope.kid, dest),
        tagLength: 128,
      },
      aes,
      Buffer.concat([
        Buffer.from(envelope.ct, 'base64url'),
        Buffer.from(envelope.tag, 'base64url'),
      ]),
    );
    expect(Buffer.from(plaintext).equals(value)).toBe(true);
  });

  it('a seal made with WebCrypto and the documented AAD opens with openSeal', async () => {
    const value = randomBytes(1000);
    const rsa = await subtle.importKey('spki', spki, { name: 'RSA-OAEP', hash: 'SHA-256' }, false, [
      'encrypt',
    ]);
    const contentKey = randomBytes(32);
    const iv = randomBytes(12);
    const aes = await subtle.importKey('raw', contentKey, 'AES-GCM', false, ['encrypt']);
    const sealed = Buffer.from(
      await subtle.encrypt(
        { name: 'AES-GCM', iv, additionalData: documentedSealAad(kid, dest), tagLength: 128 },
        aes,
        value,
      ),
    );
    const envelope = {
      v: 1,
      alg: 'RSA-OAEP-256+A256GCM',
      kid,
      ek: b64url(Buffer.from(await subtle.encrypt({ name: 'RSA-OAEP' }, rsa, contentKey))),
      iv: b64url(iv),
      ct: b64url(sealed.subarray(0, sealed.length - 16)),
      tag: b64url(sealed.subarray(sealed.length - 16)),
    };
    expect(openSeal(privateKey, parseSealEnvelope(envelope), dest).equals(value)).toBe(true);
  });
});
