import * as api from '../api.js';
import type { CommandContext } from '../context.js';
import { confirmOrRefuse } from '../prompt.js';

export interface RotateOptions {
  yes?: boolean;
}

/**
 * `crate keys rotate`: asks the server for new org sealing and signing keys (admins and
 * owners). This CLI then takes the new keys through the same vouch check as any other, so its
 * pin moves only if the old key really vouches for them.
 */
export async function run(
  ctx: CommandContext,
  _args: string[],
  options: RotateOptions,
): Promise<undefined> {
  const [client, org] = await Promise.all([ctx.client(), ctx.orgId()]);
  await confirmOrRefuse(
    ctx,
    options.yes,
    `Rotate the sealing and signing keys of org ${org}? Users' CLIs follow through the vouch.`,
  );
  const rotation = await api.rotateOrgKeys(client, org);
  const keys = await ctx.refreshOrgKeys();
  if (ctx.flags.json) {
    ctx.out.printJson(rotation);
    return undefined;
  }
  ctx.out.success(
    [
      `Rotated the keys of org ${org} (rotation ${rotation.rotation}):`,
      `  sealing ${keys.sealing.keyId} ${keys.sealing.fingerprint}`,
      `  signing ${keys.signing.keyId} ${keys.signing.fingerprint}`,
      `Seals to the old sealing key open until ${rotation.retired.opensSealsUntil}; the old signing key is destroyed.`,
    ].join('\n'),
  );
  return undefined;
}
