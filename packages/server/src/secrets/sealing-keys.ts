import type { KeyObject } from 'node:crypto';
import { CrateError } from '@crate/crypto-core';
import type { AppContext } from '../http/context.js';
import { findOrgKey } from '../keys/keys.repository.js';

/**
 * How long a retired sealing key still opens seals after a rotation: clients that sealed
 * with the old key id just before the rotation (or a CLI that has not refetched yet) get
 * their writes through; after that they are told to refetch.
 */
export const SEALING_KEY_GRACE_SECONDS = 7 * 24 * 3600;

function stale(kid: string): CrateError {
  return new CrateError(
    'ERR_SEALING_KEY_STALE',
    `the seal names sealing key ${kid}, which this organization no longer accepts: fetch the public key again and reseal`,
  );
}

/**
 * The private key that opens seals naming `kid`: the org's active sealing key, or a retired
 * one within the grace period. Anything else (unknown id, another org's key, a signing key,
 * destroyed, or retired too long ago) answers ERR_SEALING_KEY_STALE.
 */
export async function sealingKeyFor(
  ctx: AppContext,
  orgId: string,
  kid: string,
): Promise<KeyObject> {
  const row = await findOrgKey(ctx.db, orgId, kid);
  if (row?.kind !== 'sealing') throw stale(kid);
  if (row.status === 'retired') {
    const retiredAt = row.retired_at?.getTime();
    // A retired key without a retirement time is inconsistent: refuse it (fail closed).
    if (
      retiredAt === undefined ||
      ctx.now().getTime() - retiredAt > SEALING_KEY_GRACE_SECONDS * 1000
    ) {
      throw stale(kid);
    }
  } else if (row.status !== 'active') {
    throw stale(kid);
  }
  const key = await ctx.keys.sealingKey(orgId, kid);
  if (!key) throw stale(kid);
  return key.privateKey;
}
