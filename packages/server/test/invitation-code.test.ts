import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  hashInvitationCode,
  type InvitationTerms,
  issueInvitationCode,
  parseInvitationCode,
} from '../src/invitations/invitation-code.js';

const TERMS: InvitationTerms = {
  id: 'abcdefghijklmnop',
  orgId: 'org_7f3a',
  email: 'bob@example.com',
  role: 'developer',
  expiresAt: new Date('2026-12-11T14:00:00.000Z'),
};
const SECRET = 'Q'.repeat(43);

describe('invitation codes (docs/formats.md §16)', () => {
  it('hashes the documented example to the documented value, as a plain SHA-256 of the JSON array', () => {
    const expected = '69bbe173416acc591bdf4b3940888b0f41109042b2a9ef7639a90404793235b9';
    expect(hashInvitationCode(SECRET, TERMS).toString('hex')).toBe(expected);
    const independent = createHash('sha256')
      .update(
        `["crate-invitation-code-v1","abcdefghijklmnop","org_7f3a","bob@example.com","developer",1796997600000,"${SECRET}"]`,
      )
      .digest('hex');
    expect(independent).toBe(expected);
  });

  it('changes the hash when any bound term or the secret changes, and keeps fields apart', () => {
    const base = hashInvitationCode(SECRET, TERMS).toString('hex');
    const variants: Array<[string, InvitationTerms]> = [
      ['id', { ...TERMS, id: 'abcdefghijklmnoq' }],
      ['org', { ...TERMS, orgId: 'org_7f3b' }],
      ['email', { ...TERMS, email: 'eve@example.com' }],
      ['role', { ...TERMS, role: 'owner' }],
      ['expiry', { ...TERMS, expiresAt: new Date(TERMS.expiresAt.getTime() + 1) }],
      // Moving characters from one field to the next must not give the same bytes.
      ['boundary', { ...TERMS, orgId: 'org_7f3abob@', email: 'example.com' }],
    ];
    for (const [what, terms] of variants) {
      expect(hashInvitationCode(SECRET, terms).toString('hex'), what).not.toBe(base);
    }
    expect(hashInvitationCode(`${SECRET.slice(0, -1)}R`, TERMS).toString('hex')).not.toBe(base);
  });

  it('issues 256-bit secrets under fresh ids, parses them back, and refuses anything else', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const issued = issueInvitationCode();
      const parsed = parseInvitationCode(issued.code);
      expect(parsed?.id).toBe(issued.id);
      expect(Buffer.from(parsed!.secret, 'base64url')).toHaveLength(32);
      expect(issued.hashFor(TERMS)).toEqual(hashInvitationCode(parsed!.secret, TERMS));
      seen.add(issued.id);
      seen.add(parsed!.secret);
    }
    expect(seen.size).toBe(200);
    for (const text of [
      '',
      `crate_inv_abcdefghijklmnop_${SECRET}x`,
      `crate_inv_ABCDEFGHIJKLMNOP_${SECRET}`,
      `crate_pat_abcdefghijklmnop_${SECRET}`,
      ` crate_inv_abcdefghijklmnop_${SECRET}`,
      `crate_inv_abcdefghijklmnop_${SECRET.slice(1)}`,
    ]) {
      expect(parseInvitationCode(text), JSON.stringify(text)).toBeUndefined();
    }
  });
});
