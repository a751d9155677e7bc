import { encodeAad, isWellFormedString } from './lib/aad.js';
import { assertInteger } from './lib/assert.js';
import { assertKeyVersion } from './lib/versioned-key.js';

/**
 * The authenticated contexts (AAD) of the at-rest tiers. Each names, in a fixed order, every
 * identity a ciphertext belongs to, so that a blob copied into another row, org, version or
 * tier fails to open. The byte encoding (lib/aad.ts) is
 *
 *   lp("crate/aad/v1") || lp(purpose) || for each field: lp(fieldName) || lp(value)
 *   lp(x) = u32be(byte length of UTF-8(x)) || UTF-8(x); integers in base 10, no leading zeros
 *
 * Wrapped keys get one more field from envelope.ts, the version of the key that wraps them
 * (`masterKeyVersion` or `orgDekVersion`), appended after the fields built here.
 */

export const CONTEXT_PURPOSE = {
  orgDek: 'org-dek',
  privateKey: 'private-key',
  secretDek: 'secret-dek',
  secretValue: 'secret-value',
  orgMacKey: 'org-mac-key',
} as const;

export const PRIVATE_KEY_KINDS = ['sealing', 'signing', 'audit'] as const;
export type PrivateKeyKind = (typeof PRIVATE_KEY_KINDS)[number];

export interface OrgDekContext {
  readonly orgId: string;
  readonly dekVersion: number;
}

export interface PrivateKeyContext {
  readonly orgId: string;
  readonly keyId: string;
  readonly keyKind: PrivateKeyKind;
}

export interface OrgMacKeyContext {
  readonly orgId: string;
  readonly macKeyVersion: number;
}

/** Identifies one version of one secret. */
export interface SecretRef {
  readonly orgId: string;
  readonly projectId: string;
  readonly environmentId: string;
  readonly name: string;
  readonly version: number;
}

/** purpose 'org-dek': orgId, dekVersion (then masterKeyVersion, added by the envelope). */
export function orgDekContext(ctx: OrgDekContext): Buffer {
  assertContextObject(ctx);
  return encodeAad(CONTEXT_PURPOSE.orgDek, [
    ['orgId', identifier(ctx.orgId, 'orgId')],
    ['dekVersion', keyVersion(ctx.dekVersion, 'dekVersion')],
  ]);
}

/** purpose 'org-mac-key': orgId, macKeyVersion (then masterKeyVersion, added by the envelope). */
export function orgMacKeyContext(ctx: OrgMacKeyContext): Buffer {
  assertContextObject(ctx);
  return encodeAad(CONTEXT_PURPOSE.orgMacKey, [
    ['orgId', identifier(ctx.orgId, 'orgId')],
    ['macKeyVersion', keyVersion(ctx.macKeyVersion, 'macKeyVersion')],
  ]);
}

/** purpose 'private-key': orgId, keyId, keyKind (then masterKeyVersion, added by the envelope). */
export function privateKeyContext(ctx: PrivateKeyContext): Buffer {
  assertContextObject(ctx);
  if (!(PRIVATE_KEY_KINDS as readonly unknown[]).includes(ctx.keyKind)) {
    throw new TypeError(`keyKind must be one of ${PRIVATE_KEY_KINDS.join(', ')}`);
  }
  return encodeAad(CONTEXT_PURPOSE.privateKey, [
    ['orgId', identifier(ctx.orgId, 'orgId')],
    ['keyId', identifier(ctx.keyId, 'keyId')],
    ['keyKind', ctx.keyKind],
  ]);
}

/** purpose 'secret-dek': the SecretRef fields (then orgDekVersion, added by the envelope). */
export function secretDekContext(ref: SecretRef): Buffer {
  return encodeAad(CONTEXT_PURPOSE.secretDek, secretRefFields(ref));
}

/** purpose 'secret-value': orgId, projectId, environmentId, name, version. */
export function secretValueContext(ref: SecretRef): Buffer {
  return encodeAad(CONTEXT_PURPOSE.secretValue, secretRefFields(ref));
}

function secretRefFields(ref: SecretRef): Array<readonly [string, string | number]> {
  assertContextObject(ref);
  return [
    ['orgId', identifier(ref.orgId, 'orgId')],
    ['projectId', identifier(ref.projectId, 'projectId')],
    ['environmentId', identifier(ref.environmentId, 'environmentId')],
    ['name', identifier(ref.name, 'name')],
    ['version', secretVersion(ref.version)],
  ];
}

function assertContextObject(value: unknown): asserts value is object {
  if (typeof value !== 'object' || value === null) {
    throw new TypeError('context must be an object');
  }
}

/** Ids and names: non-empty, and encodable to UTF-8 without loss. */
function identifier(value: unknown, label: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`${label} must be a non-empty string`);
  }
  if (!isWellFormedString(value)) {
    throw new TypeError(`${label} must be well-formed UTF-16 (no lone surrogates)`);
  }
  return value;
}

function keyVersion(value: unknown, label: string): number {
  assertKeyVersion(value, label);
  return value;
}

function secretVersion(value: unknown): number {
  assertInteger(value, 'version', 1, Number.MAX_SAFE_INTEGER);
  return value;
}
