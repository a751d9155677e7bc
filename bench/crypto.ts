/**
 * crypto-core throughput next to the bare node:crypto operations each function is built from,
 * measured in the same run, so that the cost of Crate's framing, AAD, checks and zeroing is the
 * gap between the two columns.
 *
 *   npm run bench -- bench/crypto.ts        (BENCH_BUDGET_MS per row, default 1500)
 *
 * Rows: envelopes (a secret write and read: fresh DEK, wrap, encrypt; unwrap, decrypt), seals at
 * 2048/3072/4096 bits, bundles of 50 secrets to a 3072-bit ephemeral key, and ephemeral key
 * generation at 2048/3072/4096 bits. RSA key generation draws random primes: its rate varies
 * from run to run far more than the others, so it gets a longer budget.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  generateKeyPair,
  type KeyObject,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { promisify } from 'node:util';
import {
  buildBundle,
  decryptSecret,
  encodeBundlePayload,
  encryptSecret,
  generateEphemeralKeyPair,
  generateSealingKeyPair,
  generateSigningKeyPair,
  importSealingPrivateKey,
  importSealingPublicKey,
  importSigningPrivateKey,
  importSigningPublicKey,
  newBundleNonce,
  openBundle,
  openSeal,
  sealValue,
  unwrapOrgDek,
  validateEphemeralPublicKey,
  wrapOrgDek,
} from '@crate/crypto-core';
import { type Measurement, machineLine, measurePair, printComparison } from './lib/measure.ts';

const generateKeyPairAsync = promisify(generateKeyPair);
const pairs: Array<readonly [Measurement, Measurement]> = [];
type Op = readonly [name: string, op: () => unknown];
const compare = async (crate: Op, bare: Op, options?: { budgetMs?: number; warmup?: number }) => {
  pairs.push(await measurePair(crate, bare, options));
};
const flush = (title: string) => printComparison(title, pairs.splice(0));

console.log(`# crypto-core benchmark\n\n${machineLine()}`);

// --- bare node:crypto building blocks --------------------------------------------------------

function gcmEncrypt(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 }).setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([nonce, ciphertext, cipher.getAuthTag()]);
}

function gcmDecrypt(key: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12), {
    authTagLength: 16,
  }).setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([
    decipher.update(sealed.subarray(12, sealed.length - 16)),
    decipher.final(),
  ]);
}

const oaepEncrypt = (key: KeyObject, data: Buffer) =>
  publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, data);
const oaepDecrypt = (key: KeyObject, data: Buffer) =>
  privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, data);

// An AAD about as long as Crate's contexts, so the bare rows authenticate as much data.
const bareAad = randomBytes(120);

// --- envelopes: the at-rest tiers --------------------------------------------------------------

const value = randomBytes(64);
const ref = {
  orgId: 'org_1',
  projectId: 'prj_1',
  environmentId: 'env_1',
  name: 'API_KEY',
  version: 1,
};
const orgDek = { version: 1, key: randomBytes(32) };
const master = { version: 1, key: randomBytes(32) };
const stored = encryptSecret(orgDek, value, ref);
const bareDek = randomBytes(32);
const bareWrappedDek = gcmEncrypt(orgDek.key, bareDek, bareAad);
const bareCiphertext = gcmEncrypt(bareDek, value, bareAad);

await compare(
  ['encryptSecret: fresh DEK, wrap it, encrypt 64 B', () => encryptSecret(orgDek, value, ref)],
  [
    'randomBytes(32) + 2 × AES-256-GCM encrypt',
    () => {
      const dek = randomBytes(32);
      return [gcmEncrypt(orgDek.key, dek, bareAad), gcmEncrypt(dek, value, bareAad)];
    },
  ],
);
await compare(
  [
    'decryptSecret: unwrap the DEK, decrypt 64 B',
    () => decryptSecret(() => orgDek.key, stored.wrappedDek, stored.ciphertext, ref),
  ],
  [
    '2 × AES-256-GCM decrypt',
    () => gcmDecrypt(gcmDecrypt(orgDek.key, bareWrappedDek, bareAad), bareCiphertext, bareAad),
  ],
);
const orgCtx = { orgId: 'org_1', dekVersion: 1 };
const wrappedOrgDek = wrapOrgDek(master, orgDek.key, orgCtx);
const bareWrappedOrgDek = gcmEncrypt(master.key, orgDek.key, bareAad);
await compare(
  ['wrapOrgDek (master key → org DEK)', () => wrapOrgDek(master, orgDek.key, orgCtx)],
  ['AES-256-GCM encrypt 32 B', () => gcmEncrypt(master.key, orgDek.key, bareAad)],
);
await compare(
  ['unwrapOrgDek', () => unwrapOrgDek(() => master.key, wrappedOrgDek, orgCtx)],
  ['AES-256-GCM decrypt 32 B', () => gcmDecrypt(master.key, bareWrappedOrgDek, bareAad)],
);
flush('Envelopes (at rest)');

// --- seals: sealed writes --------------------------------------------------------------------

const dest = { orgId: 'org_1', project: 'web', environment: 'prod', name: 'API_KEY' };
for (const bits of [2048, 3072, 4096] as const) {
  const pair = await generateSealingKeyPair(bits);
  const publicKey = importSealingPublicKey(pair.publicKeySpki);
  const privateKey = importSealingPrivateKey(pair.privateKeyPkcs8);
  const seal = sealValue(publicKey, 'sk_1', value, dest);
  const bareContentKey = randomBytes(32);
  const bareEk = oaepEncrypt(publicKey, bareContentKey);
  const bareSealed = gcmEncrypt(bareContentKey, value, bareAad);
  await compare(
    [`sealValue, RSA-${bits}`, () => sealValue(publicKey, 'sk_1', value, dest)],
    [
      `RSA-OAEP-${bits} encrypt + AES-256-GCM encrypt`,
      () => {
        const contentKey = randomBytes(32);
        return [oaepEncrypt(publicKey, contentKey), gcmEncrypt(contentKey, value, bareAad)];
      },
    ],
  );
  await compare(
    [`openSeal, RSA-${bits}`, () => openSeal(privateKey, seal, dest)],
    [
      `RSA-OAEP-${bits} decrypt + AES-256-GCM decrypt`,
      () => gcmDecrypt(oaepDecrypt(privateKey, bareEk), bareSealed, bareAad),
    ],
  );
}
flush('Seals (writes), 64-byte value');

// --- bundles: ephemeral-key reads ------------------------------------------------------------

const signing = generateSigningKeyPair();
const signPrivate = importSigningPrivateKey(signing.privateKeyPkcs8);
const signPublic = importSigningPublicKey(signing.publicKeySpki);
const ephemeral = await generateEphemeralKeyPair(3072);
const ephemeralPublic = validateEphemeralPublicKey(ephemeral.publicKeySpki);
const payload = encodeBundlePayload(
  Array.from({ length: 50 }, (_, i) => ({
    name: `SECRET_${i}`,
    version: 1,
    value: randomBytes(48),
  })),
);
const binding = { orgId: 'org_1', project: 'web', environment: 'prod', nonce: newBundleNonce() };
const build = () =>
  buildBundle({
    ephemeralPublicKey: ephemeralPublic,
    signingKeyId: 'gk_1',
    signingPrivateKey: signPrivate,
    binding,
    payload,
  });
const bundle = build();
const bareBundleKey = randomBytes(32);
const bareBundleEk = oaepEncrypt(ephemeralPublic, bareBundleKey);
const bareBundleSealed = gcmEncrypt(bareBundleKey, payload, bareAad);
const bareSignature = sign(null, bareBundleSealed, signPrivate);
await compare(
  [`buildBundle: 50 secrets (${payload.length} B), RSA-3072, Ed25519`, build],
  [
    'AES-256-GCM encrypt + RSA-OAEP-3072 encrypt + Ed25519 sign',
    () => {
      const contentKey = randomBytes(32);
      const sealed = gcmEncrypt(contentKey, payload, bareAad);
      return [oaepEncrypt(ephemeralPublic, contentKey), sign(null, sealed, signPrivate)];
    },
  ],
);
await compare(
  [
    'openBundle: verify, check binding, unwrap, decrypt',
    () =>
      openBundle(bundle, {
        ephemeralPrivateKey: ephemeral.privateKey,
        ephemeralPublicKeySpki: ephemeral.publicKeySpki,
        signingPublicKey: signPublic,
        signingKeyId: 'gk_1',
        binding,
      }),
  ],
  [
    'Ed25519 verify + RSA-OAEP-3072 decrypt + AES-256-GCM decrypt',
    () => {
      if (!verify(null, bareBundleSealed, signPublic, bareSignature)) {
        throw new Error('bare signature does not verify');
      }
      return gcmDecrypt(oaepDecrypt(ephemeral.privateKey, bareBundleEk), bareBundleSealed, bareAad);
    },
  ],
);
flush('Bundles (reads)');

// --- ephemeral key generation: the slowest step of a fetch -------------------------------------

for (const bits of [2048, 3072, 4096] as const) {
  const options = { budgetMs: Number(process.env.BENCH_KEYGEN_BUDGET_MS ?? 6000), warmup: 1 };
  await compare(
    [`generateEphemeralKeyPair(${bits})`, () => generateEphemeralKeyPair(bits)],
    [
      `generateKeyPair('rsa', ${bits})`,
      () => generateKeyPairAsync('rsa', { modulusLength: bits, publicExponent: 0x10001 }),
    ],
    options,
  );
}
flush('Ephemeral RSA key generation (random primes: expect large run-to-run variation)');
