import { describe, expect, it } from 'vitest';
import { hashTokenSecret, issueToken, newTokenId, parseToken } from '../src/auth/token-format.js';

describe('token format', () => {
  it('issues tokens that parse back to their kind, id and secret', () => {
    for (const kind of ['pat', 'svc'] as const) {
      const issued = issueToken(kind);
      expect(issued.token).toMatch(/^crate_(pat|svc)_[a-z2-7]{16}_[A-Za-z0-9_-]{43}$/);
      expect(parseToken(issued.token)).toEqual({ kind, id: issued.id, secret: issued.secret });
      expect(issued.secretHash.equals(hashTokenSecret(issued.secret))).toBe(true);
    }
  });

  it('parses a secret that itself contains underscores by the fixed id length', () => {
    const secret = `${'_'.repeat(10)}${'a'.repeat(33)}`;
    expect(parseToken(`crate_svc_abcdefghijklmnop_${secret}`)).toEqual({
      kind: 'svc',
      id: 'abcdefghijklmnop',
      secret,
    });
  });

  it('rejects tokens with a wrong prefix, kind, id alphabet or secret length', () => {
    const good = issueToken('pat').token;
    expect(parseToken(good.replace('crate_', 'crete_'))).toBeUndefined();
    expect(parseToken(good.replace('_pat_', '_usr_'))).toBeUndefined();
    expect(parseToken(good.slice(0, -1))).toBeUndefined();
    expect(parseToken(`${good}x`)).toBeUndefined();
    expect(parseToken(`crate_pat_ABCDEFGHIJKLMNOP_${'a'.repeat(43)}`)).toBeUndefined();
    expect(parseToken(`crate_pat_abcdefghijklmno1_${'a'.repeat(43)}`)).toBeUndefined();
    expect(parseToken(` ${good}`)).toBeUndefined();
  });

  it('draws ids from 80 random bits so two ids practically never collide', () => {
    const ids = new Set(Array.from({ length: 2000 }, newTokenId));
    expect(ids.size).toBe(2000);
  });
});
