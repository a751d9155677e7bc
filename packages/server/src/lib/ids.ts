import { randomBytes } from 'node:crypto';

/**
 * Record ids are a short type prefix and 128 random bits in hex, e.g.
 * `org_3f…`. The prefix makes ids self-explaining in logs and audit entries; randomness keeps
 * them unguessable, so an id never tells whether another tenant's record exists.
 */
export type IdPrefix = 'org' | 'prj' | 'env' | 'sec' | 'usr' | 'key';

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomBytes(16).toString('hex')}`;
}
