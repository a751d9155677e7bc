import {
  createHash,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  verify as nodeVerify,
  randomBytes,
  webcrypto,
} from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type BundleBinding,
  type BundleEnvelope,
  buildBundle,
  bundleSignedBytes,
  DECRYPT_FAILED_MESSAGE,
  decodeBundlePayload,
  encodeBundlePayload,
  formatFingerprint,
  generateEphemeralKeyPair,
  generateSigningKeyPair,
  importSigningPrivateKey,
  importSigningPublicKey,
  isCrateError,
  isValidBundleNonce,
  newBundleNonce,
  type OpenBundleOptions,
  openBundle,
  spkiFingerprint,
  validateEphemeralPublicKey,
} from '../src/index.js';

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

function expectCode(fn: () => unknown, code: string, message?: string): void {
  const error = caught(fn);
  expect(isCrateError(error)).toBe(true);
  expect((error as { code: string }).code).toBe(code);
  if (message !== undefined) {
    expect((error as Error).message).toBe(message);
  }
}

const expectDecryptError = (fn: () => unknown): void =>
  expectCode(fn, 'ERR_DECRYPT', DECRYPT_FAILED_MESSAGE);
const expectSignatureError = (fn: () => unknown): void => expectCode(fn, 'ERR_BUNDLE_SIGNATURE');

function lp(part: string): Buffer {
  const bytes = Buffer.from(part, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

let ephemeral: { publicKeySpki: Buffer; privateKey: KeyObject };
let otherEphemeral: { publicKeySpki: Buffer; privateKey: KeyObject };
let signingPrivateKey: KeyObject;
let signingPublicKey: KeyObject;
let otherSigningPrivateKey: KeyObject;
let binding: BundleBinding;
const signingKeyId = 'bsk_1';
const payload = Buffer.from('{"v":1,"entries":[]}');

beforeAll(async () => {
  [ephemeral, otherEphemeral] = await Promise.all([
    generateEphemeralKeyPair(2048),
    generateEphemeralKeyPair(2048),
  ]);
  const signing = generateSigningKeyPair();
  signingPrivateKey = importSigningPrivateKey(signing.privateKeyPkcs8);
  signingPublicKey = importSigningPublicKey(signing.publicKeySpki);
  otherSigningPrivateKey = importSigningPrivateKey(generateSigningKeyPair().privateKeyPkcs8);
  binding = { orgId: 'org_1', project: 'web', environment: 'prod', nonce: newBundleNonce() };
});

function build(overrides: Partial<Parameters<typeof buildBundle>[0]> = {}): BundleEnvelope {
  return buildBundle({
    ephemeralPublicKey: validateEphemeralPublicKey(ephemeral.publicKeySpki),
    signingKeyId,
    signingPrivateKey,
    binding,
    payload,
    ...overrides,
  });
}

function openOptions(overrides: Partial<OpenBundleOptions> = {}): OpenBundleOptions {
  return {
    ephemeralPrivateKey: ephemeral.privateKey,
    ephemeralPublicKeySpki: ephemeral.publicKeySpki,
    signingPublicKey,
    signingKeyId,
    binding,
    ...overrides,
  };
}

describe('buildBundle and openBundle', () => {
  it('round-trips a payload of entries with text, binary and empty values', () => {
    const entries = [
      { name: 'DATABASE_URL', version: 3, value: Buffer.from('postgres://u:p@h/db') },
      { name: 'TLS_KEY', version: 1, value: randomBytes(300) },
      { name: 'EMPTY', version: 12, value: Buffer.alloc(0) },
    ];
    const envelope = build({ payload: encodeBundlePayload(entries) });
    const opened = decodeBundlePayload(
      openBundle(JSON.parse(JSON.stringify(envelope)), openOptions()),
    );
    expect(opened).toEqual(entries);
  });

  it('round-trips a 1 MiB payload', () => {
    const big = randomBytes(1 << 20);
    expect(openBundle(build({ payload: big }), openOptions()).equals(big)).toBe(true);
  });

  it('round-trips with a default 3072-bit and a 4096-bit ephemeral key', async () => {
    for (const bits of [undefined, 4096]) {
      const pair = await generateEphemeralKeyPair(bits);
      expect(pair.privateKey.asymmetricKeyDetails?.modulusLength).toBe(bits ?? 3072);
      const envelope = build({
        ephemeralPublicKey: validateEphemeralPublicKey(pair.publicKeySpki),
      });
      const options = openOptions({
        ephemeralPrivateKey: pair.privateKey,
        ephemeralPublicKeySpki: pair.publicKeySpki,
      });
      expect(openBundle(envelope, options).equals(payload)).toBe(true);
    }
  }, 60_000);

  it('produces the documented fields, with epk the base64url SHA-256 of the ephemeral SPKI', () => {
    const issuedAt = nowSeconds();
    const envelope = build({ issuedAt });
    expect(Object.keys(envelope).sort()).toEqual([
      'alg',
      'ct',
      'ek',
      'environment',
      'epk',
      'iat',
      'iv',
      'kid',
      'nonce',
      'org',
      'project',
      'sig',
      'tag',
      'v',
    ]);
    expect(envelope).toMatchObject({
      v: 1,
      alg: 'RSA-OAEP-256+A256GCM+Ed25519',
      kid: signingKeyId,
      org: binding.orgId,
      project: binding.project,
      environment: binding.environment,
      nonce: binding.nonce,
      iat: issuedAt,
    });
    expect(envelope.epk).toBe(
      formatFingerprint(spkiFingerprint(ephemeral.publicKeySpki), 'base64url'),
    );
    expect(Buffer.from(envelope.sig, 'base64url')).toHaveLength(64);
    expect(Buffer.from(envelope.iv, 'base64url')).toHaveLength(12);
    expect(Buffer.from(envelope.tag, 'base64url')).toHaveLength(16);
    expect(Buffer.from(envelope.ek, 'base64url')).toHaveLength(256);
  });

  it('refuses a bundle signed by another key with ERR_BUNDLE_SIGNATURE', () => {
    expectSignatureError(() =>
      openBundle(build({ signingPrivateKey: otherSigningPrivateKey }), openOptions()),
    );
  });

  it('refuses a bundle whose signature was removed or replaced', () => {
    const envelope = build();
    const { sig: _sig, ...unsigned } = envelope;
    expectSignatureError(() => openBundle(unsigned, openOptions()));
    const forged = { ...envelope, sig: randomBytes(64).toString('base64url') };
    expectSignatureError(() => openBundle(forged, openOptions()));
  });

  it('refuses a bundle built for another nonce', () => {
    const envelope = build({ binding: { ...binding, nonce: newBundleNonce() } });
    expectDecryptError(() => openBundle(envelope, openOptions()));
  });

  it.each(['orgId', 'project', 'environment'] as const)(
    'refuses a bundle built for another %s',
    (field) => {
      const envelope = build({ binding: { ...binding, [field]: `${binding[field]}2` } });
      expectDecryptError(() => openBundle(envelope, openOptions()));
    },
  );

  it('refuses a bundle whose signing key id is not the pinned one, even with the pinned key', () => {
    expectDecryptError(() => openBundle(build({ signingKeyId: 'bsk_0' }), openOptions()));
  });

  it('refuses a bundle built for another ephemeral key (swapped epk)', () => {
    const envelope = build({
      ephemeralPublicKey: validateEphemeralPublicKey(otherEphemeral.publicKeySpki),
    });
    expectDecryptError(() => openBundle(envelope, openOptions()));
  });

  it('refuses a bundle whose epk field was rewritten to ours, because epk is signed', () => {
    const envelope = build({
      ephemeralPublicKey: validateEphemeralPublicKey(otherEphemeral.publicKeySpki),
    });
    const epk = formatFingerprint(spkiFingerprint(ephemeral.publicKeySpki), 'base64url');
    expectSignatureError(() => openBundle({ ...envelope, epk }, openOptions()));
  });

  it('fails with the fixed ERR_DECRYPT when the ephemeral private key does not match the SPKI', () => {
    expectDecryptError(() =>
      openBundle(build(), openOptions({ ephemeralPrivateKey: otherEphemeral.privateKey })),
    );
  });

  it('checks the signature before the binding', () => {
    const envelope = build({
      signingPrivateKey: otherSigningPrivateKey,
      binding: { ...binding, orgId: 'another' },
    });
    expectSignatureError(() => openBundle(envelope, openOptions()));
  });

  it('accepts a bundle up to maxAgeSeconds old and refuses an older one', () => {
    const now = nowSeconds();
    expect(openBundle(build({ issuedAt: now - 290 }), openOptions()).equals(payload)).toBe(true);
    expectDecryptError(() => openBundle(build({ issuedAt: now - 310 }), openOptions()));
    expectDecryptError(() =>
      openBundle(build({ issuedAt: now - 40 }), openOptions({ maxAgeSeconds: 30 })),
    );
    expect(
      openBundle(build({ issuedAt: now - 900 }), openOptions({ maxAgeSeconds: 1000 })).equals(
        payload,
      ),
    ).toBe(true);
  });

  it('accepts up to 60 seconds of clock skew into the future and refuses more', () => {
    const now = nowSeconds();
    expect(openBundle(build({ issuedAt: now + 50 }), openOptions()).equals(payload)).toBe(true);
    expectDecryptError(() => openBundle(build({ issuedAt: now + 70 }), openOptions()));
  });

  const malformed: Array<[string, (e: Record<string, unknown>) => unknown]> = [
    ['null', () => null],
    ['an array', (e) => [e]],
    ['an extra field', (e) => ({ ...e, extra: 1 })],
    ['a missing iat', ({ iat: _iat, ...rest }) => rest],
    ['a string iat', (e) => ({ ...e, iat: String(e.iat) })],
    ['a fractional iat', (e) => ({ ...e, iat: Number(e.iat) + 0.5 })],
    ['a negative iat', () => ({ ...build({ issuedAt: 0 }), iat: -1 })],
    ['v = 2', (e) => ({ ...e, v: 2 })],
    ['another algorithm', (e) => ({ ...e, alg: 'RSA-OAEP-256+A256GCM' })],
    ['a padded signature', (e) => ({ ...e, sig: `${e.sig}==` })],
    ['a 63-byte signature', (e) => ({ ...e, sig: randomBytes(63).toString('base64url') })],
    ['a short nonce', (e) => ({ ...e, nonce: randomBytes(16).toString('base64url') })],
    ['an empty org', (e) => ({ ...e, org: '' })],
    ['a project with a lone surrogate', (e) => ({ ...e, project: '\ud83d' })],
    ['a truncated tag', (e) => ({ ...e, tag: randomBytes(12).toString('base64url') })],
  ];

  it.each(malformed)('refuses an envelope with %s as ERR_BUNDLE_SIGNATURE', (_label, mutate) => {
    expectSignatureError(() => openBundle(mutate({ ...build() }), openOptions()));
  });

  it('treats wrong arguments from the caller as programming errors', () => {
    const envelope = build();
    expect(caught(() => openBundle(envelope, openOptions({ maxAgeSeconds: 0 })))).toBeInstanceOf(
      RangeError,
    );
    expect(
      caught(() => openBundle(envelope, openOptions({ signingPublicKey: signingPrivateKey }))),
    ).toBeInstanceOf(TypeError);
    expect(
      caught(() => openBundle(envelope, openOptions({ binding: { ...binding, nonce: 'abc' } }))),
    ).toBeInstanceOf(RangeError);
    expect(caught(() => build({ signingKeyId: '' }))).toBeInstanceOf(TypeError);
    expect(caught(() => build({ binding: { ...binding, project: '' } }))).toBeInstanceOf(TypeError);
    expect(caught(() => build({ signingPrivateKey: signingPublicKey }))).toBeInstanceOf(TypeError);
    expect(caught(() => build({ issuedAt: 1.5 }))).toBeInstanceOf(RangeError);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    expect(caught(() => build({ ephemeralPublicKey: ec }))).toBeInstanceOf(TypeError);
  });

  it('refuses to build a bundle for a weak ephemeral KeyObject', () => {
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
    expectCode(() => build({ ephemeralPublicKey: weak }), 'ERR_EPHEMERAL_KEY_REJECTED');
  });
});

describe('validateEphemeralPublicKey', () => {
  function rsaSpkiFromJwk(modulus: Buffer, exponent: Buffer): Buffer {
    const key = createPublicKey({
      key: { kty: 'RSA', n: modulus.toString('base64url'), e: exponent.toString('base64url') },
      format: 'jwk',
    });
    return key.export({ format: 'der', type: 'spki' });
  }

  function oddModulus(bits: number): Buffer {
    const modulus = randomBytes(bits / 8);
    modulus[0]! |= 0x80;
    modulus[modulus.length - 1]! |= 1;
    return modulus;
  }

  it('accepts RSA keys of 2048 to 8192 bits with e = 65537', () => {
    expect(validateEphemeralPublicKey(ephemeral.publicKeySpki).asymmetricKeyType).toBe('rsa');
    const big = rsaSpkiFromJwk(oddModulus(8192), Buffer.from([1, 0, 1]));
    expect(validateEphemeralPublicKey(big).asymmetricKeyDetails?.modulusLength).toBe(8192);
  });

  const rejected: Array<[string, () => Buffer]> = [
    [
      'an EC P-256 key',
      () =>
        generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
          format: 'der',
          type: 'spki',
        }),
    ],
    [
      'an Ed25519 key',
      () => generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }),
    ],
    [
      'an X25519 key',
      () => generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' }),
    ],
    [
      'an RSA-PSS-only key',
      () =>
        generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).publicKey.export({
          format: 'der',
          type: 'spki',
        }),
    ],
    [
      'a 1024-bit RSA key',
      () =>
        generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({
          format: 'der',
          type: 'spki',
        }),
    ],
    ['a 2040-bit RSA key', () => rsaSpkiFromJwk(oddModulus(2040), Buffer.from([1, 0, 1]))],
    ['an 8200-bit RSA key', () => rsaSpkiFromJwk(oddModulus(8200), Buffer.from([1, 0, 1]))],
    [
      'an RSA key with e = 3',
      () =>
        generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).publicKey.export({
          format: 'der',
          type: 'spki',
        }),
    ],
    ['an RSA key with e = 65539', () => rsaSpkiFromJwk(oddModulus(2048), Buffer.from([1, 0, 3]))],
    [
      'an RSA key with e = 2^32 + 1',
      () => rsaSpkiFromJwk(oddModulus(2048), Buffer.from([1, 0, 0, 0, 1])),
    ],
    ['garbage bytes', () => randomBytes(294)],
    ['empty input', () => Buffer.alloc(0)],
    [
      'an SPKI with a trailing byte',
      () => Buffer.concat([ephemeral.publicKeySpki, Buffer.from([0])]),
    ],
    ['a PKCS#8 private key', () => ephemeral.privateKey.export({ format: 'der', type: 'pkcs8' })],
  ];

  it.each(rejected)('rejects %s with ERR_EPHEMERAL_KEY_REJECTED', (_label, make) => {
    expectCode(() => validateEphemeralPublicKey(make()), 'ERR_EPHEMERAL_KEY_REJECTED');
  });

  it('generates only 2048, 3072 and 4096-bit ephemeral keys', async () => {
    await expect(generateEphemeralKeyPair(1024)).rejects.toBeInstanceOf(RangeError);
  });
});

describe('bundle nonces', () => {
  it('are 32 random bytes in unpadded base64url, different every time', () => {
    const a = newBundleNonce();
    const b = newBundleNonce();
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a, 'base64url')).toHaveLength(32);
    expect(a).not.toBe(b);
    expect(isValidBundleNonce(a)).toBe(true);
  });

  it.each([
    ['31 bytes', randomBytes(31).toString('base64url')],
    ['33 bytes', randomBytes(33).toString('base64url')],
    ['padded', `${randomBytes(32).toString('base64url')}=`],
    ['standard base64', randomBytes(32).toString('base64')],
    ['a number', 42],
  ])('rejects a nonce that is %s', (_label, nonce) => {
    expect(isValidBundleNonce(nonce)).toBe(false);
  });
});

describe('bundle payload encoding', () => {
  it('encodes to the documented JSON with padded standard base64 values', () => {
    const bytes = encodeBundlePayload([
      { name: 'A', version: 2, value: Buffer.from([0xfb, 0xff]) },
    ]);
    expect(bytes.toString('utf8')).toBe(
      '{"v":1,"entries":[{"name":"A","version":2,"value":"+/8="}]}',
    );
    expect(decodeBundlePayload(bytes)).toEqual([
      { name: 'A', version: 2, value: Buffer.from([0xfb, 0xff]) },
    ]);
  });

  it('round-trips an empty list and unicode names', () => {
    expect(decodeBundlePayload(encodeBundlePayload([]))).toEqual([]);
    const entries = [{ name: 'ПАРОЛЬ_🔑', version: 1, value: Buffer.from('x') }];
    expect(decodeBundlePayload(encodeBundlePayload(entries))).toEqual(entries);
  });

  it('refuses to encode duplicate names, bad versions or non-byte values', () => {
    const value = Buffer.from('v');
    expect(
      caught(() =>
        encodeBundlePayload([
          { name: 'A', version: 1, value },
          { name: 'A', version: 2, value },
        ]),
      ),
    ).toBeInstanceOf(RangeError);
    expect(caught(() => encodeBundlePayload([{ name: 'A', version: 0, value }]))).toBeInstanceOf(
      RangeError,
    );
    expect(caught(() => encodeBundlePayload([{ name: '', version: 1, value }]))).toBeInstanceOf(
      TypeError,
    );
    expect(
      caught(() =>
        encodeBundlePayload([{ name: 'A', version: 1, value: 'v' as unknown as Uint8Array }]),
      ),
    ).toBeInstanceOf(TypeError);
  });

  it.each([
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0x7d])],
    ['text that is not JSON', Buffer.from('nope')],
    ['a JSON array', Buffer.from('[]')],
    ['an extra top-level key', Buffer.from('{"v":1,"entries":[],"x":0}')],
    ['entries that are not an array', Buffer.from('{"v":1,"entries":{}}')],
    [
      'an entry with an extra key',
      Buffer.from('{"v":1,"entries":[{"name":"A","version":1,"value":"","x":1}]}'),
    ],
    ['an entry without a value', Buffer.from('{"v":1,"entries":[{"name":"A","version":1}]}')],
    ['version 0', Buffer.from('{"v":1,"entries":[{"name":"A","version":0,"value":""}]}')],
    [
      'a fractional version',
      Buffer.from('{"v":1,"entries":[{"name":"A","version":1.5,"value":""}]}'),
    ],
    ['an empty name', Buffer.from('{"v":1,"entries":[{"name":"","version":1,"value":""}]}')],
    [
      'a repeated name',
      Buffer.from(
        '{"v":1,"entries":[{"name":"A","version":1,"value":""},{"name":"A","version":2,"value":""}]}',
      ),
    ],
    ['unpadded base64', Buffer.from('{"v":1,"entries":[{"name":"A","version":1,"value":"+/8"}]}')],
    [
      'base64url characters',
      Buffer.from('{"v":1,"entries":[{"name":"A","version":1,"value":"-_8="}]}'),
    ],
    ['payload version 2', Buffer.from('{"v":2,"entries":[]}')],
  ])('refuses to decode %s with ERR_FORMAT_UNSUPPORTED', (_label, bytes) => {
    expectCode(() => decodeBundlePayload(bytes), 'ERR_FORMAT_UNSUPPORTED');
  });
});

describe('interoperability with an independent implementation of the documented format', () => {
  it('the signature covers the documented canonical bytes and the payload opens with WebCrypto', async () => {
    const envelope = build({ payload: Buffer.from('independent') });
    const order = [
      'v',
      'alg',
      'kid',
      'epk',
      'org',
      'project',
      'environment',
      'nonce',
      'iat',
      'ek',
      'iv',
      'ct',
      'tag',
    ] as const;
    const signedBytes = Buffer.concat([
      lp('crate/bundle-signature/v1'),
      ...order.flatMap((field) => [lp(field), lp(String(envelope[field]))]),
    ]);
    expect(bundleSignedBytes(envelope).equals(signedBytes)).toBe(true);
    expect(
      nodeVerify(null, signedBytes, signingPublicKey, Buffer.from(envelope.sig, 'base64url')),
    ).toBe(true);

    const aad = Buffer.concat(
      [
        'crate/aad/v1',
        'bundle',
        ...order.slice(0, 9).flatMap((field) => [field, String(envelope[field])]),
      ].map(lp),
    );
    const subtle = webcrypto.subtle;
    const pkcs8 = ephemeral.privateKey.export({ format: 'der', type: 'pkcs8' });
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
        additionalData: aad,
        tagLength: 128,
      },
      aes,
      Buffer.concat([
        Buffer.from(envelope.ct, 'base64url'),
        Buffer.from(envelope.tag, 'base64url'),
      ]),
    );
    expect(Buffer.from(plaintext).toString()).toBe('independent');
    expect(envelope.epk).toBe(
      createHash('sha256').update(ephemeral.publicKeySpki).digest('base64url'),
    );
  });
});
