import { AEAD_KEY_BYTES } from '../aead.js';
import { assertBytes, assertInteger } from './assert.js';

/** Largest key version: it is a u32 in the envelope header. Versions start at 1. */
export const MAX_KEY_VERSION = 0xffff_ffff;

/** A 32-byte AES-256 key and the version under which it is stored (1..2^32-1). */
export interface VersionedKey {
  readonly version: number;
  readonly key: Buffer;
}

export function assertKeyVersion(value: unknown, label: string): asserts value is number {
  assertInteger(value, label, 1, MAX_KEY_VERSION);
}

export function assertVersionedKey(value: unknown, label: string): asserts value is VersionedKey {
  if (typeof value !== 'object' || value === null) {
    throw new TypeError(`${label} must be an object { version, key }`);
  }
  const candidate = value as { version?: unknown; key?: unknown };
  assertKeyVersion(candidate.version, `${label}.version`);
  assertBytes(candidate.key, `${label}.key`, AEAD_KEY_BYTES);
}
