/**
 * Argument assertions. These guard against programming errors (wrong types or sizes passed
 * by our own code) and throw TypeError/RangeError; they are never used for data an attacker
 * controls, which must fail with the fixed ERR_DECRYPT instead.
 */
export function assertBytes(
  value: unknown,
  label: string,
  length?: number,
): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`${label} must be a Uint8Array or Buffer`);
  }
  if (length !== undefined && value.length !== length) {
    throw new RangeError(`${label} must be ${length} bytes, got ${value.length}`);
  }
}

export function assertInteger(
  value: unknown,
  label: string,
  min: number,
  max: number,
): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${label} must be an integer from ${min} to ${max}`);
  }
}

export function assertNonEmptyString(value: unknown, label: string): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`${label} must be a non-empty string`);
  }
}

/** A Buffer view over the same memory, so that zeroing one zeroes the other. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
