import { CrateError } from '@crate/crypto-core';
import { updateUserConfig } from '../config/user-config.js';
import type { CommandContext } from '../context.js';

export async function run(ctx: CommandContext, args: string[]): Promise<undefined> {
  const [org] = args;
  if (!org) throw new CrateError('ERR_USAGE', 'which org?');
  const me = await ctx.whoami();
  if (!me.orgs.some((candidate) => candidate.id === org)) {
    throw new CrateError(
      'ERR_NOT_FOUND',
      `this token does not reach org ${org} (it reaches: ${me.orgs.map((o) => o.id).join(', ') || 'none'})`,
    );
  }
  const server = (await ctx.client()).server;
  await updateUserConfig((config) => {
    config.servers[server] = { ...config.servers[server], org };
  }, ctx.env);
  ctx.out.success(`Default org for ${server} is now ${org}.`);
  return undefined;
}
