import type { KeyObject } from 'node:crypto';
import { isNonEmptyWellFormedString, isValidKeyId } from './lib/wire.js';
import { sign, verify } from './signing.js';

/**
 * A key vouch: after an org's keys are rotated, the org's previous Ed25519 signing key signs
 * the ids and fingerprints of the new key set, so that a client which pinned the previous keys
 * can accept the new ones without asking its user (docs/formats.md §15).
 *
 *   UTF-8("crate/key-vouch/v1\n") || UTF-8(JSON.stringify({ org, sealingKeyId,
 *     sealingFingerprint, signingKeyId, signingFingerprint }))   (members in exactly this order)
 *
 * Fingerprints are in the 'SHA256:<64 lowercase hex>' form of formatFingerprint(..., 'hex').
 * JSON.stringify quotes and escapes every string, so the encoding is unambiguous; strings must
 * be well-formed Unicode. The domain line keeps these bytes apart from every other signed
 * structure.
 */
export interface KeyVouchStatement {
  /** The org id the keys belong to. */
  readonly org: string;
  readonly sealingKeyId: string;
  readonly sealingFingerprint: string;
  readonly signingKeyId: string;
  readonly signingFingerprint: string;
}

export const KEY_VOUCH_DOMAIN = 'crate/key-vouch/v1\n';

const FINGERPRINT = /^SHA256:[0-9a-f]{64}$/;

function statementProblem(statement: KeyVouchStatement): string | undefined {
  if (typeof statement !== 'object' || statement === null) return 'statement must be an object';
  if (!isNonEmptyWellFormedString(statement.org)) {
    return 'org must be a non-empty, well-formed string';
  }
  for (const field of ['sealingKeyId', 'signingKeyId'] as const) {
    if (!isValidKeyId(statement[field])) return `${field} must be a valid key id`;
  }
  for (const field of ['sealingFingerprint', 'signingFingerprint'] as const) {
    const value = statement[field];
    if (typeof value !== 'string' || !FINGERPRINT.test(value)) {
      return `${field} must be 'SHA256:' and 64 lowercase hex digits`;
    }
  }
  return undefined;
}

/** The exact bytes a vouch signs. A malformed statement is a programming error (TypeError). */
export function keyVouchBytes(statement: KeyVouchStatement): Buffer {
  const problem = statementProblem(statement);
  if (problem !== undefined) throw new TypeError(problem);
  const body = JSON.stringify({
    org: statement.org,
    sealingKeyId: statement.sealingKeyId,
    sealingFingerprint: statement.sealingFingerprint,
    signingKeyId: statement.signingKeyId,
    signingFingerprint: statement.signingFingerprint,
  });
  return Buffer.from(KEY_VOUCH_DOMAIN + body, 'utf8');
}

/** Signs a vouch for `statement` with the previous signing key; 64 bytes. */
export function signKeyVouch(previousSigningKey: KeyObject, statement: KeyVouchStatement): Buffer {
  return sign(previousSigningKey, keyVouchBytes(statement));
}

/**
 * True only when `signature` is the previous signing key's vouch for exactly `statement`.
 * Never throws: a malformed statement (data from the network), a wrong key type or a bad
 * signature all answer false, so a caller can only fail closed.
 */
export function verifyKeyVouch(
  previousSigningKey: KeyObject,
  statement: KeyVouchStatement,
  signature: Uint8Array,
): boolean {
  if (statementProblem(statement) !== undefined) return false;
  return verify(previousSigningKey, keyVouchBytes(statement), signature);
}
