import type { KeyObject } from 'node:crypto';
import { CrateError } from '@crate/crypto-core';
import type { AppContext } from '../http/context.js';
import { findOrgKey } from '../keys/keys.repository.js';
import {
  destroyIfGraceOver,
  SEALING_KEY_GRACE_SECONDS,
} from '../sealing-rotation/sealing-rotation.service.js';

function stale(kid: string): CrateError {
  return new CrateError(
    'ERR_SEALING_KEY_STALE',
    `the seal names sealing key ${kid}, which this organization no longer accepts: fetch the public key again and reseal`,
  );
}

/**
 * The private key that opens seals naming `kid`: the org's active sealing key, or a retired
 * one within the grace period (SEALING_KEY_GRACE_SECONDS). Anything else (unknown id, another
 * org's key, a signing key, destroyed, or retired too long ago) answers ERR_SEALING_KEY_STALE.
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
      if (retiredAt !== undefined && row.wrapped_private_key !== null) {
        // Past its grace period and not swept yet: destroy it now. A failure here (say, the
        // audit log is unavailable) leaves it to the periodic sweep; the answer is the same.
        await destroyIfGraceOver(ctx, orgId, kid).catch(() => undefined);
      }
      throw stale(kid);
    }
  } else if (row.status !== 'active') {
    throw stale(kid);
  }
  const key = await ctx.keys.sealingKey(orgId, kid, row);
  if (!key) throw stale(kid);
  return key.privateKey;
}
