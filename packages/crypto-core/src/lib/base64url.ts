/**
 * Strict base64url (RFC 4648 §5, no padding) and base64 (§4, padded) codecs.
 *
 * Buffer.from(text, 'base64url') is lenient: it skips characters outside the alphabet, accepts
 * padding and ignores non-zero trailing bits, so several strings decode to the same bytes. In
 * an authenticated format that would let a flipped character go unnoticed, so the decoders
 * here accept only the one canonical encoding of each byte string and return undefined for
 * anything else (the caller turns that into its fixed error).
 */

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function encodeBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Decodes canonical unpadded base64url; undefined for anything else. */
export function decodeBase64url(text: unknown): Buffer | undefined {
  if (typeof text !== 'string' || !BASE64URL.test(text) || text.length % 4 === 1) {
    return undefined;
  }
  const bytes = Buffer.from(text, 'base64url');
  // Re-encoding catches non-zero trailing bits (e.g. "AB" and "AA" both decoding to 0x00).
  return bytes.toString('base64url') === text ? bytes : undefined;
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** Decodes canonical padded base64; undefined for anything else. */
export function decodeBase64(text: unknown): Buffer | undefined {
  if (typeof text !== 'string' || !BASE64.test(text)) {
    return undefined;
  }
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}
