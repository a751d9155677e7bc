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

// A lone surrogate cannot be represented in UTF-8: Buffer.from would silently replace it with
// U+FFFD, and two different strings would then encode alike. String.prototype.isWellFormed
// (ES2024; every Node this project supports has it, engines >= 22) answers exactly "no lone
// surrogate". The TypeScript lib here is ES2023, hence the cast.
const nativeIsWellFormed = (String.prototype as unknown as { isWellFormed: () => boolean })
  .isWellFormed;

export const isWellFormedString = (value: string): boolean => nativeIsWellFormed.call(value);

/** Renders one value for lp(): strings as-is (checked), non-negative safe integers in base 10. */
function renderPart(value: LengthPrefixedValue, label: string): string {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`${label} must be a non-negative safe integer`);
    }
    return String(value);
  }
  if (typeof value !== 'string') {
    throw new TypeError(`${label} must be a string or an integer`);
  }
  if (!isWellFormedString(value)) {
    throw new TypeError(`${label} must be well-formed UTF-16 (no lone surrogates)`);
  }
  return value;
}

/**
 * lp(part0) || lp(part1) || ... Written into one buffer sized up front (this runs for every
 * envelope opened, so it avoids a Buffer per part and a concatenation).
 */
export function encodeLengthPrefixed(parts: ReadonlyArray<LengthPrefixedValue>): Buffer {
  const texts: string[] = new Array(parts.length);
  const lengths: number[] = new Array(parts.length);
  let total = 0;
  for (let index = 0; index < parts.length; index++) {
    const text = renderPart(parts[index]!, `part ${index}`);
    const length = Buffer.byteLength(text, 'utf8');
    if (length > 0xffff_ffff) {
      throw new RangeError(`part ${index} is longer than 2^32-1 bytes`);
    }
    texts[index] = text;
    lengths[index] = length;
    total += 4 + length;
  }
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (let index = 0; index < texts.length; index++) {
    offset = out.writeUInt32BE(lengths[index]!, offset);
    offset += out.write(texts[index]!, offset, 'utf8');
  }
  return out;
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
