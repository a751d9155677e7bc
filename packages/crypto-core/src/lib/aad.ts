/**
 * The length-prefixed encoding behind every AAD context (and behind the bytes a bundle
 * signature covers). Each part is lp(x) = u32 big-endian byte length of UTF-8(x) || UTF-8(x),
 * so no two different field lists can encode to the same bytes.
 *
 * AAD = lp("crate/aad/v1") || lp(purpose) || for each field, in the purpose's fixed order:
 *       lp(fieldName) || lp(value)
 * Integers are rendered in base 10 without leading zeros ("0", "7", "4294967295").
 */
export const AAD_DOMAIN = 'crate/aad/v1';

export type LengthPrefixedValue = string | number;

// In a /u regular expression a well-formed surrogate pair is one code point, so only a lone
// surrogate matches \p{Surrogate}. UTF-8 cannot represent a lone surrogate: Buffer.from would
// silently replace it with U+FFFD, and two different strings would then encode alike.
const LONE_SURROGATE = /\p{Surrogate}/u;

export function isWellFormedString(value: string): boolean {
  return !LONE_SURROGATE.test(value);
}

/** Renders one value for lp(): strings as UTF-8, non-negative safe integers in base 10. */
function renderPart(value: LengthPrefixedValue, label: string): Buffer {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`${label} must be a non-negative safe integer`);
    }
    return Buffer.from(String(value), 'utf8');
  }
  if (typeof value !== 'string') {
    throw new TypeError(`${label} must be a string or an integer`);
  }
  if (!isWellFormedString(value)) {
    throw new TypeError(`${label} must be well-formed UTF-16 (no lone surrogates)`);
  }
  return Buffer.from(value, 'utf8');
}

/** lp(part0) || lp(part1) || ... */
export function encodeLengthPrefixed(parts: ReadonlyArray<LengthPrefixedValue>): Buffer {
  const chunks: Buffer[] = [];
  for (const [index, part] of parts.entries()) {
    const bytes = renderPart(part, `part ${index}`);
    if (bytes.length > 0xffff_ffff) {
      throw new RangeError(`part ${index} is longer than 2^32-1 bytes`);
    }
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length, 0);
    chunks.push(length, bytes);
  }
  return Buffer.concat(chunks);
}

/**
 * Builds the AAD for `purpose` from `fields`, given in that purpose's fixed order. The caller
 * owns the order; this function only encodes. Field names must be non-empty.
 */
export function encodeAad(
  purpose: string,
  fields: ReadonlyArray<readonly [string, LengthPrefixedValue]>,
): Buffer {
  if (typeof purpose !== 'string' || purpose.length === 0) {
    throw new TypeError('purpose must be a non-empty string');
  }
  const parts: LengthPrefixedValue[] = [AAD_DOMAIN, purpose];
  for (const [name, value] of fields) {
    if (typeof name !== 'string' || name.length === 0) {
      throw new TypeError('field names must be non-empty strings');
    }
    parts.push(name, value);
  }
  return encodeLengthPrefixed(parts);
}
