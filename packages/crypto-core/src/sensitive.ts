import { createHmac, createSecretKey, randomBytes, timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';

/**
 * Overwrites buffers holding key material or plaintext with zeros. JavaScript gives no
 * guarantee that no other copy exists (the engine may have moved or copied the bytes, and
 * strings cannot be wiped at all); this shortens the window, it does not close it.
 */
export function zeroize(...buffers: ReadonlyArray<Uint8Array | null | undefined>): void {
  for (const buffer of buffers) {
    buffer?.fill(0);
  }
}

/** Runs `fn`, then zeroes every buffer in `temporaries`, whatever happened. */
export function withZeroized<T>(temporaries: Uint8Array[], fn: () => T): T {
  try {
    return fn();
  } finally {
    zeroize(...temporaries);
  }
}

const REDACTED = '[REDACTED]';

/**
 * Holds a secret so that it cannot leak through logging or serialization by accident:
 * `String(x)`, `JSON.stringify(x)` and `util.inspect(x)` (console.log) all print [REDACTED].
 * Reading the value takes an explicit `.expose()`.
 */
export class Sensitive<T extends Uint8Array | string> {
  readonly #value: T;

  constructor(value: T) {
    this.#value = value;
  }

  expose(): T {
    return this.#value;
  }

  /** Zeroes the held bytes (no effect for strings, which JavaScript cannot wipe). */
  destroy(): void {
    if (this.#value instanceof Uint8Array) {
      this.#value.fill(0);
    }
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}

// One random key per process: comparing HMACs keeps the comparison constant-time even when
// the inputs differ in length, without leaking the length of either. A KeyObject, because
// createHmac under raw key bytes costs several times more on Node 24 (see AeadKey in aead.ts).
const comparisonKey = (() => {
  const bytes = randomBytes(32);
  try {
    return createSecretKey(bytes);
  } finally {
    bytes.fill(0);
  }
})();

/** Constant-time equality for tags, token hashes and fingerprints. Never use === on these. */
export function constantTimeEqual(a: Uint8Array | string, b: Uint8Array | string): boolean {
  const macA = createHmac('sha256', comparisonKey).update(a).digest();
  const macB = createHmac('sha256', comparisonKey).update(b).digest();
  return timingSafeEqual(macA, macB);
}
