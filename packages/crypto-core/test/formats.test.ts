/**
 * docs/formats.md against the code. Every block the document marks as a test vector is read from
 * the document itself, rebuilt here from the document's description with node:crypto alone
 * (test/lib/documented.ts), and then opened or parsed with crypto-core; crypto-core's own output
 * is opened by hand the other way round. A change to either side that the other does not follow
 * fails here.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  hkdfSync,
  sign as nodeSign,
  pbkdf2Sync,
  publicEncrypt,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  AUDIT_GENESIS_HASH,
  type AuditEntryBody,
  canonicalAuditBytes,
  computeAuditHash,
  decodeBundlePayload,
  decryptSecret,
  decryptWithPassphrase,
  encodeBundlePayload,
  encodeShareFile,
  encryptSecret,
  encryptWithPassphrase,
  importSealingPrivateKey,
  importSigningPrivateKey,
  importSigningPublicKey,
  keyFingerprint,
  keyVouchBytes,
  openSeal,
  parseMasterKeyFile,
  parseShareFile,
  recoverFromShareFiles,
  type SecretRef,
  serializeMasterKeyFile,
  signKeyVouch,
  unwrapOrgDek,
  unwrapPrivateKey,
  verifyKeyVouch,
  wrapOrgDek,
  wrapPrivateKey,
} from '../src/index.js';
import {
  documentedAad,
  documentedMasterKeyChecksum,
  documentedShareChecksum,
  documentedShareKeyCheck,
  lps,
} from './lib/documented.js';

const DOC = readFileSync(new URL('../../../docs/formats.md', import.meta.url), 'utf8');

/** Every `<!-- vector: name -->` block of the document, by name, as written. */
const VECTORS = new Map(
  [...DOC.matchAll(/<!-- vector: ([a-z-]+) -->\n```[a-z]*\n([\s\S]*?)```/g)].map(
    ([, name, body]) => [name!, body!] as const,
  ),
);

function text(name: string): string {
  const body = VECTORS.get(name);
  if (body === undefined) {
    throw new Error(`docs/formats.md has no test vector "${name}"`);
  }
  return body;
}
const line = (name: string): string => text(name).trim();
const hexVector = (name: string): Buffer => {
  const digits = text(name).replace(/\s+/g, '');
  expect(digits).toMatch(/^(?:[0-9a-f]{2})+$/);
  return Buffer.from(digits, 'hex');
};

/** The document's seq(s, n): the n bytes s, s+1, .... */
const seq = (start: number, length: number): Buffer =>
  Buffer.from(Array.from({ length }, (_, i) => (start + i) & 0xff));

function gcmSeal(key: Buffer, nonce: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, nonce).setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([nonce, ciphertext, cipher.getAuthTag()]);
}

function gcmOpen(key: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12), {
    authTagLength: 16,
  }).setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([
    decipher.update(sealed.subarray(12, sealed.length - 16)),
    decipher.final(),
  ]);
}

/** §7: "CE" | formatVersion 1 | kind | u32be wrapping key version. */
function envelopeHeader(kind: number, keyVersion: number): Buffer {
  const header = Buffer.alloc(8);
  header.write('CE', 0, 'latin1');
  header[2] = 1;
  header[3] = kind;
  header.writeUInt32BE(keyVersion, 4);
  return header;
}

const REF: SecretRef = {
  orgId: 'org_1',
  projectId: 'prj_1',
  environmentId: 'env_1',
  name: 'DB_PÄSS',
  version: 4,
};
const REF_FIELDS: Array<readonly [string, string | number]> = [
  ['orgId', REF.orgId],
  ['projectId', REF.projectId],
  ['environmentId', REF.environmentId],
  ['name', REF.name],
  ['version', REF.version],
];
const ORG_DEK_FIELDS: Array<readonly [string, string | number]> = [
  ['orgId', 'org_1'],
  ['dekVersion', 3],
  ['masterKeyVersion', 2],
];
const MASTER_KEY = seq(0x00, 32);
const ORG_DEK = seq(0x20, 32);
const SECRET_DEK = seq(0x60, 32);

describe('docs/formats.md test vectors', () => {
  it('holds exactly the vectors this file checks', () => {
    expect([...VECTORS.keys()].sort()).toEqual(
      [
        'audit-canonical',
        'audit-hash',
        'bundle-payload',
        'key-fingerprint',
        'key-vouch-bytes',
        'key-vouch-signature',
        'master-key-file',
        'org-dek-aad',
        'org-dek-envelope',
        'passphrase-blob',
        'seal-aad',
        'secret-dek-envelope',
        'secret-value-aad',
        'secret-value-envelope',
        'share-file',
      ].sort(),
    );
  });

  it('§1: the key fingerprint is HKDF-SHA-256 under the documented label', () => {
    const zero = Buffer.alloc(32);
    const byHand = `kfp_${Buffer.from(hkdfSync('sha256', zero, Buffer.alloc(0), Buffer.from('crate/key-fingerprint/v1'), 16)).toString('hex')}`;
    expect(line('key-fingerprint')).toBe(byHand);
    expect(keyFingerprint(zero)).toBe(byHand);
  });

  it('§3: the AAD vectors are the documented encoding of their header and fields', () => {
    expect(
      hexVector('org-dek-aad').equals(
        Buffer.concat([envelopeHeader(1, 2), documentedAad('org-dek', ORG_DEK_FIELDS)]),
      ),
    ).toBe(true);
    expect(
      hexVector('secret-value-aad').equals(
        Buffer.concat([envelopeHeader(3, 0), documentedAad('secret-value', REF_FIELDS)]),
      ),
    ).toBe(true);
  });

  it('§4: a seal built by hand under the documented seal AAD opens with openSeal', () => {
    const dest = { orgId: 'org_1', project: 'web', environment: 'prod', name: 'API_KEY' };
    const aad = documentedAad('seal', [
      ['v', 1],
      ['alg', 'RSA-OAEP-256+A256GCM'],
      ['kid', 'sk_1'],
      ['orgId', dest.orgId],
      ['project', dest.project],
      ['environment', dest.environment],
      ['name', dest.name],
    ]);
    expect(hexVector('seal-aad').equals(aad)).toBe(true);

    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const contentKey = seq(0xc0, 32);
    const sealed = gcmSeal(contentKey, seq(0xe0, 12), Buffer.from('a sealed value'), aad);
    const envelope = {
      v: 1,
      alg: 'RSA-OAEP-256+A256GCM',
      kid: 'sk_1',
      ek: publicEncrypt(
        { key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
        contentKey,
      ).toString('base64url'),
      iv: sealed.subarray(0, 12).toString('base64url'),
      ct: sealed.subarray(12, sealed.length - 16).toString('base64url'),
      tag: sealed.subarray(sealed.length - 16).toString('base64url'),
    } as const;
    const key = importSealingPrivateKey(privateKey.export({ format: 'der', type: 'pkcs8' }));
    expect(openSeal(key, envelope, dest).toString()).toBe('a sealed value');
  });

  it('§6: the bundle payload vector is what encodeBundlePayload writes, and decodes back', () => {
    const entries = [{ name: 'DATABASE_URL', version: 3, value: Buffer.from('postgres://...') }];
    expect(encodeBundlePayload(entries).toString('utf8')).toBe(line('bundle-payload'));
    expect(decodeBundlePayload(Buffer.from(line('bundle-payload')))).toEqual(entries);
  });

  it('§7: the envelope vectors are rebuilt from their description and open with crypto-core', () => {
    const orgDekHeader = envelopeHeader(1, 2);
    const orgDekEnvelope = Buffer.concat([
      orgDekHeader,
      gcmSeal(MASTER_KEY, seq(0x40, 12), ORG_DEK, hexVector('org-dek-aad')),
    ]);
    expect(hexVector('org-dek-envelope').equals(orgDekEnvelope)).toBe(true);
    expect(
      unwrapOrgDek(() => MASTER_KEY, orgDekEnvelope, { orgId: 'org_1', dekVersion: 3 }).equals(
        ORG_DEK,
      ),
    ).toBe(true);

    const dekHeader = envelopeHeader(2, 3);
    const dekAad = Buffer.concat([
      dekHeader,
      documentedAad('secret-dek', [...REF_FIELDS, ['orgDekVersion', 3]]),
    ]);
    const wrappedDek = Buffer.concat([
      dekHeader,
      gcmSeal(ORG_DEK, seq(0x80, 12), SECRET_DEK, dekAad),
    ]);
    expect(hexVector('secret-dek-envelope').equals(wrappedDek)).toBe(true);

    const ciphertext = Buffer.concat([
      envelopeHeader(3, 0),
      gcmSeal(SECRET_DEK, seq(0x90, 12), Buffer.from('hunter2'), hexVector('secret-value-aad')),
    ]);
    expect(hexVector('secret-value-envelope').equals(ciphertext)).toBe(true);
    expect(decryptSecret(() => ORG_DEK, wrappedDek, ciphertext, REF).toString()).toBe('hunter2');
  });

  it('§7: what crypto-core wraps and encrypts opens by hand under the documented AAD', () => {
    const orgDekBlob = wrapOrgDek({ version: 2, key: MASTER_KEY }, ORG_DEK, {
      orgId: 'org_1',
      dekVersion: 3,
    });
    expect(orgDekBlob).toHaveLength(68);
    expect(orgDekBlob.subarray(0, 8).equals(envelopeHeader(1, 2))).toBe(true);
    expect(
      gcmOpen(MASTER_KEY, orgDekBlob.subarray(8), hexVector('org-dek-aad')).equals(ORG_DEK),
    ).toBe(true);

    const { wrappedDek, ciphertext } = encryptSecret(
      { version: 3, key: ORG_DEK },
      Buffer.from('hunter2'),
      REF,
    );
    const dekAad = Buffer.concat([
      wrappedDek.subarray(0, 8),
      documentedAad('secret-dek', [...REF_FIELDS, ['orgDekVersion', 3]]),
    ]);
    expect(wrappedDek.subarray(0, 8).equals(envelopeHeader(2, 3))).toBe(true);
    const secretDek = gcmOpen(ORG_DEK, wrappedDek.subarray(8), dekAad);
    expect(ciphertext.subarray(0, 8).equals(envelopeHeader(3, 0))).toBe(true);
    expect(
      gcmOpen(secretDek, ciphertext.subarray(8), hexVector('secret-value-aad')).toString(),
    ).toBe('hunter2');
  });

  it('§7: a private key envelope follows the same layout under the private-key context', () => {
    const der = Buffer.from('a PKCS#8 DER stands here');
    const fields: Array<readonly [string, string | number]> = [
      ['orgId', 'system'],
      ['keyId', 'key_audit_1'],
      ['keyKind', 'audit'],
      ['masterKeyVersion', 7],
    ];
    const ctx = { orgId: 'system', keyId: 'key_audit_1', keyKind: 'audit' } as const;
    const header = envelopeHeader(4, 7);
    const aad = Buffer.concat([header, documentedAad('private-key', fields)]);
    const byHand = Buffer.concat([header, gcmSeal(MASTER_KEY, seq(0x10, 12), der, aad)]);
    expect(unwrapPrivateKey(() => MASTER_KEY, byHand, ctx).equals(der)).toBe(true);
    const blob = wrapPrivateKey({ version: 7, key: MASTER_KEY }, der, ctx);
    expect(blob.subarray(0, 8).equals(header)).toBe(true);
    expect(gcmOpen(MASTER_KEY, blob.subarray(8), aad).equals(der)).toBe(true);
  });

  it('§8: the master key file vector parses, carries the documented checksum and re-serializes identically', () => {
    const document = JSON.parse(text('master-key-file'));
    expect(document.checksum).toBe(documentedMasterKeyChecksum(document.active, document.keys));
    const ring = parseMasterKeyFile(text('master-key-file'));
    expect(ring.require(1).equals(Buffer.alloc(32, 1))).toBe(true);
    expect(ring.require(2).equals(Buffer.alloc(32, 2))).toBe(true);
    expect(ring.activeVersion).toBe(2);
    expect(serializeMasterKeyFile(ring)).toBe(text('master-key-file'));
  });

  it('§9: the passphrase blob vector is rebuilt from its description and decrypts', async () => {
    const header = Buffer.alloc(24);
    header.write('CP', 0, 'latin1');
    header[2] = 1;
    header[3] = 1;
    header.writeUInt32BE(600_000, 4);
    seq(0xa0, 16).copy(header, 8);
    const passphrase = 'correct horse battery staple';
    const key = pbkdf2Sync(Buffer.from(passphrase), seq(0xa0, 16), 600_000, 32, 'sha256');
    const blob = Buffer.concat([header, gcmSeal(key, seq(0xb0, 12), Buffer.from('crate'), header)]);
    expect(hexVector('passphrase-blob').equals(blob)).toBe(true);
    expect((await decryptWithPassphrase(blob, passphrase)).toString()).toBe('crate');

    const ours = await encryptWithPassphrase(Buffer.from('backup'), passphrase);
    const oursKey = pbkdf2Sync(
      Buffer.from(passphrase),
      ours.subarray(8, 24),
      ours.readUInt32BE(4),
      32,
      'sha256',
    );
    expect(gcmOpen(oursKey, ours.subarray(24), ours.subarray(0, 24)).toString()).toBe('backup');
  });

  it('§10-11: the share file vector parses, and files built by hand from the KAT shares recover the secret', () => {
    const kat = JSON.parse(
      readFileSync(new URL('./fixtures/shamir-kat.json', import.meta.url), 'utf8'),
    ) as { secretHex: string; shares: string[] };
    const secret = Buffer.from(kat.secretHex, 'hex');
    const documented = parseShareFile(text('share-file'));
    expect(encodeShareFile(documented)).toBe(text('share-file'));
    expect(documented.keyCheck).toBe(documentedShareKeyCheck(secret, documented.splitId));
    expect(documented.checksum).toBe(documentedShareChecksum(documented));
    expect(Buffer.from(documented.share, 'base64').toString('hex')).toBe(kat.shares[0]);

    const byHand = [2, 4].map((index) => {
      const fields = {
        ...documented,
        index,
        share: Buffer.from(kat.shares[index - 1]!, 'hex').toString('base64'),
      };
      return { ...fields, checksum: documentedShareChecksum(fields) };
    });
    expect(recoverFromShareFiles([byHand[1]!, documented, byHand[0]!]).equals(secret)).toBe(true);
  });

  it('§12: the canonical audit entry and its hash are what crypto-core computes', () => {
    const body = JSON.parse(line('audit-canonical')) as AuditEntryBody;
    expect(canonicalAuditBytes(body).toString('utf8')).toBe(line('audit-canonical'));
    const byHand = createHash('sha256')
      .update(
        Buffer.concat([
          Buffer.from('crate/audit/v1', 'ascii'),
          Buffer.of(0),
          Buffer.alloc(32),
          Buffer.from(line('audit-canonical'), 'utf8'),
        ]),
      )
      .digest();
    expect(hexVector('audit-hash').equals(byHand)).toBe(true);
    expect(computeAuditHash(AUDIT_GENESIS_HASH, body).equals(byHand)).toBe(true);
  });

  it('§15: the key vouch bytes are the documented domain line and JSON, signed by the RFC 8032 key', () => {
    const signed = text('key-vouch-bytes').replace(/\n$/, '');
    const [domain, json] = signed.split('\n') as [string, string];
    expect(domain).toBe('crate/key-vouch/v1');
    const statement = JSON.parse(json) as Parameters<typeof keyVouchBytes>[0];
    expect(Object.keys(statement)).toEqual([
      'org',
      'sealingKeyId',
      'sealingFingerprint',
      'signingKeyId',
      'signingFingerprint',
    ]);
    expect(keyVouchBytes(statement).toString('utf8')).toBe(signed);
    const seed = Buffer.from(
      '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
      'hex',
    );
    const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
    const spki = Buffer.concat([
      Buffer.from('302a300506032b6570032100', 'hex'),
      Buffer.from('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', 'hex'),
    ]);
    const signature = Buffer.from(line('key-vouch-signature'), 'base64url');
    expect(
      nodeSign(
        null,
        Buffer.from(signed, 'utf8'),
        createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }),
      ),
    ).toEqual(signature);
    expect(signKeyVouch(importSigningPrivateKey(pkcs8), statement)).toEqual(signature);
    expect(verifyKeyVouch(importSigningPublicKey(spki), statement, signature)).toBe(true);
  });

  it('uses lp() exactly as the notation says: a u32be byte length, then UTF-8', () => {
    expect(lps('DB_PÄSS', 600000).toString('hex')).toBe(
      '0000000844425f50c384535300000006363030303030',
    );
  });
});
