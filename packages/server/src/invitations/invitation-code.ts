import { createHash, randomBytes } from 'node:crypto';
import { newTokenId } from '../auth/token-format.js';
import type { Role } from '../db/schema.js';

/**
 * Invitation codes: `crate_inv_<id>_<secret>`, shaped like tokens (auth/token-format.ts) so
 * secret scanners recognise a leaked one. `<id>` is 16 base32 characters (80 random bits), the
 * invitation's public id and lookup key; `<secret>` is 43 base64url characters (32 random bytes,
 * 256 bits). Guessing is hopeless: even knowing the id, an online guess succeeds with
 * probability 2^-256, so no rate limit or slow hash is needed to protect it.
 *
 * Only a hash is stored, and it covers the row's terms as well as the secret: SHA-256 over the
 * JSON array [domain, id, org, email, role, expiry in ms, secret]. The server recomputes it from
 * the row it reads, so a row whose email, role, org or expiry was edited in the database (by
 * someone who does not hold the code, and so cannot compute a new hash) no longer accepts its
 * code. JSON keeps the fields apart whatever characters they hold.
 */
const CODE_PATTERN = /^crate_inv_([a-z2-7]{16})_([A-Za-z0-9_-]{43})$/;
const DOMAIN = 'crate-invitation-code-v1';

export interface InvitationTerms {
  id: string;
  orgId: string;
  email: string;
  role: Role;
  expiresAt: Date;
}

export interface ParsedInvitationCode {
  id: string;
  secret: string;
}

export interface IssuedInvitationCode {
  id: string;
  /** The whole code: shown to the inviting admin once, never stored or logged. */
  code: string;
  /** Computes the stored hash once the terms (which include the id) are known. */
  hashFor(terms: InvitationTerms): Buffer;
}

export function parseInvitationCode(text: string): ParsedInvitationCode | undefined {
  const match = CODE_PATTERN.exec(text);
  if (!match) return undefined;
  return { id: match[1]!, secret: match[2]! };
}

export function hashInvitationCode(secret: string, terms: InvitationTerms): Buffer {
  const bound = JSON.stringify([
    DOMAIN,
    terms.id,
    terms.orgId,
    terms.email,
    terms.role,
    terms.expiresAt.getTime(),
    secret,
  ]);
  return createHash('sha256').update(bound, 'utf8').digest();
}

export function issueInvitationCode(): IssuedInvitationCode {
  const id = newTokenId();
  const secret = randomBytes(32).toString('base64url');
  return {
    id,
    code: `crate_inv_${id}_${secret}`,
    hashFor: (terms) => hashInvitationCode(secret, terms),
  };
}
