/**
 * crypto-core throughput next to the bare node:crypto operations it is built from, measured in
 * the same run so the overhead of Crate's framing, AAD and checks is visible.
 *
 *   npm run bench -- bench/crypto.ts            (BENCH_BUDGET_MS=… per row, default 1500)
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  generateKeyPair,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  sign,
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
  validateEphemeralPublicKey,
} from '@crate/crypto-core';
import { type Measurement, machineLine, measure, printTable } from './lib/measure.ts';

const generateKeyPairAsync = promisify(generateKeyPair);
const value = randomBytes(64);
const ref = {
  orgId: 'org-1',
  projectId: 'proj-1',
  environmentId: 'env-1',
  name: 'API_KEY',
  version: 1,
};
const orgDek = { version: 1, key: randomBytes(32) };

function bareGcmEncrypt(key: Buffer, plaintext: Buffer): Buffer {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([nonce, ct, cipher.getAuthTag()]);
}
function bareGcmDecrypt(key: Buffer, sealed: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([
    decipher.update(sealed.subarray(12, sealed.length - 16)),
    decipher.final(),
  ]);
}

const rows: Measurement[] = [];

// Envelope: one secret = fresh DEK, wrap the DEK, encrypt the value (2 AES-GCM ops).
const stored = encryptSecret(orgDek, value, ref);
rows.push(
  await measure('envelope encryptSecret (DEK + wrap + value)', () =>
    encryptSecret(orgDek, value, ref),
  ),
);
rows.push(
  await measure('envelope decryptSecret (unwrap + value)', () =>
    decryptSecret(() => orgDek.key, stored.wrappedDek, stored.ciphertext, ref),
  ),
);
const bareKey = randomBytes(32);
const bareSealed = bareGcmEncrypt(bareKey, value);
rows.push(
  await measure('bare: 2x AES-256-GCM encrypt', () => {
    bareGcmEncrypt(bareKey, bareKey);
    return bareGcmEncrypt(bareKey, value);
  }),
);
rows.push(
  await measure('bare: 2x AES-256-GCM decrypt', () => {
    bareGcmDecrypt(bareKey, bareSealed);
    return bareGcmDecrypt(bareKey, bareSealed);
  }),
);
printTable(`Envelopes, 64-byte value (${machineLine()})`, rows.splice(0));

// Seal: RSA-OAEP-3072 wrap of a content key + AES-GCM; open is dominated by the RSA private op.
const sealing = await generateSealingKeyPair(3072);
const sealPub = importSealingPublicKey(sealing.publicKeySpki);
const sealPriv = importSealingPrivateKey(sealing.privateKeyPkcs8);
const dest = { orgId: 'org-1', project: 'web', environment: 'prod', name: 'API_KEY' };
const seal = sealValue(sealPub, 'sk_1', value, dest);
rows.push(await measure('sealValue (RSA-3072)', () => sealValue(sealPub, 'sk_1', value, dest)));
rows.push(await measure('openSeal (RSA-3072)', () => openSeal(sealPriv, seal, dest)));
const oaep = { key: sealPub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' };
const wrapped = publicEncrypt(oaep, bareKey);
rows.push(await measure('bare: RSA-OAEP-3072 encrypt', () => publicEncrypt(oaep, bareKey)));
rows.push(
  await measure('bare: RSA-OAEP-3072 decrypt', () =>
    privateDecrypt(
      { key: sealPriv, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      wrapped,
    ),
  ),
);
printTable('Sealed writes', rows.splice(0));

// Bundle of 50 secrets to an ephemeral RSA-3072 key, signed with Ed25519.
const signing = generateSigningKeyPair();
const signPriv = importSigningPrivateKey(signing.privateKeyPkcs8);
const signPub = importSigningPublicKey(signing.publicKeySpki);
const ephemeral = await generateEphemeralKeyPair(3072);
const ephemeralPublic = validateEphemeralPublicKey(ephemeral.publicKeySpki);
const payload = encodeBundlePayload(
  Array.from({ length: 50 }, (_, i) => ({
    name: `SECRET_${i}`,
    version: 1,
    value: randomBytes(48),
  })),
);
const binding = { orgId: 'org-1', project: 'web', environment: 'prod', nonce: newBundleNonce() };
const build = () =>
  buildBundle({
    ephemeralPublicKey: ephemeralPublic,
    signingKeyId: 'gk_1',
    signingPrivateKey: signPriv,
    binding,
    payload,
  });
const bundle = build();
rows.push(await measure('buildBundle (50 secrets, RSA-3072 + Ed25519)', build));
rows.push(
  await measure('openBundle (50 secrets)', () =>
    openBundle(bundle, {
      ephemeralPrivateKey: ephemeral.privateKey,
      ephemeralPublicKeySpki: ephemeral.publicKeySpki,
      signingPublicKey: signPub,
      signingKeyId: 'gk_1',
      binding,
    }),
  ),
);
rows.push(await measure('bare: Ed25519 sign (2 KiB)', () => sign(null, payload, signPriv)));
printTable('Retrieval bundles', rows.splice(0));

// Ephemeral key generation: the slowest step of a fetch.
for (const bits of [2048, 3072, 4096] as const) {
  const budgetMs = bits === 4096 ? 8000 : 4000;
  rows.push(
    await measure(`generateEphemeralKeyPair(${bits})`, () => generateEphemeralKeyPair(bits), {
      budgetMs,
      warmup: 1,
    }),
  );
  rows.push(
    await measure(
      `bare: generateKeyPair rsa ${bits}`,
      () => generateKeyPairAsync('rsa', { modulusLength: bits }),
      {
        budgetMs,
        warmup: 1,
      },
    ),
  );
}
printTable(
  'Ephemeral RSA key generation (random primes: high variance, look at the mean)',
  rows.splice(0),
);
