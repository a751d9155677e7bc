import { format, inspect } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CrateError,
  constantTimeEqual,
  DECRYPT_FAILED_MESSAGE,
  ERROR_CODES,
  isCrateError,
  Sensitive,
  withZeroized,
  zeroize,
} from '../src/index.js';

const SECRET_TEXT = 'sk_live_do_not_print_me';
const SECRET_BYTES = Buffer.from('7365637265742d6b6579', 'hex');

/** Every way a value commonly reaches a log line, a response body or an error message. */
function renderings(value: unknown): string[] {
  return [
    String(value),
    `${value}`,
    // The + operator takes another path than a template: valueOf first, then toString.
    '' + value,
    JSON.stringify(value),
    JSON.stringify({ nested: { value } }),
    JSON.stringify([value]),
    inspect(value),
    inspect({ nested: { value } }, { depth: 10 }),
    inspect(value, { showHidden: true, customInspect: false }),
    format('%s %o %O %j', value, value, value, value),
  ];
}

describe('Sensitive', () => {
  it.each([
    ['a string', SECRET_TEXT, SECRET_TEXT],
    ['a Buffer', SECRET_BYTES, 'secret-key'],
  ])('never shows %s through String, templates, JSON or util.inspect', (_, value, visible) => {
    // The same renderings of the bare value do show it, so the check below can fail.
    expect(renderings(value).some((text) => text.includes(visible))).toBe(true);
    const wrapped = new Sensitive<string | Uint8Array>(value);
    for (const text of renderings(wrapped)) {
      expect(text).not.toContain(visible);
      expect(text).not.toContain(SECRET_BYTES.toString('hex'));
      expect(text).not.toContain('73 65 63 72');
    }
    expect(String(wrapped)).toBe('[REDACTED]');
    expect(JSON.stringify({ wrapped })).toBe('{"wrapped":"[REDACTED]"}');
    expect(inspect(wrapped)).toBe('[REDACTED]');
  });

  it('shows nothing when spread, listed or cloned, because the value is a private field', () => {
    const wrapped = new Sensitive(SECRET_TEXT);
    expect(Object.keys(wrapped)).toEqual([]);
    expect({ ...wrapped }).toEqual({});
    expect(JSON.stringify(structuredClone(wrapped))).not.toContain(SECRET_TEXT);
  });

  it('gives the value back only through expose()', () => {
    expect(new Sensitive(SECRET_TEXT).expose()).toBe(SECRET_TEXT);
    const bytes = Buffer.from(SECRET_BYTES);
    expect(new Sensitive(bytes).expose()).toBe(bytes);
  });

  it('zeroes held bytes on destroy and leaves a string alone', () => {
    const bytes = Buffer.from(SECRET_BYTES);
    const wrapped = new Sensitive(bytes);
    wrapped.destroy();
    expect(bytes.equals(Buffer.alloc(SECRET_BYTES.length))).toBe(true);
    const text = new Sensitive(SECRET_TEXT);
    text.destroy();
    expect(text.expose()).toBe(SECRET_TEXT);
  });
});

describe('zeroize and withZeroized', () => {
  it('zeroes every buffer given and skips null and undefined', () => {
    const a = Buffer.from('abc');
    const b = new Uint8Array([1, 2, 3]);
    zeroize(a, null, b, undefined);
    expect([...a, ...b]).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('zeroes the temporaries after the function returns and returns its result', () => {
    const key = Buffer.alloc(32, 0xaa);
    expect(withZeroized([key], () => key.readUInt8(0))).toBe(0xaa);
    expect(key.equals(Buffer.alloc(32))).toBe(true);
  });

  it('zeroes the temporaries when the function throws, and rethrows', () => {
    const key = Buffer.alloc(32, 0xaa);
    expect(() =>
      withZeroized([key], () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(key.equals(Buffer.alloc(32))).toBe(true);
  });
});

describe('constantTimeEqual', () => {
  it('is true exactly when the bytes are equal, for any two byte strings', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), (a, b) => {
        expect(constantTimeEqual(a, b)).toBe(Buffer.from(a).equals(Buffer.from(b)));
        expect(constantTimeEqual(a, Uint8Array.from(a))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('tells apart inputs of different lengths and inputs that differ in the last bit only', () => {
    const hash = Buffer.alloc(32, 0x5a);
    const flipped = Buffer.from(hash);
    flipped[31]! ^= 1;
    expect(constantTimeEqual(hash, flipped)).toBe(false);
    expect(constantTimeEqual(hash, hash.subarray(0, 31))).toBe(false);
    expect(constantTimeEqual(Buffer.alloc(0), Buffer.alloc(0))).toBe(true);
  });

  it('compares strings by their UTF-8 bytes', () => {
    expect(constantTimeEqual('tok_é', 'tok_é')).toBe(true);
    expect(constantTimeEqual('tok_é', 'tok_e')).toBe(false);
    expect(constantTimeEqual('abc', Buffer.from('abc'))).toBe(true);
  });
});

describe('CrateError', () => {
  it('carries a stable code, its name and the cause, and is recognized by isCrateError', () => {
    const cause = new Error('low level');
    const error = new CrateError('ERR_SHARE_CORRUPT', 'share 2 is damaged', { cause });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('CrateError');
    expect(error.code).toBe('ERR_SHARE_CORRUPT');
    expect(error.cause).toBe(cause);
    expect(isCrateError(error)).toBe(true);
    expect(isCrateError(error, 'ERR_SHARE_CORRUPT')).toBe(true);
    expect(isCrateError(error, 'ERR_DECRYPT')).toBe(false);
    expect(isCrateError(cause)).toBe(false);
    expect(isCrateError({ code: 'ERR_DECRYPT', message: DECRYPT_FAILED_MESSAGE })).toBe(false);
  });

  it('has unique codes, all of the ERR_UPPER_SNAKE form', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    for (const code of ERROR_CODES) {
      expect(code).toMatch(/^ERR_[A-Z0-9]+(?:_[A-Z0-9]+)*$/);
    }
  });
});
