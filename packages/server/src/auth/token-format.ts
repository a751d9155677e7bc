import { createHash, randomBytes } from 'node:crypto';
import type { TokenKind } from '../db/schema.js';

/**
 * Bearer tokens: `crate_pat_<id>_<secret>` (a user's) and `crate_svc_<id>_<secret>` (a service's).
 * `<id>` is 16 lowercase base32 characters (80 random bits), stored in clear as the lookup key,
 * so a token is found with one indexed read and no scan over hashes. `<secret>` is 43 base64url
 * characters (32 random bytes); only SHA-256 of it is stored. A fast hash is enough: the secret
 * has 256 bits of entropy, so there is nothing to brute-force that a slow KDF would protect.
 * The prefix lets secret scanners recognise a leaked token.
 */
const TOKEN_PATTERN = /^crate_(pat|svc)_([a-z2-7]{16})_([A-Za-z0-9_-]{43})$/;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

export interface ParsedToken {
  kind: TokenKind;
  id: string;
  secret: string;
}

export interface IssuedToken extends ParsedToken {
  /** The whole token: shown to its owner once, never stored or logged. */
  token: string;
  secretHash: Buffer;
}

export function parseToken(text: string): ParsedToken | undefined {
  const match = TOKEN_PATTERN.exec(text);
  if (!match) return undefined;
  return { kind: match[1] as TokenKind, id: match[2]!, secret: match[3]! };
}

export function hashTokenSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function newTokenId(): string {
  const bytes = randomBytes(10);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

export function issueToken(kind: TokenKind): IssuedToken {
  const id = newTokenId();
  const secret = randomBytes(32).toString('base64url');
  return {
    kind,
    id,
    secret,
    token: `crate_${kind}_${id}_${secret}`,
    secretHash: hashTokenSecret(secret),
  };
}
