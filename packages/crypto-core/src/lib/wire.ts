import { isWellFormedString } from './aad.js';

/** Shared shape checks for the JSON envelopes (seals and bundles) that cross the network. */

/** Longest key id (in UTF-16 code units) accepted in a seal or a bundle. */
export const MAX_KEY_ID_LENGTH = 256;

/** A key id as it may appear in a seal or bundle: 1..256 code units of well-formed UTF-16. */
export function isValidKeyId(kid: unknown): kid is string {
  return (
    typeof kid === 'string' &&
    kid.length > 0 &&
    kid.length <= MAX_KEY_ID_LENGTH &&
    isWellFormedString(kid)
  );
}

/** A non-empty string of well-formed UTF-16 (encodable to UTF-8 without loss). */
export function isNonEmptyWellFormedString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && isWellFormedString(value);
}

/** An object as JSON.parse makes it: not an array, not a class instance. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return false;
  }
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** True when `value` has exactly the own enumerable keys in `expected` (given sorted). */
export function hasExactKeys(value: Record<string, unknown>, expected: readonly string[]): boolean {
  const keys = Object.keys(value).sort();
  return keys.length === expected.length && keys.every((key, index) => key === expected[index]);
}
