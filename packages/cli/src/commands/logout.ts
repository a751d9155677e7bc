import { CrateError } from '@crate/crypto-core';
import { updateUserConfig } from '../config/user-config.js';
import type { CommandContext } from '../context.js';

/** Forgets the saved token for the resolved server (pinned keys are kept, as ssh keeps known_hosts). */
export async function run(ctx: CommandContext): Promise<undefined> {
  const settings = await ctx.settings();
  if (!settings.server)
    throw new CrateError('ERR_USAGE', 'no server to log out from; pass --server');
  const server = settings.server.value;
  let removed = false;
  await updateUserConfig((config) => {
    const profile = config.servers[server];
    if (profile?.token) {
      delete profile.token;
      removed = true;
    }
  }, ctx.env);
  ctx.out.info(removed ? `Logged out of ${server}.` : `No saved token for ${server}.`);
  if (settings.token?.source === 'env') {
    ctx.out.warn('CRATE_TOKEN is still set in this environment and will keep being used.');
  }
  return undefined;
}
