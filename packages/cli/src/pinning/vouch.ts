/**
 * The bytes an org's previous signing key signs to vouch for a new key set after a rotation.
 * The server computes the same bytes when it rotates; see docs/cli.md ("Key pinning").
 *
 *   UTF-8("crate/key-vouch/v1\n") || UTF-8(JSON.stringify({ org, sealingKeyId,
 *     sealingFingerprint, signingKeyId, signingFingerprint }))   (keys in exactly this order)
 *
 * Fingerprints are in the 'SHA256:<hex>' form of formatFingerprint(..., 'hex').
 * JSON.stringify escapes every string, so the encoding is unambiguous.
 */
export interface VouchedKeys {
  org: string;
  sealingKeyId: string;
  sealingFingerprint: string;
  signingKeyId: string;
  signingFingerprint: string;
}

export const KEY_VOUCH_DOMAIN = 'crate/key-vouch/v1\n';

export function keyVouchBytes(keys: VouchedKeys): Buffer {
  const body = JSON.stringify({
    org: keys.org,
    sealingKeyId: keys.sealingKeyId,
    sealingFingerprint: keys.sealingFingerprint,
    signingKeyId: keys.signingKeyId,
    signingFingerprint: keys.signingFingerprint,
  });
  return Buffer.from(KEY_VOUCH_DOMAIN + body, 'utf8');
}
