import { createHmac, timingSafeEqual } from 'node:crypto';
import { encodeLengthPrefixed, type LengthPrefixedValue } from './lib/aad.js';
import { assertInteger, assertNonEmptyString } from './lib/assert.js';
import { assertKeyVersion, assertVersionedKey, type VersionedKey } from './lib/versioned-key.js';

/**
 * The integrity MAC over a secret's stored state: the columns of a `secrets` row the server
 * acts on (which version is current, whether it is deleted, its tags), bound to the secret's
 * identity. The AEAD envelopes protect each version's bytes but not which version the row
 * points at; this MAC does, so a pointer edited in the database (or the newest version row
 * deleted) is detected instead of served.
 *
 *   input = lp("crate/mac/v1") || lp("secret-state")
 *           || lp("orgId") || lp(orgId) || lp("projectId") || lp(projectId)
 *           || lp("environmentId") || lp(environmentId) || lp("secretId") || lp(secretId)
 *           || lp("name") || lp(name) || lp("currentVersion") || lp(currentVersion)
 *           || lp("deleted") || lp(0 | 1) || lp("tags") || lp(tag count)
 *           || for each tag, in stored order: lp("tag") || lp(tag)
 *           || lp("macKeyVersion") || lp(macKeyVersion)
 *   stored = u8 formatVersion (1) || u32be macKeyVersion || HMAC-SHA-256(org MAC key, input)
 *
 * lp() is the length prefix of every AAD (lib/aad.ts). The MAC key version is both in the
 * stored header (to pick the key) and in the input (so the header cannot be changed alone).
 */

export const INTEGRITY_MAC_DOMAIN = 'crate/mac/v1';
export const SECRET_STATE_MAC_PURPOSE = 'secret-state';
export const SECRET_STATE_MAC_FORMAT_VERSION = 1;
const HMAC_BYTES = 32;
export const SECRET_STATE_MAC_BYTES = 1 + 4 + HMAC_BYTES;

export interface SecretState {
  readonly orgId: string;
  readonly projectId: string;
  readonly environmentId: string;
  readonly secretId: string;
  readonly name: string;
  readonly currentVersion: number;
  readonly deleted: boolean;
  readonly tags: readonly string[];
}

/** The exact bytes the MAC covers (exported for docs/formats.md's test). */
export function secretStateMacInput(state: SecretState, macKeyVersion: number): Buffer {
  if (typeof state !== 'object' || state === null) {
    throw new TypeError('state must be an object');
  }
  assertInteger(state.currentVersion, 'currentVersion', 1, Number.MAX_SAFE_INTEGER);
  assertKeyVersion(macKeyVersion, 'macKeyVersion');
  if (typeof state.deleted !== 'boolean') throw new TypeError('deleted must be a boolean');
  if (!Array.isArray(state.tags)) throw new TypeError('tags must be an array of strings');
  for (const field of ['orgId', 'projectId', 'environmentId', 'secretId', 'name'] as const) {
    assertNonEmptyString(state[field], field);
  }
  const parts: LengthPrefixedValue[] = [
    INTEGRITY_MAC_DOMAIN,
    SECRET_STATE_MAC_PURPOSE,
    'orgId',
    state.orgId,
    'projectId',
    state.projectId,
    'environmentId',
    state.environmentId,
    'secretId',
    state.secretId,
    'name',
    state.name,
    'currentVersion',
    state.currentVersion,
    'deleted',
    state.deleted ? 1 : 0,
    'tags',
    state.tags.length,
  ];
  for (const tag of state.tags) {
    if (typeof tag !== 'string') throw new TypeError('tags must be an array of strings');
    parts.push('tag', tag);
  }
  parts.push('macKeyVersion', macKeyVersion);
  return encodeLengthPrefixed(parts);
}

/** The stored MAC of `state` under the org's active MAC key. */
export function computeSecretStateMac(macKey: VersionedKey, state: SecretState): Buffer {
  assertVersionedKey(macKey, 'macKey');
  const out = Buffer.alloc(SECRET_STATE_MAC_BYTES);
  out.writeUInt8(SECRET_STATE_MAC_FORMAT_VERSION, 0);
  out.writeUInt32BE(macKey.version, 1);
  hmac(macKey.key, secretStateMacInput(state, macKey.version)).copy(out, 5);
  return out;
}

/**
 * True if `stored` is the MAC of `state` under the MAC key version its header names. Anything
 * else (null, wrong length or format, a key version the lookup does not hold, a different
 * tag) is false: the caller reports one integrity failure whatever the cause. The tags are
 * compared in constant time.
 */
export function verifySecretStateMac(
  macKeys: (version: number) => Uint8Array | undefined,
  stored: Uint8Array | null | undefined,
  state: SecretState,
): boolean {
  if (!(stored instanceof Uint8Array) || stored.length !== SECRET_STATE_MAC_BYTES) return false;
  const bytes = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  if (bytes.readUInt8(0) !== SECRET_STATE_MAC_FORMAT_VERSION) return false;
  const version = bytes.readUInt32BE(1);
  if (version === 0) return false;
  const key = macKeys(version);
  if (key === undefined) return false;
  const expected = hmac(key, secretStateMacInput(state, version));
  return timingSafeEqual(expected, bytes.subarray(5));
}

function hmac(key: Uint8Array, input: Buffer): Buffer {
  return createHmac('sha256', key).update(input).digest();
}
