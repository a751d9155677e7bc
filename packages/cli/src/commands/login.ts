import { CrateError } from '@crate/crypto-core';
import * as api from '../api.js';
import { updateUserConfig } from '../config/user-config.js';
import type { CommandContext } from '../context.js';
import { ApiClient } from '../http/client.js';
import { canPrompt, promptHidden, readStdin } from '../prompt.js';

export interface LoginOptions {
  tokenStdin?: boolean;
  default?: boolean;
  json?: boolean;
}

async function readToken(ctx: CommandContext, options: LoginOptions): Promise<string> {
  if (options.tokenStdin) {
    const token = (await readStdin(ctx)).toString('utf8').trim();
    if (token === '') throw new CrateError('ERR_USAGE', '--token-stdin: stdin was empty');
    return token;
  }
  if (!canPrompt(ctx)) {
    throw new CrateError(
      'ERR_USAGE',
      'not on a terminal, so there is nobody to ask for the token: pipe it in with --token-stdin',
    );
  }
  const token = (await promptHidden(ctx, 'Token')).trim();
  if (token === '') throw new CrateError('ERR_USAGE', 'no token given');
  return token;
}

export async function run(
  ctx: CommandContext,
  _args: string[],
  options: LoginOptions,
): Promise<undefined> {
  const settings = await ctx.settings();
  if (!settings.server) {
    throw new CrateError(
      'ERR_USAGE',
      'which server? Pass --server https://... or set CRATE_SERVER',
    );
  }
  const server = settings.server.value;
  // Checked before the token is read, so a refused URL never gets to see it.
  new ApiClient({ server, insecureHttp: settings.insecureHttp });
  const token = await readToken(ctx, options);
  const client = new ApiClient({
    server,
    token,
    insecureHttp: settings.insecureHttp,
    timeoutMs: ctx.timeoutMs(),
  });
  const me = await api.whoami(client);
  const path = await updateUserConfig((config) => {
    const previous = config.servers[server];
    const profile: { token: string; org?: string } = { token };
    const onlyOrg = me.orgs.length === 1 ? me.orgs[0]?.id : undefined;
    const keptOrg =
      previous?.org && me.orgs.some((org) => org.id === previous.org) ? previous.org : undefined;
    const org = keptOrg ?? onlyOrg;
    if (org) profile.org = org;
    config.servers[server] = profile;
    if (options.default !== false) config.defaultServer = server;
  }, ctx.env);
  if (ctx.flags.json) {
    ctx.out.printJson({ server, actor: me.actor, orgs: me.orgs });
  } else {
    ctx.out.success(`Logged in to ${server}; token saved in ${path}`);
    for (const org of me.orgs) ctx.out.info(`  org ${org.id} (${org.name}) as ${org.role}`);
  }
  return undefined;
}
