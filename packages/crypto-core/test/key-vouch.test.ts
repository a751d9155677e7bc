import { describe, expect, it } from 'vitest';
import {
  formatFingerprint,
  generateSigningKeyPair,
  importSigningPrivateKey,
  importSigningPublicKey,
  KEY_VOUCH_DOMAIN,
  type KeyVouchStatement,
  keyVouchBytes,
  signKeyVouch,
  spkiFingerprint,
  verifyKeyVouch,
} from '../src/index.js';

const previous = generateSigningKeyPair();
const next = generateSigningKeyPair();
const previousPrivate = importSigningPrivateKey(previous.privateKeyPkcs8);
const previousPublic = importSigningPublicKey(previous.publicKeySpki);

const statement: KeyVouchStatement = {
  org: 'org_1',
  sealingKeyId: 'key_seal_2',
  sealingFingerprint: `SHA256:${'0f'.repeat(32)}`,
  signingKeyId: 'key_sign_2',
  signingFingerprint: formatFingerprint(spkiFingerprint(next.publicKeySpki), 'hex'),
};

describe('key vouches', () => {
  it('signs the domain line followed by the statement as JSON, members in the documented order', () => {
    const bytes = keyVouchBytes({
      signingFingerprint: statement.signingFingerprint,
      signingKeyId: statement.signingKeyId,
      sealingFingerprint: statement.sealingFingerprint,
      sealingKeyId: statement.sealingKeyId,
      org: statement.org,
    });
    expect(bytes.toString('utf8')).toBe(
      `${KEY_VOUCH_DOMAIN}{"org":"org_1","sealingKeyId":"key_seal_2","sealingFingerprint":"${statement.sealingFingerprint}","signingKeyId":"key_sign_2","signingFingerprint":"${statement.signingFingerprint}"}`,
    );
  });

  it('verifies a vouch signed by the previous key for exactly the same statement', () => {
    const signature = signKeyVouch(previousPrivate, statement);
    expect(signature).toHaveLength(64);
    expect(verifyKeyVouch(previousPublic, statement, signature)).toBe(true);
  });

  it('refuses the vouch when any member of the statement differs', () => {
    const signature = signKeyVouch(previousPrivate, statement);
    const changes: Partial<KeyVouchStatement>[] = [
      { org: 'org_2' },
      { sealingKeyId: 'key_seal_3' },
      { sealingFingerprint: `SHA256:${'1f'.repeat(32)}` },
      { signingKeyId: 'key_sign_3' },
      { signingFingerprint: formatFingerprint(spkiFingerprint(previous.publicKeySpki), 'hex') },
    ];
    for (const change of changes) {
      expect(verifyKeyVouch(previousPublic, { ...statement, ...change }, signature)).toBe(false);
    }
  });

  it('refuses a vouch with any single bit of the signature flipped', () => {
    const signature = signKeyVouch(previousPrivate, statement);
    for (let bit = 0; bit < signature.length * 8; bit += 7) {
      const flipped = Buffer.from(signature);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      expect(verifyKeyVouch(previousPublic, statement, flipped)).toBe(false);
    }
  });

  it('refuses a vouch signed by another key, the new key included', () => {
    const byNewKey = signKeyVouch(importSigningPrivateKey(next.privateKeyPkcs8), statement);
    expect(verifyKeyVouch(previousPublic, statement, byNewKey)).toBe(false);
  });

  it('answers false, without throwing, for a malformed statement from the network', () => {
    const signature = signKeyVouch(previousPrivate, statement);
    const malformed = [
      { ...statement, org: '' },
      { ...statement, sealingKeyId: '' },
      { ...statement, sealingFingerprint: statement.sealingFingerprint.toUpperCase() },
      { ...statement, signingFingerprint: 'SHA256:abc' },
      { ...statement, org: 'org_\ud800' },
      { ...statement, signingKeyId: 42 as unknown as string },
    ];
    for (const bad of malformed) {
      expect(verifyKeyVouch(previousPublic, bad, signature)).toBe(false);
    }
  });

  it('throws a TypeError when asked to sign a malformed statement (a programming error)', () => {
    expect(() => keyVouchBytes({ ...statement, sealingFingerprint: 'nope' })).toThrow(TypeError);
    expect(() => signKeyVouch(previousPrivate, { ...statement, org: '' })).toThrow(TypeError);
  });
});
